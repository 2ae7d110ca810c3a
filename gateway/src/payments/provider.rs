//! The simulated payment provider: webhook signatures (HMAC-SHA256 over "<t>.<raw body>") and
//! the background task that, after a delay, reports a payment's result to the gateway's own
//! webhook, as a real provider would.
//!
//! Header: `X-Payment-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>`.

use super::{ChosenOutcome, PaymentStatus, Payments};
use crate::configuration::Settings;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use uuid::Uuid;

pub const SIGNATURE_HEADER: &str = "x-payment-signature";
/// Largest accepted distance between the signature's timestamp and our clock.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;
/// Longest signature header we parse (a few `v1` entries at most).
const MAX_HEADER_CHARS: usize = 1_024;
/// Deliveries per event before the simulator gives up (the provider retries on 5xx).
const MAX_ATTEMPTS: u32 = 5;

type HmacSha256 = Hmac<Sha256>;

/// What the provider's webhook body says about a payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportedStatus {
    Succeeded,
    Failed,
}

/// The webhook body. Unknown fields are accepted: providers add fields over time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"event_id": "evt_0001", "payment_id": "0190c3f2-1a2b-7c3d-8e4f-5a6b7c8d9e0f", "status": "succeeded"}))]
pub struct WebhookBody {
    #[schema(min_length = 1, max_length = 200, pattern = "^[!-~]+$")]
    pub event_id: String,
    pub payment_id: Uuid,
    pub status: ReportedStatus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// Missing, malformed, or no `v1` matches.
    Invalid,
    /// Authentic, but its timestamp is too far from now (a replay of an old delivery).
    Stale,
}

/// The HMAC key of webhook signatures. Never printed.
#[derive(Clone)]
pub struct WebhookKey(Vec<u8>);

impl fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl WebhookKey {
    pub fn new(key: &[u8]) -> Self {
        WebhookKey(key.to_vec())
    }

    /// `None` only if the key were refused, which HMAC never does (any length is a key).
    fn mac(&self, t: i64, body: &[u8]) -> Option<HmacSha256> {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0).ok()?;
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        Some(mac)
    }

    /// The header value for `body` signed at `t` (unix seconds).
    pub fn sign(&self, t: i64, body: &[u8]) -> Option<String> {
        let mac = self.mac(t, body)?;
        Some(format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes())))
    }

    /// Checks a signature header against the raw body at `now` (unix seconds). The MAC is
    /// checked first (in constant time), so an unauthenticated caller only ever learns `Invalid`.
    pub fn verify(&self, header: Option<&str>, body: &[u8], now: i64) -> Result<(), SignatureError> {
        let header = header.filter(|h| h.len() <= MAX_HEADER_CHARS).ok_or(SignatureError::Invalid)?;
        let mut t = None;
        let mut sigs = Vec::new();
        for part in header.split(',') {
            let (k, v) = part.trim().split_once('=').ok_or(SignatureError::Invalid)?;
            match k {
                "t" if t.is_none() => t = Some(v.parse::<i64>().map_err(|_| SignatureError::Invalid)?),
                "t" => return Err(SignatureError::Invalid),
                "v1" => sigs.push(hex::decode(v).map_err(|_| SignatureError::Invalid)?),
                // Other schemes (a future v2) are ignored, as providers do.
                _ => {}
            }
        }
        let t = t.ok_or(SignatureError::Invalid)?;
        if !sigs.iter().any(|s| self.mac(t, body).is_some_and(|m| m.verify_slice(s).is_ok())) {
            return Err(SignatureError::Invalid);
        }
        if now.abs_diff(t) > SIGNATURE_TOLERANCE_SECS.unsigned_abs() {
            return Err(SignatureError::Stale);
        }
        Ok(())
    }
}

/// The provider: its signing key, its delay, and where it delivers (known once bound).
pub struct PaymentProvider {
    key: WebhookKey,
    delay: Duration,
    webhook_url: OnceLock<String>,
}

impl PaymentProvider {
    /// With PAYMENT_WEBHOOK_SECRET, or a random key per process (the simulator signs with the
    /// same key, so the demo works; a real provider could not deliver).
    pub fn new(settings: &Settings) -> Self {
        let key = match &settings.payment_webhook_secret {
            Some(s) => WebhookKey::new(s.expose().as_bytes()),
            None => {
                tracing::warn!(
                    "PAYMENT_WEBHOOK_SECRET is not set: using a random key, only the built-in simulator can sign webhooks"
                );
                let mut k = [0u8; 32];
                rand::rng().fill_bytes(&mut k);
                WebhookKey::new(&k)
            }
        };
        PaymentProvider {
            key,
            delay: Duration::from_millis(settings.payment_simulator_delay_ms),
            webhook_url: OnceLock::new(),
        }
    }

    pub fn key(&self) -> &WebhookKey {
        &self.key
    }

