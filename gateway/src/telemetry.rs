//! Logs (JSON or human), request ids and the root span of every request.

use crate::configuration::LogFormat;
use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};
use tracing_subscriber::EnvFilter;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Installs the global subscriber once; later calls (tests) are no-ops.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// A client's X-Request-Id is kept if it is short and printable; otherwise one is made.
fn acceptable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
}

/// Outermost middleware: every request has an X-Request-Id (in the logs and the response).
pub async fn request_id(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = match req.headers().get(&REQUEST_ID) {
        Some(v) if acceptable(v) => v.clone(),
        _ => HeaderValue::from_str(&uuid::Uuid::now_v7().to_string()).unwrap_or_else(|_| HeaderValue::from_static("-")),
    };
    req.headers_mut().insert(REQUEST_ID, id.clone());
    let mut res = next.call(req).await?;
    res.headers_mut().insert(REQUEST_ID, id);
    Ok(res)
}

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The trace id of a valid W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`, ids not all zero).
pub fn trace_id_of(header: &str) -> Option<&str> {
    let mut parts = header.trim().split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let valid = version == "00"
        && parts.next().is_none()
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    valid.then_some(trace)
}

/// Continues the caller's trace (W3C traceparent) or starts one: the trace id is in every log
/// line of the request, and the response's `traceparent` names it with this request's span.
pub async fn trace_context(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let incoming =
        req.headers().get(&TRACEPARENT).and_then(|v| v.to_str().ok()).and_then(trace_id_of).map(str::to_owned);
    let trace_id = incoming.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let span_id = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let ours = format!("00-{trace_id}-{span_id}-01");
    if let Ok(v) = HeaderValue::from_str(&ours) {
        // The root span reads it from the request; downstream calls could forward it.
        req.headers_mut().insert(TRACEPARENT, v.clone());
        let mut res = next.call(req).await?;
        res.headers_mut().insert(TRACEPARENT, v);
        return Ok(res);
    }
    next.call(req).await
}

/// The root span carries the request id and the trace id next to tracing-actix-web's fields.
pub struct Spans;

impl RootSpanBuilder for Spans {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let rid = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
        let trace = request
            .headers()
            .get(&TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(trace_id_of)
            .unwrap_or("-")
            .to_owned();
        tracing_actix_web::root_span!(request, x_request_id = %rid, trace_id = %trace)
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::trace_id_of;

    #[test]
    fn only_well_formed_traceparents_are_continued() {
        let t = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id_of(t), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(trace_id_of(bad), None, "{bad}");
        }
    }
}
