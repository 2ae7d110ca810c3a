//! Settings from environment variables (and an optional `.env` file). Every setting is in the
//! README table and `.env.example`. Secrets are wrapped so that they never reach a log line.

use engine::EngineConfig;
use serde::Deserialize;
use std::fmt;

/// A value that must not be logged: `Debug` prints `[redacted]`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Settings {
    #[serde(default = "default_host")]
    pub app_host: String,
    #[serde(default = "default_port")]
    pub app_port: u16,
    /// PostgreSQL; without it the server runs on the embedded in-memory store.
    pub database_url: Option<Secret>,
    #[serde(default = "default_pool_size")]
    pub db_pool_size: usize,
    /// HMAC key for access tokens. Without one a random key is made at start (tokens then
    /// die with the process), which is only acceptable for the in-memory demo.
    pub jwt_secret: Option<Secret>,
    #[serde(default = "default_access_ttl")]
    pub access_token_ttl_secs: u64,
    #[serde(default = "default_refresh_ttl")]
    pub refresh_token_ttl_secs: u64,
    /// The first admin, created at start if no user has this email yet.
    pub admin_email: Option<String>,
    pub admin_password: Option<Secret>,
    /// Seed demo hotels, events, providers and users. Default: on without DATABASE_URL.
    pub demo_data: Option<bool>,
    #[serde(default = "default_body_limit")]
    pub max_body_bytes: usize,
    /// Requests a minute per client IP on /api/v1/auth/*.
    #[serde(default = "default_auth_rate")]
    pub rate_limit_auth_per_min: u32,
    /// Booking and waitlist commands a second per user (bursts of twice that).
    #[serde(default = "default_bookings_rate")]
    pub rate_limit_bookings_per_sec: u32,
    #[serde(default = "default_log_format")]
    pub log_format: LogFormat,
    /// OTLP/HTTP collector base URL (e.g. http://localhost:4318); spans are exported only
    /// when set. The standard OpenTelemetry variable name.
    pub otel_exporter_otlp_endpoint: Option<String>,
    /// The engine's bounds (see engine::EngineConfig): commands per group commit, decided but
    /// uncommitted commands per resource and queued messages per actor (beyond either a caller
    /// gets 503 `busy` at once rather than waiting in an unbounded queue), resources in memory.
    #[serde(default = "default_engine_max_batch")]
    pub engine_max_batch: usize,
    #[serde(default = "default_engine_max_pending")]
    pub engine_max_pending: usize,
    #[serde(default = "default_engine_mailbox_capacity")]
    pub engine_mailbox_capacity: usize,
    #[serde(default = "default_engine_max_active_resources")]
    pub engine_max_active_resources: usize,
    /// Threads the resource actors run on (actix arbiters), apart from the HTTP workers.
    #[serde(default = "default_engine_arbiters")]
    pub engine_arbiters: usize,
    /// Shards the resources hash into (engine::committer); every node must agree: changing it
    /// needs a restart of every node.
    #[serde(default = "default_engine_shards")]
    pub engine_shards: u32,
    /// Shard committers (one transaction, one pooled connection each at a time); unset, a
    /// quarter of the pool, 1 to 8.
    pub engine_committers: Option<usize>,
    /// HTTP worker threads; unset, one per CPU (actix-web's default).
    pub http_workers: Option<usize>,
    /// Connections the kernel queues for `accept` before it drops new SYNs (which the client
    /// then resends only after a second): the listen backlog. The kernel caps it at
    /// `net.core.somaxconn` (4096 on current Linux).
    #[serde(default = "default_http_backlog")]
    pub http_backlog: usize,
    /// Key the payment webhook signatures are checked with.
    pub payment_webhook_secret: Option<Secret>,
    /// How long the simulated payment provider waits before it calls the webhook.
    #[serde(default = "default_payment_delay")]
    pub payment_simulator_delay_ms: u64,
    // Delivery of notifications (email now; see `notify.rs` and the README's "Email").
    /// SMTP server; without it emails are written to the log instead of sent.
    pub smtp_host: Option<String>,
    #[serde(default = "crate::notify::default_smtp_port")]
    pub smtp_port: u16,
    #[serde(default = "crate::notify::default_smtp_tls")]
    pub smtp_tls: bots::email::TlsMode,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<Secret>,
    #[serde(default = "crate::notify::default_smtp_from")]
    pub smtp_from: String,
    #[serde(default = "crate::notify::default_poll_ms")]
    pub delivery_poll_ms: u64,
    #[serde(default = "crate::notify::default_max_attempts")]
    pub delivery_max_attempts: i32,
    #[serde(default = "crate::notify::default_backoff_base_ms")]
    pub delivery_backoff_base_ms: u64,
    #[serde(default = "crate::notify::default_backoff_max_ms")]
    pub delivery_backoff_max_ms: u64,
    /// Minutes before a confirmed booking starts, comma-separated ("1440,60"; "" for none).
    #[serde(default = "crate::notify::default_reminder_offsets")]
    pub reminder_offsets_minutes: String,
    // Live updates over WebSocket (`live.rs`, `routes/live.rs`, README "Live updates").
    /// Messages queued per connection; a client that lets it fill up is disconnected.
    #[serde(default = "default_ws_queue")]
    pub ws_queue_capacity: usize,
    #[serde(default = "default_ws_per_user")]
    pub ws_max_connections_per_user: usize,
    #[serde(default = "default_ws_total")]
    pub ws_max_connections: usize,
    #[serde(default = "default_ws_ping")]
    pub ws_ping_interval_secs: u64,
    /// A client silent this long (no pong) is disconnected; also the longest one message may
    /// take to be written out to a client.
    #[serde(default = "default_ws_timeout")]
    pub ws_client_timeout_secs: u64,
    /// Committed batches the live-update router may fall behind the engine before every
    /// WebSocket is closed (1013) to resynchronise.
    #[serde(default = "default_engine_live_capacity")]
    pub engine_live_capacity: usize,
    /// Outbound webhooks may target loopback and private networks (off: SSRF protection).
    #[serde(default)]
    pub webhook_allow_private_targets: bool,
    // The Telegram bot (see `telegram.rs` and the README's "Telegram bot").
    /// Bot token from @BotFather; the bot runs inside the server only when it is set.
    pub telegram_bot_token: Option<Secret>,
    /// Bot API base URL (a self-hosted Bot API server); default https://api.telegram.org.
    pub telegram_api_url: Option<String>,
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    8080
}
fn default_pool_size() -> usize {
    16
}
fn default_access_ttl() -> u64 {
    900
}
fn default_refresh_ttl() -> u64 {
    30 * 24 * 3600
}
fn default_body_limit() -> usize {
    64 * 1024
}
fn default_auth_rate() -> u32 {
    30
}
fn default_bookings_rate() -> u32 {
    20
}
fn default_payment_delay() -> u64 {
    300
}
fn default_engine_max_batch() -> usize {
    EngineConfig::default().max_batch
}
fn default_engine_max_pending() -> usize {
    EngineConfig::default().max_pending
}
fn default_engine_mailbox_capacity() -> usize {
    EngineConfig::default().mailbox_capacity
}
fn default_engine_max_active_resources() -> usize {
    EngineConfig::default().max_active_resources
}
pub const DEFAULT_HTTP_BACKLOG: usize = 4096;
fn default_http_backlog() -> usize {
    DEFAULT_HTTP_BACKLOG
}
fn default_engine_arbiters() -> usize {
    EngineConfig::default().arbiters
}
fn default_engine_shards() -> u32 {
    EngineConfig::default().shards
}
fn default_ws_queue() -> usize {
    256
}
fn default_ws_per_user() -> usize {
    8
}
fn default_ws_total() -> usize {
    10_000
}
fn default_ws_ping() -> u64 {
    15
}
fn default_ws_timeout() -> u64 {
    45
}
fn default_engine_live_capacity() -> usize {
    EngineConfig::default().live_capacity
}
fn default_log_format() -> LogFormat {
    LogFormat::Json
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Settings {
    /// Reads `.env` (if present) and then the process environment, which wins.
    pub fn from_env() -> Result<Settings, ConfigError> {
        // A missing .env is normal; a malformed one is an error worth stopping for.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(ConfigError(format!(".env: {e}"))),
        }
        let s: Settings = config::Config::builder()
            .add_source(config::Environment::default().try_parsing(true))
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError(e.to_string()))?;
        s.check()?;
        Ok(s)
    }

    /// Settings for tests and embedding: loopback, port 0 (any free port), no database.
    pub fn local() -> Settings {
        Settings {
            app_host: default_host(),
            app_port: 0,
            database_url: None,
            db_pool_size: 4,
            jwt_secret: Some(Secret::new("test-secret-test-secret-test-secret-0123")),
            access_token_ttl_secs: default_access_ttl(),
            refresh_token_ttl_secs: default_refresh_ttl(),
            admin_email: None,
            admin_password: None,
            demo_data: Some(false),
            max_body_bytes: default_body_limit(),
            // High enough for tests that register many users and book in bursts from one IP.
            rate_limit_auth_per_min: 1_000_000,
            rate_limit_bookings_per_sec: 1_000_000,
            log_format: LogFormat::Pretty,
            otel_exporter_otlp_endpoint: None,
            engine_max_batch: default_engine_max_batch(),
            engine_max_pending: default_engine_max_pending(),
            engine_mailbox_capacity: default_engine_mailbox_capacity(),
            engine_max_active_resources: default_engine_max_active_resources(),
            engine_arbiters: default_engine_arbiters(),
            engine_shards: default_engine_shards(),
            engine_committers: None,
            http_workers: None,
            http_backlog: default_http_backlog(),
            payment_webhook_secret: None,
            payment_simulator_delay_ms: default_payment_delay(),
            smtp_host: None,
            smtp_port: crate::notify::default_smtp_port(),
            smtp_tls: crate::notify::default_smtp_tls(),
            smtp_username: None,
            smtp_password: None,
            smtp_from: crate::notify::default_smtp_from(),
            delivery_poll_ms: crate::notify::default_poll_ms(),
            delivery_max_attempts: crate::notify::default_max_attempts(),
            delivery_backoff_base_ms: crate::notify::default_backoff_base_ms(),
            delivery_backoff_max_ms: crate::notify::default_backoff_max_ms(),
            reminder_offsets_minutes: crate::notify::default_reminder_offsets(),
            ws_queue_capacity: default_ws_queue(),
            ws_max_connections_per_user: default_ws_per_user(),
            ws_max_connections: default_ws_total(),
            ws_ping_interval_secs: default_ws_ping(),
            ws_client_timeout_secs: default_ws_timeout(),
            engine_live_capacity: default_engine_live_capacity(),
            webhook_allow_private_targets: false,
            telegram_bot_token: None,
            telegram_api_url: None,
        }
    }

    pub fn check(&self) -> Result<(), ConfigError> {
        if self.jwt_secret.as_ref().is_some_and(|s| s.expose().len() < 32) {
            return Err(ConfigError("JWT_SECRET must be at least 32 characters".into()));
        }
        if self.admin_email.is_some() != self.admin_password.is_some() {
            return Err(ConfigError("ADMIN_EMAIL and ADMIN_PASSWORD go together".into()));
        }
        if !(60..=86_400).contains(&self.access_token_ttl_secs) {
            return Err(ConfigError("ACCESS_TOKEN_TTL_SECS must be between 60 and 86400".into()));
        }
        if self.rate_limit_auth_per_min == 0 || self.rate_limit_bookings_per_sec == 0 {
            return Err(ConfigError(
                "RATE_LIMIT_AUTH_PER_MIN and RATE_LIMIT_BOOKINGS_PER_SEC must be at least 1".into(),
            ));
        }
        let engine_bounds = [
            ("ENGINE_MAX_BATCH", self.engine_max_batch, 100_000),
            ("ENGINE_MAX_PENDING", self.engine_max_pending, 10_000_000),
            ("ENGINE_MAILBOX_CAPACITY", self.engine_mailbox_capacity, 10_000_000),
            ("ENGINE_MAX_ACTIVE_RESOURCES", self.engine_max_active_resources, 100_000_000),
            ("ENGINE_ARBITERS", self.engine_arbiters, 64),
            ("ENGINE_SHARDS", self.engine_shards as usize, 65_536),
            ("ENGINE_COMMITTERS", self.engine_committers.unwrap_or(1), 64),
            ("HTTP_WORKERS", self.http_workers.unwrap_or(1), 64),
            ("HTTP_BACKLOG", self.http_backlog, 65_535),
        ];
        for (name, v, max) in engine_bounds {
            if !(1..=max).contains(&v) {
                return Err(ConfigError(format!("{name} must be between 1 and {max}")));
            }
        }
        let ws_bounds = [
            ("WS_QUEUE_CAPACITY", self.ws_queue_capacity, 65_536),
            ("WS_MAX_CONNECTIONS_PER_USER", self.ws_max_connections_per_user, 1_000),
            ("WS_MAX_CONNECTIONS", self.ws_max_connections, 1_000_000),
            ("ENGINE_LIVE_CAPACITY", self.engine_live_capacity, 1_000_000),
        ];
        for (name, v, max) in ws_bounds {
            if !(1..=max).contains(&v) {
                return Err(ConfigError(format!("{name} must be between 1 and {max}")));
            }
        }
        if !(1..=300).contains(&self.ws_ping_interval_secs) {
            return Err(ConfigError("WS_PING_INTERVAL_SECS must be between 1 and 300".into()));
        }
        if !(self.ws_ping_interval_secs + 1..=3_600).contains(&self.ws_client_timeout_secs) {
            return Err(ConfigError(
                "WS_CLIENT_TIMEOUT_SECS must be longer than WS_PING_INTERVAL_SECS and at most 3600".into(),
            ));
        }
        if !(1_024..=16 * 1024 * 1024).contains(&self.max_body_bytes) {
            return Err(ConfigError("MAX_BODY_BYTES must be between 1 KiB and 16 MiB".into()));
        }
        crate::notify::check(self).map_err(ConfigError)?;
        crate::telegram::check(self).map_err(ConfigError)?;
        Ok(())
    }

    /// The engine's bounds from these settings, the rest as the engine's defaults.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            max_batch: self.engine_max_batch,
            max_pending: self.engine_max_pending,
            mailbox_capacity: self.engine_mailbox_capacity,
            max_active_resources: self.engine_max_active_resources,
            arbiters: self.engine_arbiters,
            live_capacity: self.engine_live_capacity,
            shards: self.engine_shards,
            committers: self.engine_committers.unwrap_or((self.db_pool_size / 4).clamp(1, 8)),
            ..EngineConfig::default()
        }
    }

    pub fn demo_data_enabled(&self) -> bool {
        self.demo_data.unwrap_or(self.database_url.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let mut s = Settings::local();
        s.database_url = Some(Secret::new("postgres://u:hunter2@db/x"));
        s.smtp_password = Some(Secret::new("smtp-hunter3"));
        s.telegram_bot_token = Some(Secret::new("123:tg-hunter4"));
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter") && !printed.contains("test-secret"), "{printed}");
    }

    #[test]
    fn short_jwt_secrets_and_half_admin_settings_are_refused() {
        let mut s = Settings::local();
        s.jwt_secret = Some(Secret::new("short"));
        assert!(s.check().is_err());
        let mut s = Settings::local();
        s.admin_email = Some("a@example.com".into());
        assert!(s.check().is_err());
        let mut s = Settings::local();
        s.engine_max_pending = 0;
        assert!(s.check().is_err(), "a zero bound would refuse every command");
        let mut s = Settings::local();
        s.ws_queue_capacity = 0;
        assert!(s.check().is_err(), "a zero queue would drop every live connection");
        let mut s = Settings::local();
        s.ws_client_timeout_secs = s.ws_ping_interval_secs;
        assert!(s.check().is_err(), "a timeout no longer than the ping interval drops healthy clients");
        let mut s = Settings::local();
        s.engine_arbiters = 0;
        assert!(s.check().is_err(), "actors need a thread of their own");
        let mut s = Settings::local();
        s.http_workers = Some(0);
        assert!(s.check().is_err(), "no worker would serve nothing");
        s.http_workers = Some(65);
        assert!(s.check().is_err());
        s.http_workers = Some(1);
        assert!(s.check().is_ok());
        s.http_backlog = 0;
        assert!(s.check().is_err(), "a listener that queues nothing refuses every burst");
        s.http_backlog = DEFAULT_HTTP_BACKLOG;
        assert_eq!(s.engine_config().arbiters, 2, "the default number of actor threads reaches the engine");
        assert!(Settings::local().check().is_ok());
    }
}
