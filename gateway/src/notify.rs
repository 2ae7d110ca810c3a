//! Wiring of notification delivery (the `bots` crate) into the server: settings, the email
//! channel (SMTP, or the log when no SMTP_HOST is set) and the notifier loop. Delivery needs
//! PostgreSQL (the outbox, deliveries and reminders are tables); with the in-memory store it
//! is off, and the start log says so.

use crate::configuration::Settings;
use bots::delivery::{Channel, DeliveryConfig, Notifier, NotifierHandle};
use bots::email::{EmailChannel, SmtpConfig, TlsMode};
use bots::webhook::{WebhookChannel, WebhookConfig};
use engine::SystemClock;
use engine::store::postgres::{PgConfig, PgStore};
use std::sync::Arc;
use std::time::Duration;

pub fn default_smtp_port() -> u16 {
    587
}
pub fn default_smtp_tls() -> TlsMode {
    TlsMode::Starttls
}
pub fn default_smtp_from() -> String {
    "Reservations <no-reply@localhost>".into()
}
pub fn default_poll_ms() -> u64 {
    1_000
}
pub fn default_max_attempts() -> i32 {
    8
}
pub fn default_backoff_base_ms() -> u64 {
    30_000
}
pub fn default_backoff_max_ms() -> u64 {
    3_600_000
}
pub fn default_reminder_offsets() -> String {
    "1440,60".into()
}

/// Longest reminder offset: 30 days.
const MAX_OFFSET_MINUTES: i32 = 30 * 24 * 60;

/// `"1440,60"` → `[1440, 60]`; empty → no reminders.
pub fn parse_offsets(s: &str) -> Result<Vec<i32>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let m: i32 = part.parse().map_err(|_| format!("REMINDER_OFFSETS_MINUTES: {part:?} is not a number"))?;
        if !(1..=MAX_OFFSET_MINUTES).contains(&m) {
            return Err(format!("REMINDER_OFFSETS_MINUTES: {m} is not between 1 and {MAX_OFFSET_MINUTES}"));
        }
        if !out.contains(&m) {
            out.push(m);
        }
    }
    if out.len() > 5 {
        return Err("REMINDER_OFFSETS_MINUTES: at most 5 reminders per booking".into());
    }
    Ok(out)
}

// Empty values (`SMTP_HOST=` in a .env file) count as unset.
fn host(s: &Settings) -> Option<&str> {
    s.smtp_host.as_deref().map(str::trim).filter(|h| !h.is_empty())
}
fn username(s: &Settings) -> Option<&str> {
    s.smtp_username.as_deref().filter(|u| !u.is_empty())
}
fn password(s: &Settings) -> Option<&str> {
    s.smtp_password.as_ref().map(|p| p.expose()).filter(|p| !p.is_empty())
}

/// The delivery settings' own checks (called from `Settings::check`).
pub fn check(s: &Settings) -> Result<(), String> {
    parse_offsets(&s.reminder_offsets_minutes)?;
    if EmailChannel::log_only(&s.smtp_from).is_err() {
        return Err(format!("SMTP_FROM {:?} is not an address or `Name <address>`", s.smtp_from));
    }
    if username(s).is_some() != password(s).is_some() {
        return Err("SMTP_USERNAME and SMTP_PASSWORD go together".into());
    }
    if !(10..=60_000).contains(&s.delivery_poll_ms) {
        return Err("DELIVERY_POLL_MS must be between 10 and 60000".into());
    }
    if !(1..=100).contains(&s.delivery_max_attempts) {
        return Err("DELIVERY_MAX_ATTEMPTS must be between 1 and 100".into());
    }
    if s.delivery_backoff_base_ms == 0 || s.delivery_backoff_max_ms < s.delivery_backoff_base_ms {
        return Err("DELIVERY_BACKOFF_BASE_MS must be at least 1 and at most DELIVERY_BACKOFF_MAX_MS".into());
    }
    Ok(())
}

