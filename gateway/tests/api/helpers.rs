//! Spawns the real app on port 0 against a fresh PostgreSQL database, and talks to it over HTTP.

use engine::domain::ids::UserId;
use engine::fixtures;
use engine::testing::TestDb;
use gateway::configuration::{Secret, Settings};
use gateway::startup::Application;
use reqwest::StatusCode;
use serde_json::{Value, json};

pub struct TestApp {
    pub addr: String,
    pub http: reqwest::Client,
    pub db: TestDb,
}

pub struct Session {
    pub token: String,
    pub refresh: String,
    pub user_id: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDb::new();
    let mut s = Settings::local();
    s.database_url = Some(Secret::new(&db.url));
    s.db_pool_size = 8;
    tweak(&mut s);
    let app = Application::build(s).await.expect("the app starts");
    let addr = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("client");
    TestApp { addr, http, db }
}

/// The app with an admin `admin@example.com`, and the admin signed in.
pub async fn spawn_app_with_admin() -> (TestApp, Session) {
    let app = spawn_with(|s| {
        s.admin_email = Some("admin@example.com".into());
        s.admin_password = Some(Secret::new("admin password 123"));
    })
    .await;
    let (_, v) = app
        .post("/api/v1/auth/login", None, json!({"email": "admin@example.com", "password": "admin password 123"}))
        .await;
    let admin = session(&v);
    (app, admin)
}

/// The app on the memory store (no DATABASE_URL), as `cargo run` starts it for a trial, with
/// an admin `root@example.com`; returns its base URL and the admin's access token.
pub async fn spawn_memory_with_admin() -> (String, String) {
    let mut s = Settings::local();
    s.admin_email = Some("root@example.com".into());
    s.admin_password = Some(Secret::new("admin password 123"));
    let app = Application::build(s).await.expect("starts on the memory store");
    let addr = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    let v: Value = reqwest::Client::new()
        .post(format!("{addr}/api/v1/auth/login"))
        .json(&json!({"email": "root@example.com", "password": "admin password 123"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = v["access_token"].as_str().expect("token").to_owned();
    (addr, token)
}

impl TestApp {
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rb = self.http.request(method, format!("{}{path}", self.addr));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let res = rb.send().await.expect("request sent");
        let status = res.status();
        let text = res.text().await.expect("body");
        let v = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, v)
    }
    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, token, None).await
    }
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, token, Some(body)).await
    }
    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::PUT, path, token, Some(body)).await
    }

    /// Registers a fresh account with `role` (client or owner).
    pub async fn register(&self, role: &str) -> Session {
        let email = format!("{role}-{}@example.com", uuid::Uuid::now_v7().simple());
        let (st, v) = self
            .post(
                "/api/v1/auth/register",
                None,
                json!({"email": email, "password": "a long password", "name": "Test User", "role": role}),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "register: {v}");
        session(&v)
    }

    /// Creates a free event (price 0) of `capacity` owned by `owner`, so a client may book and
    /// confirm its tickets at once without a payment; returns its id.
    pub async fn create_event(&self, owner: &Session, capacity: u32) -> String {
        let spec = fixtures::free(fixtures::event(UserId::new_v7(), "x", capacity, jiff::Timestamp::now()));
        self.create_resource(owner, "Test Event", serde_json::to_value(spec.kind).expect("json")).await
    }

    /// Creates an event at 25.00 EUR a ticket: its holds are confirmed by paying for them.
    pub async fn create_priced_event(&self, owner: &Session, capacity: u32) -> String {
        let kind = serde_json::to_value(fixtures::event(UserId::new_v7(), "x", capacity, jiff::Timestamp::now()).kind)
            .expect("json");
        self.create_resource(owner, "Priced Event", kind).await
    }

    pub async fn create_resource(&self, owner: &Session, name: &str, kind: Value) -> String {
        let (st, v) = self.post("/api/v1/resources", Some(&owner.token), json!({"name": name, "kind": kind})).await;
        assert_eq!(st, StatusCode::CREATED, "create resource: {v}");
        v["id"].as_str().expect("id").to_owned()
    }

    /// Books `quantity` tickets (held unless `confirm`).
    pub async fn book(&self, client: &Session, event: &str, quantity: u32, confirm: bool) -> (StatusCode, Value) {
        self.post(
            "/api/v1/bookings",
            Some(&client.token),
            json!({"resource_id": event, "request": {"kind": "tickets", "quantity": quantity}, "confirm": confirm}),
        )
        .await
    }
}

pub fn session(v: &Value) -> Session {
    Session {
        token: v["access_token"].as_str().expect("access_token").to_owned(),
        refresh: v["refresh_token"].as_str().expect("refresh_token").to_owned(),
        user_id: v["user"]["id"].as_str().expect("user.id").to_owned(),
    }
}

/// The problem+json `code` of an error response.
pub fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or("<no code>")
}

/// A port nothing listens on now, for starting the real binary (which needs one up front).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}
