//! Rate limits (GCRA, `governor`): the auth routes per client IP (password guessing), and the
//! booking-changing routes per signed-in user (or IP). Over the limit: 429 `rate_limited` with
//! `Retry-After`. The keyed state is pruned every minute, and at once (at most once a second)
//! when it passes `MAX_KEYS`, so memory stays bounded by the keys active within one replenish
//! period even when clients invent addresses (`X-Forwarded-For`).

use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Keys per limiter beyond which it is pruned on the request path.
const MAX_KEYS: usize = 100_000;
/// Longer forwarded addresses are cut: a client must not grow the keys at will.
const MAX_IP_CHARS: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    User(Uuid),
    Ip(String),
}

type Limiter = DefaultKeyedRateLimiter<Key>;

struct Keyed {
    limiter: Limiter,
    started: Instant,
    /// Seconds after `started` of the last prune on the request path.
    pruned_at: AtomicU64,
}

impl Keyed {
    fn new(quota: Quota) -> Arc<Self> {
        Arc::new(Keyed { limiter: Limiter::keyed(quota), started: Instant::now(), pruned_at: AtomicU64::new(0) })
    }

    fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Whole seconds until `key` may pass again (at least 1), or None if it may now.
    fn check(&self, key: &Key) -> Option<u64> {
        if self.limiter.len() > MAX_KEYS {
            let now = self.started.elapsed().as_secs();
            let last = self.pruned_at.load(Ordering::Relaxed);
            // One prune a second at most: each is a scan of every key.
            if now > last && self.pruned_at.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                self.prune();
            }
        }
        match self.limiter.check_key(key) {
            Ok(()) => None,
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                Some((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1))
            }
        }
    }
}

#[derive(Clone)]
pub struct RateLimits {
    auth: Arc<Keyed>,
    bookings: Arc<Keyed>,
}

fn non_zero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl RateLimits {
    /// `auth_per_min` requests a minute per IP on /auth; `bookings_per_sec` a second per user
    /// on booking commands, with bursts of twice that.
    pub fn new(auth_per_min: u32, bookings_per_sec: u32) -> Self {
        let auth = Quota::per_minute(non_zero(auth_per_min));
        let bookings =
            Quota::per_second(non_zero(bookings_per_sec)).allow_burst(non_zero(bookings_per_sec.saturating_mul(2)));
        RateLimits { auth: Keyed::new(auth), bookings: Keyed::new(bookings) }
    }

    /// Drops the state of keys that are back to a full allowance.
    pub fn prune(&self) {
        self.auth.prune();
        self.bookings.prune();
    }

    /// Prunes every minute for as long as the server runs.
    pub fn spawn_pruning(&self) {
        let this = self.clone();
        actix_web::rt::spawn(async move {
            let mut every = tokio::time::interval(PRUNE_EVERY);
            loop {
                every.tick().await;
                this.prune();
            }
        });
    }
}

fn is_booking_command(method: &Method, path: &str) -> bool {
    let under = |root: &str| path == root || path.strip_prefix(root).is_some_and(|rest| rest.starts_with('/'));
    *method == Method::POST && (under("/api/v1/bookings") || under("/api/v1/waitlist"))
}

/// The socket's peer address, never X-Forwarded-For: a client could invent a new address for
/// every request and never hit the limit. (Behind a proxy, the proxy does the per-IP limiting.)
fn ip_key(req: &ServiceRequest) -> Key {
    let ip = req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_else(|| "unknown".to_owned());
    Key::Ip(ip.chars().take(MAX_IP_CHARS).collect())
}

/// The middleware (wrap with `middleware::from_fn`, outside idempotency).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let wait = match req.app_data::<web::Data<AppState>>() {
        None => None,
        Some(state) => {
            let limits = &state.rate_limits;
            if req.path().starts_with("/api/v1/auth/") {
                limits.auth.check(&ip_key(&req))
            } else if is_booking_command(req.method(), req.path()) {
                let key = auth::bearer_user(req.request()).map(|u| Key::User(u.id.0)).unwrap_or_else(|| ip_key(&req));
                limits.bookings.check(&key)
            } else {
                None
            }
        }
    };
    match wait {
        None => next.call(req).await.map(ServiceResponse::map_into_boxed_body),
        Some(secs) => {
            let e = ApiError {
                retry_after: Some(secs),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; retry later")
            };
            Ok(req.error_response(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booking_commands_are_posts_under_bookings_and_waitlist() {
        assert!(is_booking_command(&Method::POST, "/api/v1/bookings"));
        assert!(is_booking_command(&Method::POST, "/api/v1/bookings/x/cancel"));
        assert!(is_booking_command(&Method::POST, "/api/v1/waitlist/x/accept"));
        assert!(!is_booking_command(&Method::GET, "/api/v1/bookings"));
        assert!(!is_booking_command(&Method::POST, "/api/v1/bookingsx"));
        assert!(!is_booking_command(&Method::POST, "/api/v1/resources"));
    }

    #[test]
    fn a_key_over_its_burst_waits_at_least_a_second_and_others_do_not() {
        let limits = RateLimits::new(60, 1);
        let a = Key::User(Uuid::now_v7());
        let b = &limits.bookings;
        assert_eq!((b.check(&a), b.check(&a)), (None, None), "burst of 2");
        assert_eq!(b.check(&a), Some(1));
        assert_eq!(b.check(&Key::Ip("10.0.0.1".into())), None);
        limits.prune();
        assert!(b.limiter.len() <= 2);
    }

    #[test]
    fn invented_keys_are_pruned_on_the_request_path() {
        let limits = RateLimits::new(1_000_000, 1_000_000);
        for i in 0..MAX_KEYS + 1_000 {
            limits.auth.check(&Key::Ip(i.to_string()));
        }
        std::thread::sleep(Duration::from_millis(1_100));
        limits.auth.check(&Key::Ip("trigger".into()));
        assert!(limits.auth.limiter.len() < MAX_KEYS, "{} keys", limits.auth.limiter.len());
    }
}
