//! The outbound webhook channel: owners register HTTPS endpoints for their resources'
//! notifications; each notification becomes one delivery per matching endpoint (fan-out in
//! `delivery::endpoints`), POSTed as JSON and signed with the endpoint's secret:
//!
//! ```text
//! Webhook-Id: outbox:42:webhook:<endpoint id>     (the delivery's dedupe key: same on every retry)
//! Webhook-Timestamp: 1767225600                   (unix seconds of this attempt)
//! Webhook-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
//! ```
//!
//! 2xx is delivered. 410 Gone is a permanent refusal (dead-lettered at once). Everything else
//! (3xx, which is never followed, other 4xx, 5xx, timeouts, refused connections) is retried
//! with the notifier's backoff until `max_attempts`, then dead-lettered.
//!
//! Targets on loopback, private, link-local and other non-public addresses are refused unless
//! `allow_private` is set: checked when an endpoint is registered ([`check_target`]) and again
//! when sending (IP literals here, host names in the DNS resolver, so a name that later
//! resolves to an internal address is still refused; redirects are never followed).

use crate::delivery::{Audience, Channel, DeliveryError, Notice, Recipient};
use deadpool_postgres::Pool;
use futures::future::BoxFuture;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Url;
use serde_json::json;
use sha2::Sha256;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub const CHANNEL: &str = "webhook";

/// The notification kinds an endpoint may subscribe to: the engine's outbox kinds.
pub const EVENT_TYPES: [&str; 9] = [
    "hold_created",
    "confirmed",
    "released",
    "cancelled",
    "expired",
    "refunded",
    "rescheduled",
    "offer_made",
    "offer_expired",
];

/// Longest endpoint URL.
pub const MAX_URL_CHARS: usize = 2048;

/// Most of a response body kept in the error of a failed attempt.
const MAX_BODY_EXCERPT: usize = 200;

/// `v1=<hex>`: HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A fresh endpoint secret: `whsec_` and 32 random bytes in hex.
pub fn new_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("whsec_{}", hex::encode(bytes))
}

/// Whether an address is reachable on the public internet (not loopback, private, link-local,
/// carrier-grade NAT, multicast, documentation, unspecified or the like).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let seg0 = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg0 & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg0 == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || v6.segments()[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible (deprecated)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10, carrier-grade NAT
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking
        || o[0] >= 240) // reserved
}

/// Checks an endpoint URL: absolute http(s), a host, no credentials or fragment, at most
/// [`MAX_URL_CHARS`], and (unless `allow_private`) no loopback/private IP literal or
/// `localhost` name. Returns the reason when it is refused.
pub fn check_target(url: &str, allow_private: bool) -> Result<Url, String> {
    if url.len() > MAX_URL_CHARS {
        return Err(format!("must be at most {MAX_URL_CHARS} characters"));
    }
    let parsed = Url::parse(url).map_err(|e| format!("not an absolute URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not contain credentials".into());
    }
    if parsed.fragment().is_some() {
        return Err("must not contain a fragment".into());
    }
    let Some(host) = parsed.host() else { return Err("must name a host".into()) };
    if !allow_private {
        let private = match host {
            url::Host::Ipv4(ip) => !is_public_v4(ip),
            url::Host::Ipv6(ip) => !is_public(IpAddr::V6(ip)),
            url::Host::Domain(d) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                d == "localhost" || d.ends_with(".localhost") || d.ends_with(".local") || d.ends_with(".internal")
            }
        };
        if private {
            return Err("must not point at a loopback, private or link-local address".into());
        }
    }
    Ok(parsed)
}

/// Resolves host names and keeps only public addresses (unless private ones are allowed), so
/// a name cannot smuggle a request to an internal service.
struct Resolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(resolve(name.as_str().to_owned(), self.allow_private))
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn resolve(host: String, allow_private: bool) -> Result<reqwest::dns::Addrs, BoxError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
    let allowed: Vec<SocketAddr> = addrs.into_iter().filter(|a| allow_private || is_public(a.ip())).collect();
    if allowed.is_empty() {
        return Err(format!("{host} resolves to no public address").into());
    }
    Ok(Box::new(allowed.into_iter()))
}

/// How the channel sends.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Let endpoints target loopback and private networks (tests, a trusted LAN).
    pub allow_private: bool,
    /// Bound on one whole request (connect, send, answer).
    pub timeout: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig { allow_private: false, timeout: Duration::from_secs(10) }
    }
}

pub struct WebhookChannel {
    pool: Pool,
    http: reqwest::Client,
    cfg: WebhookConfig,
}

