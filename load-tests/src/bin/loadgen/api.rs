//! The gateway as the simulated clients see it: tokens minted with the server's secret, and
//! requests whose answers become [`Outcome`]s.

use crate::stats::Outcome;
use gateway::accounts::Role;
use gateway::auth::{JwtKeys, access_token};
use serde_json::Value;
use uuid::Uuid;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub keys: JwtKeys,
    /// With `--accounts`: the server's database, where every simulated client gets a `users`
    /// row (so its bookings' notifications are fanned out and sent, as a real client's are).
    pub accounts: Option<tokio_postgres::Client>,
}

impl Api {
    pub fn token(&self, user: Uuid, role: Role) -> Result<String, BoxError> {
        access_token(&self.keys, engine::domain::ids::UserId(user), role, jiff::Timestamp::now())
            .map_err(|e| format!("minting a token: {}", e.detail).into())
    }

    /// `n` client tokens, one per simulated user; with `accounts`, each user also gets an
    /// account with an email address (one statement for all).
    pub async fn client_tokens(&self, n: usize) -> Result<Vec<String>, BoxError> {
        let users: Vec<Uuid> = (0..n.max(1)).map(|_| Uuid::now_v7()).collect();
        if let Some(db) = &self.accounts {
            db.execute(
                "INSERT INTO users (id, email, name, role, password_hash, created_at)
                 SELECT u, 'loadgen-' || u || '@example.com', 'Load ' || left(u::text, 8), 'client', 'x', now()
                 FROM unnest($1::uuid[]) AS u",
                &[&users],
            )
            .await
            .map_err(|e| format!("creating client accounts: {e}"))?;
        }
        users.iter().map(|u| self.token(*u, Role::Client)).collect()
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Result<(u16, Value), reqwest::Error> {
        let res = self.http.post(format!("{}{path}", self.base)).bearer_auth(token).json(body).send().await?;
        let status = res.status().as_u16();
        let v = res.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, v))
    }

    pub async fn get(&self, path: &str) -> Result<(u16, Value), reqwest::Error> {
        let res = self.http.get(format!("{}{path}", self.base)).send().await?;
        let status = res.status().as_u16();
        let v = res.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, v))
    }

    /// Creates a resource as `owner` from a fixture spec; its id.
    pub async fn create_resource(
        &self,
        owner: &str,
        spec: &engine::domain::spec::ResourceSpec,
    ) -> Result<String, BoxError> {
        let kind = serde_json::to_value(&spec.kind)?;
        let body = serde_json::json!({"name": spec.name, "kind": kind});
        let (status, v) = self.post("/api/v1/resources", owner, &body).await?;
        match v["id"].as_str() {
            Some(id) if status == 201 => Ok(id.to_owned()),
            _ => Err(format!("creating {:?} answered {status}: {v}", spec.name).into()),
        }
    }

    /// `POST /bookings`: a booking acknowledged with its id and status, or the refusal.
    pub async fn book(&self, token: &str, body: &Value) -> Outcome {
        match self.post("/api/v1/bookings", token, body).await {
            Ok((201, v)) => booked(&v),
            other => refused(other),
        }
    }

    /// `POST /bookings/{id}/cancel` by the booking's own client.
    pub async fn cancel(&self, token: &str, id: Uuid) -> Outcome {
        let body = serde_json::json!({"reason": "load test"});
        match self.post(&format!("/api/v1/bookings/{id}/cancel"), token, &body).await {
            Ok((200, v)) if v["status"] == "cancelled" => Outcome::Cancelled { id },
            Ok((200, _)) => Outcome::Refused { status: 200, code: "not_cancelled".into() },
            other => refused(other),
        }
    }
}

fn booked(v: &Value) -> Outcome {
    match (v["id"].as_str().and_then(|s| Uuid::parse_str(s).ok()), v["status"].as_str()) {
        (Some(id), Some(status)) => Outcome::Booked { id, status: status.to_owned() },
        _ => Outcome::Refused { status: 201, code: "malformed_booking".into() },
    }
}

/// Any answer that is not the hoped-for one: its status and problem code, or the transport error.
pub fn refused(r: Result<(u16, Value), reqwest::Error>) -> Outcome {
    match r {
        Ok((status, v)) => Outcome::Refused { status, code: v["code"].as_str().unwrap_or("no_code").to_owned() },
        Err(e) => {
            Outcome::Refused { status: 0, code: if e.is_timeout() { "timeout".into() } else { "transport".into() } }
        }
    }
}

/// A small, seeded generator: the load's randomness needs no quality, only speed and repeats.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn seeded(seed: u64) -> XorShift {
        // Zero is the one state xorshift never leaves.
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u32) -> bool {
        self.below(100) < u64::from(pct)
    }
}