pub fn delivery_config(s: &Settings) -> Result<DeliveryConfig, String> {
    Ok(DeliveryConfig {
        poll_interval: Duration::from_millis(s.delivery_poll_ms),
        max_attempts: s.delivery_max_attempts,
        backoff_base: Duration::from_millis(s.delivery_backoff_base_ms),
        backoff_max: Duration::from_millis(s.delivery_backoff_max_ms),
        reminder_offsets_minutes: parse_offsets(&s.reminder_offsets_minutes)?,
        send_concurrency: NOTIFIER_POOL_SIZE,
        ..DeliveryConfig::default()
    })
}

/// Connections of the notifier's own pool: delivery never takes connections the booking
/// path's commits are waiting for.
const NOTIFIER_POOL_SIZE: usize = 4;

/// Starts the notifier when running on PostgreSQL; says at start what it will do.
pub async fn start(s: &Settings) -> Result<Option<NotifierHandle>, String> {
    let Some(url) = &s.database_url else {
        tracing::warn!(
            "notifications are not delivered without DATABASE_URL: the in-memory store only keeps them in its outbox"
        );
        return Ok(None);
    };
    let email = match host(s) {
        Some(host) => {
            let cfg = SmtpConfig {
                host: host.to_owned(),
                port: s.smtp_port,
                tls: s.smtp_tls,
                username: username(s).map(str::to_owned),
                password: password(s).map(str::to_owned),
                from: s.smtp_from.clone(),
                timeout: Duration::from_secs(30),
            };
            let channel = EmailChannel::smtp(&cfg).map_err(|e| e.to_string())?;
            tracing::info!(host = %host, port = s.smtp_port, tls = ?s.smtp_tls, "email: sending over SMTP");
            channel
        }
        None => {
            tracing::warn!("SMTP_HOST is not set: emails are written to the log instead of sent");
            EmailChannel::log_only(&s.smtp_from).map_err(|e| e.to_string())?
        }
    };
    let mut pg_cfg = PgConfig::new(url.expose());
    pg_cfg.pool_size = NOTIFIER_POOL_SIZE;
    let pg = PgStore::connect(&pg_cfg).await.map_err(|e| format!("notifier: {e}"))?;
    bots::delivery::describe_metrics();
    let webhook_cfg =
        WebhookConfig { allow_private: s.webhook_allow_private_targets, timeout: Duration::from_secs(10) };
    if webhook_cfg.allow_private {
        tracing::warn!("WEBHOOK_ALLOW_PRIVATE_TARGETS is on: webhooks may reach loopback and private networks");
    }
    let webhooks = WebhookChannel::new(pg.pool().clone(), webhook_cfg)?;
    let mut channels: Vec<Arc<dyn Channel>> = vec![Arc::new(email), Arc::new(webhooks)];
    if let Some(telegram) = crate::telegram::channel(s)? {
        tracing::info!("telegram: notifications go to linked chats");
        channels.push(Arc::new(telegram));
    }
    let cfg = delivery_config(s)?;
    tracing::info!(reminders_minutes = ?cfg.reminder_offsets_minutes, "notification delivery started");
    Ok(Some(Notifier::new(pg, Arc::new(SystemClock), channels, cfg).spawn()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reminder_offsets_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_offsets("1440, 60").expect("ok"), vec![1440, 60]);
        assert_eq!(parse_offsets("").expect("ok"), Vec::<i32>::new());
        for bad in ["x", "0", "-5", "99999999", "1,2,3,4,5,6"] {
            assert!(parse_offsets(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn delivery_settings_are_checked() {
        let mut s = Settings::local();
        assert!(check(&s).is_ok());
        s.smtp_from = "not an address".into();
        assert!(check(&s).is_err());
        let mut s = Settings::local();
        s.smtp_username = Some("u".into());
        assert!(check(&s).is_err());
        s.smtp_password = Some(crate::configuration::Secret::new("p"));
        assert!(check(&s).is_ok());
        s.smtp_username = Some(String::new());
        assert!(check(&s).is_err(), "an empty username is no username");
        let mut s = Settings::local();
        s.delivery_max_attempts = 0;
        assert!(check(&s).is_err());
    }
}