impl WebhookChannel {
    /// `pool`: the notifier's own pool (endpoints are read from it at each attempt).
    pub fn new(pool: Pool, cfg: WebhookConfig) -> Result<WebhookChannel, String> {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("reservation-engine-webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(Resolver { allow_private: cfg.allow_private }))
            .build()
            .map_err(|e| format!("webhook client: {e}"))?;
        Ok(WebhookChannel { pool, http, cfg })
    }

    async fn endpoint(&self, delivery_id: i64) -> Result<Option<(Uuid, String, String)>, DeliveryError> {
        let client = self.pool.get().await.map_err(|e| DeliveryError::Transient(e.to_string()))?;
        let row = client
            .query_opt(
                "SELECT w.id, w.url, w.secret FROM deliveries d
                 JOIN webhook_endpoints w ON w.id = d.webhook_endpoint_id WHERE d.id = $1",
                &[&delivery_id],
            )
            .await
            .map_err(|e| DeliveryError::Transient(e.to_string()))?;
        Ok(row.map(|r| (r.get(0), r.get(1), r.get(2))))
    }

    /// Keeps the HTTP status of the last attempt on the delivery (for the owner's log). Best
    /// effort: the outcome itself is recorded by the notifier.
    async fn record_response(&self, delivery_id: i64, code: Option<i32>) {
        let result = match self.pool.get().await {
            Ok(c) => c
                .execute("UPDATE deliveries SET response_code = $2 WHERE id = $1", &[&delivery_id, &code])
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = result {
            tracing::debug!(delivery_id, error = %e, "webhook response code not recorded");
        }
    }

    async fn send(&self, n: &Notice) -> Result<(), DeliveryError> {
        let Some((endpoint_id, url, secret)) = self.endpoint(n.delivery_id).await? else {
            return Err(DeliveryError::Permanent("the webhook endpoint was deleted".into()));
        };
        let url = check_target(&url, self.cfg.allow_private)
            .map_err(|e| DeliveryError::Permanent(format!("endpoint URL refused: {e}")))?;
        // IP literals never reach the resolver: `check_target` just checked them.
        let body = serde_json::to_vec(&payload(n)).map_err(|e| DeliveryError::Permanent(e.to_string()))?;
        let timestamp = n.now.as_second();
        let res = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", n.dedupe_key.as_str())
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature(&secret, timestamp, &body))
            .body(body)
            .send()
            .await;
        let mut res = match res {
            Ok(r) => r,
            Err(e) => {
                self.record_response(n.delivery_id, None).await;
                let what = if e.is_timeout() { "timed out" } else { "failed" };
                return Err(DeliveryError::Transient(format!("request {what}: {}", error_chain(&e))));
            }
        };
        let status = res.status();
        self.record_response(n.delivery_id, Some(i32::from(status.as_u16()))).await;
        if status.is_success() {
            tracing::debug!(delivery_id = n.delivery_id, %endpoint_id, status = status.as_u16(), "webhook delivered");
            return Ok(());
        }
        // A short excerpt of what the receiver said, read with a bound.
        let mut excerpt = Vec::new();
        while excerpt.len() < MAX_BODY_EXCERPT {
            match res.chunk().await {
                Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
                _ => break,
            }
        }
        excerpt.truncate(MAX_BODY_EXCERPT);
        let text = String::from_utf8_lossy(&excerpt);
        let msg = format!("HTTP {}: {}", status.as_u16(), text.trim());
        if status == reqwest::StatusCode::GONE {
            Err(DeliveryError::Permanent(msg))
        } else {
            Err(DeliveryError::Transient(msg))
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// The JSON body of a webhook: the event (its id is the delivery's dedupe key), the resource
/// and a snapshot of the booking as it is when sent.
pub fn payload(n: &Notice) -> serde_json::Value {
    let mut booking = serde_json::to_value(&n.booking).unwrap_or(serde_json::Value::Null);
    if let Some(b) = booking.as_object_mut() {
        // The client's own retry key is none of the owner's business.
        b.remove("idempotency_key");
    }
    json!({
        "id": n.dedupe_key,
        "type": n.kind.as_str(),
        "occurred_at": n.at.to_string(),
        "resource_id": n.resource.id,
        "resource": {"id": n.resource.id, "name": n.resource.name, "kind": n.resource.kind},
        "booking": booking,
    })
}

impl Channel for WebhookChannel {
    fn name(&self) -> &'static str {
        CHANNEL
    }

    /// Webhooks go to the resource owner's endpoints, not to the booking's user.
    fn reaches(&self, _to: &Recipient) -> bool {
        false
    }

    fn audience(&self) -> Audience {
        Audience::OwnerEndpoints
    }

    fn deliver<'a>(&'a self, n: &'a Notice) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(self.send(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_over_timestamp_dot_body() {
        // RFC 4231 test case 2 shape: key "Jefe", data "what do ya want for nothing?".
        let sig = signature("Jefe", 0, b"what do ya want for nothing?");
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"Jefe").expect("key");
        mac.update(b"0.what do ya want for nothing?");
        assert_eq!(sig, format!("v1={}", hex::encode(mac.finalize().into_bytes())));
        assert_ne!(signature("Jefe", 1, b"x"), signature("Jefe", 2, b"x"));
        assert_eq!(sig.len(), 3 + 64);
    }

    #[test]
    fn private_targets_are_refused_unless_allowed() {
        for bad in [
            "http://127.0.0.1/hook",
            "http://10.1.2.3/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]:8080/",
            "http://[fd00::1]/",
            "http://[::ffff:192.168.0.1]/",
            "http://localhost:9000/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
        ] {
            assert!(check_target(bad, false).is_err(), "{bad}");
            assert!(check_target(bad, true).is_ok(), "{bad} with private targets allowed");
        }
        for bad in
            ["ftp://example.com/", "example.com/hook", "https://user:pw@example.com/", "https://example.com/hook#part"]
        {
            assert!(check_target(bad, true).is_err(), "{bad}");
        }
        assert!(check_target(&format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS)), true).is_err());
        assert!(check_target("https://hooks.example.com/reservations?x=1", false).is_ok());
        assert!(check_target("http://93.184.215.14:8080/", false).is_ok());
    }

    #[test]
    fn event_types_are_the_engine_notification_kinds() {
        for k in EVENT_TYPES {
            let kind: engine::domain::command::NotificationKind =
                serde_json::from_value(json!(k)).unwrap_or_else(|e| panic!("{k}: {e}"));
            assert_eq!(kind.as_str(), k);
        }
    }
}
