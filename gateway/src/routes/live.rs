//! `GET /api/v1/ws`: live updates over WebSocket (actix-ws). Authenticated before the
//! upgrade; then the connection forwards what the hub (`crate::live`) queues for it, answers
//! pings, pings the client and closes it when it is silent too long, when its token expires,
//! when it sends a frame larger than `MAX_INCOMING_FRAME_BYTES`, or when the hub dropped it as
//! too slow. See README "Live updates (WebSocket)" for the messages.

use crate::auth::{self, WS_PROTOCOL};
use crate::error::responses::*;
use crate::error::{ApiError, Problem};
use crate::live::{KickReason, LiveConfig, MAX_INCOMING_FRAME_BYTES, RegisterError, Registration};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, web};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, ProtocolError, Session};
use serde_json::json;
use std::time::{Duration, Instant};

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(connect);
}

#[utoipa::path(
    tag = "live",
    operation_id = "live_updates",
    summary = "Live updates (WebSocket)",
    description = "Upgrades to a WebSocket that receives JSON messages: `booking` and `waitlist` changes of the \
caller's own bookings, and `availability` changes of the resources an owner owns (admins: of every resource), \
as soon as they are committed. The access token comes as `Authorization: Bearer <token>` or, from browsers, as \
the subprotocol `bearer.<token>` offered together with `reservations.v1` (which the server answers). See the \
README for the message shapes, close codes and limits.",
    security(("bearer" = [])),
    responses(
        (status = 101, description = "Switching protocols: the WebSocket is open"),
        (status = 400, description = "Not a WebSocket upgrade request", body = Problem, content_type = "application/problem+json"),
        (status = 401, response = Unauthorized),
        (status = 429, description = "Too many live connections for this user", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many live connections on this server", body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/ws")]
async fn connect(req: HttpRequest, body: web::Payload, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (user, expires) = auth::authenticate_ws(&req)?;
    let reg = state.live.register(user).map_err(|e| match e {
        RegisterError::TooManyForUser(n) => ApiError {
            retry_after: Some(5),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_connections",
                format!("at most {n} live connections per user; close one first"),
            )
        },
        RegisterError::TooMany => ApiError {
            retry_after: Some(5),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "too_many_connections", "this server is full; retry later")
        },
    })?;
    let (res, session, stream) = actix_ws::handle_with_protocols(&req, body, &[WS_PROTOCOL])
        .map_err(|e| ApiError::bad_request("websocket_upgrade_required", format!("not a WebSocket upgrade: {e}")))?;
    let stream = stream.max_frame_size(MAX_INCOMING_FRAME_BYTES);
    let cfg = state.live.config().clone();
    let hello = json!({"type": "hello", "user_id": user.id, "role": user.role.as_str(), "expires_at": expires});
    tracing::debug!(user = %user.id, "live connection opened");
    actix_web::rt::spawn(serve(session, stream, reg, cfg, expires, hello.to_string()));
    Ok(res)
}

fn close(code: CloseCode, why: &str) -> CloseReason {
    CloseReason { code, description: Some(why.to_owned()) }
}

/// Until the token expires, measured on this machine's clock (the token's `exp` is Unix time).
fn until(expires: i64) -> Duration {
    let left = expires.saturating_sub(jiff::Timestamp::now().as_second());
    Duration::from_secs(u64::try_from(left).unwrap_or(0))
}

async fn serve(
    mut session: Session,
    mut stream: MessageStream,
    mut reg: Registration,
    cfg: LiveConfig,
    expires: i64,
    hello: String,
) {
    let kick = reg.kick.clone();
    let expiry = tokio::time::sleep(until(expires));
    tokio::pin!(expiry);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + cfg.ping_interval, cfg.ping_interval);
    let mut last_heard = Instant::now();
    if tokio::time::timeout(cfg.client_timeout, session.text(hello)).await.ok().and_then(Result::ok).is_none() {
        return;
    }
    let reason = loop {
        tokio::select! {
            queued = reg.queue.recv() => match queued {
                Some(text) => {
                    // Writing waits only while the socket is full; a kick or the timeout ends it.
                    let sent = tokio::select! {
                        r = tokio::time::timeout(cfg.client_timeout, session.text(text)) => r,
                        _ = kick.kicked() => break kicked(kick.reason()),
                    };
                    match sent {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => return, // the connection is gone
                        Err(_) => break close(CloseCode::Policy, "too slow: reconnect and re-read your bookings"),
                    }
                }
                None => break kicked(kick.reason()),
            },
            frame = stream.recv() => match frame {
                None => return, // the connection is gone
                Some(Ok(Message::Ping(b))) => {
                    last_heard = Instant::now();
                    if tokio::time::timeout(cfg.client_timeout, session.pong(&b)).await.ok().and_then(Result::ok).is_none() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) => break close(CloseCode::Normal, "bye"),
                // Pongs, and anything else a client sends (ignored: there is nothing to ask).
                Some(Ok(_)) => last_heard = Instant::now(),
                Some(Err(ProtocolError::Overflow)) => {
                    break close(CloseCode::Size, "frames from clients may be 4 KiB at most");
                }
                Some(Err(e)) => break close(CloseCode::Protocol, &format!("protocol error: {e}")),
            },
            _ = ping.tick() => {
                if last_heard.elapsed() >= cfg.client_timeout {
                    break close(CloseCode::Policy, "no pong: the connection timed out");
                }
                // A full socket is dealt with by the queue: skip the ping rather than wait.
                if tokio::time::timeout(Duration::from_millis(100), session.ping(b"")).await.is_ok_and(|r| r.is_err()) {
                    return;
                }
            },
            _ = &mut expiry => break close(CloseCode::Policy, "access token expired: reconnect with a fresh one"),
        }
    };
    // Closing: nothing more is queued for this connection. The close frame is sent after what
    // the socket already holds; the slot stays taken until the client is gone (or a grace
    // period passed), so a user cannot pile up sockets that never read.
    reg.unsubscribe();
    tracing::debug!(code = ?reason.code, reason = reason.description.as_deref().unwrap_or(""), "closing live connection");
    let grace = cfg.client_timeout;
    let _ = tokio::time::timeout(grace, async {
        let _ = session.close(Some(reason)).await;
        while let Some(Ok(m)) = stream.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    drop(reg);
}

fn kicked(reason: Option<KickReason>) -> CloseReason {
    match reason {
        Some(KickReason::TooSlow) | None => close(CloseCode::Policy, "too slow: reconnect and re-read your bookings"),
        Some(KickReason::Overloaded) => {
            close(CloseCode::Again, "server overloaded: reconnect and re-read your bookings")
        }
        Some(KickReason::ShuttingDown) => close(CloseCode::Away, "server shutting down: reconnect"),
    }
}