    /// Where the server listens: the simulator calls the webhook there (loopback when bound to
    /// every interface).
    pub fn set_listen_addr(&self, addr: SocketAddr) {
        let ip = match addr.ip() {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let _ = self.webhook_url.set(format!("http://{}/api/v1/payments/webhook", SocketAddr::new(ip, addr.port())));
    }

    /// After the delay, reports the payment's chosen outcome (succeed unless chosen otherwise)
    /// to the webhook, retrying on 5xx and connection errors. Must run on an actix runtime.
    pub fn simulate(self: &Arc<Self>, payments: Arc<dyn Payments>, payment_id: Uuid) {
        let this = self.clone();
        actix_web::rt::spawn(async move {
            actix_web::rt::time::sleep(this.delay).await;
            let Some(url) = this.webhook_url.get().cloned() else {
                tracing::warn!(%payment_id, "payment simulator: the webhook address is unknown; nothing sent");
                return;
            };
            let outcome = match payments.get(payment_id).await {
                Ok(Some(p)) if p.status == PaymentStatus::Pending => p.chosen_outcome.unwrap_or(ChosenOutcome::Succeed),
                // Settled already (e.g. a webhook sent by hand) or gone: nothing to report.
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(%payment_id, error = %e, "payment simulator: could not read the payment; reporting success");
                    ChosenOutcome::Succeed
                }
            };
            let status = match outcome {
                ChosenOutcome::Succeed => ReportedStatus::Succeeded,
                ChosenOutcome::Fail => ReportedStatus::Failed,
            };
            let event = WebhookBody { event_id: format!("evt_{}", Uuid::now_v7().simple()), payment_id, status };
            this.deliver(&url, &event).await;
        });
    }

    /// Sends one event until it is acknowledged (2xx), refused for good (4xx), or the
    /// attempts run out. Every attempt is signed afresh; the event id stays the same.
    async fn deliver(&self, url: &str, event: &WebhookBody) {
        let body = match serde_json::to_vec(event) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "payment simulator: could not encode the event");
                return;
            }
        };
        let client = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
        let mut backoff = Duration::from_millis(200);
        for attempt in 1..=MAX_ATTEMPTS {
            let Some(signature) = self.key.sign(jiff::Timestamp::now().as_second(), &body) else {
                tracing::error!("payment simulator: the webhook key was refused");
                return;
            };
            let sent = client
                .post(url)
                .insert_header(("content-type", "application/json"))
                .insert_header((SIGNATURE_HEADER, signature))
                .send_body(body.clone())
                .await;
            match sent {
                Ok(res) if res.status().is_success() => return,
                Ok(res) if res.status().is_client_error() => {
                    tracing::warn!(event_id = %event.event_id, status = res.status().as_u16(), "payment simulator: the webhook refused the event");
                    return;
                }
                Ok(res) => {
                    tracing::warn!(event_id = %event.event_id, attempt, status = res.status().as_u16(), "payment simulator: webhook failed; retrying");
                }
                Err(e) => {
                    tracing::warn!(event_id = %event.event_id, attempt, error = %e, "payment simulator: webhook unreachable; retrying");
                }
            }
            actix_web::rt::time::sleep(backoff).await;
            backoff *= 2;
        }
        tracing::error!(event_id = %event.event_id, payment_id = %event.payment_id, "payment simulator: gave up delivering the event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_900_000_000;

    #[test]
    fn signatures_verify_and_refuse_tampering_other_keys_and_old_timestamps() {
        let key = WebhookKey::new(b"whsec_unit");
        let body = br#"{"event_id":"e1","payment_id":"00000000-0000-0000-0000-000000000000","status":"succeeded"}"#;
        let h = key.sign(NOW, body).expect("sign");
        assert!(h.starts_with(&format!("t={NOW},v1=")), "{h}");
        assert_eq!(key.verify(Some(&h), body, NOW), Ok(()));
        assert_eq!(key.verify(Some(&h), body, NOW + 300), Ok(()), "within the tolerance");
        assert_eq!(key.verify(Some(&h), body, NOW + 301), Err(SignatureError::Stale));
        assert_eq!(key.verify(Some(&h), body, NOW - 301), Err(SignatureError::Stale), "from the future");
        let mut other = body.to_vec();
        other[10] ^= 1;
        assert_eq!(key.verify(Some(&h), &other, NOW), Err(SignatureError::Invalid), "tampered body");
        assert_eq!(WebhookKey::new(b"whsec_other").verify(Some(&h), body, NOW), Err(SignatureError::Invalid));
        // Moving the timestamp breaks the MAC: a stale delivery cannot be refreshed.
        let moved = h.replace(&format!("t={NOW}"), &format!("t={}", NOW + 1));
        assert_eq!(key.verify(Some(&moved), body, NOW), Err(SignatureError::Invalid));
    }

    #[test]
    fn malformed_headers_are_invalid_and_extra_schemes_are_ignored() {
        let key = WebhookKey::new(b"whsec_unit");
        let body = b"{}";
        let good = key.sign(NOW, body).expect("sign");
        let v1 = good.split_once(",v1=").map(|(_, s)| s.to_owned()).unwrap_or_default();
        for bad in [
            None,
            Some(""),
            Some("garbage"),
            Some("t=abc,v1=00"),
            Some(&*format!("v1={v1}")),
            Some(&*format!("t={NOW},v1=zz")),
            Some(&*format!("t={NOW},t={NOW},v1={v1}")),
        ] {
            assert_eq!(key.verify(bad, body, NOW), Err(SignatureError::Invalid), "{bad:?}");
        }
        let long = format!("{good},{}", "x=y,".repeat(300));
        assert_eq!(key.verify(Some(&long), body, NOW), Err(SignatureError::Invalid), "too long");
        let with_v0 = format!("t={NOW},v0=ab,v1=00,v1={v1}");
        assert_eq!(key.verify(Some(&with_v0), body, NOW), Ok(()), "any matching v1 will do");
    }

    #[test]
    fn the_key_never_prints() {
        assert_eq!(format!("{:?}", WebhookKey::new(b"whsec_secret")), "[redacted]");
    }
}
