//! Logs (JSON or human), request ids, the root span of every request, W3C trace context and
//! (opt-in) OTLP span export.

use crate::configuration::LogFormat;
use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Filter, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What `init` set up: the OpenTelemetry tracer provider, whose batch of spans `shutdown`
/// flushes at exit.
pub struct Telemetry {
    provider: SdkTracerProvider,
    pub exporting: bool,
}

impl Telemetry {
    /// Sends the spans still batched (at most a few seconds) and stops the exporter thread.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "the OTLP exporter did not shut down cleanly");
        }
    }
}

/// Installs the global subscriber once; later calls (tests) are no-ops. Every span has an
/// OpenTelemetry context, so the root span of a request continues the caller's W3C trace
/// context (or starts a trace) and its `trace_id` is in every log line of the request. Spans
/// leave the process only when `otlp_endpoint` is set: OTLP over HTTP/protobuf to
/// `{otlp_endpoint}/v1/traces`, batched on a thread of its own. Without a collector the
/// exporter would log an error every batch, so it is off unless asked for.
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> Telemetry {
    // `OTEL_EXPORTER_OTLP_ENDPOINT=` (empty, as in .env.example) means off.
    let otlp_endpoint = otlp_endpoint.map(str::trim).filter(|s| !s.is_empty());
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let mut builder = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(env!("CARGO_PKG_NAME")).build());
    let mut exporting = false;
    let mut exporter_error = None;
    if let Some(base) = otlp_endpoint {
        let endpoint = format!("{}/v1/traces", base.trim_end_matches('/'));
        use opentelemetry_otlp::WithExportConfig;
        match opentelemetry_otlp::SpanExporter::builder().with_http().with_endpoint(endpoint).build() {
            Ok(exporter) => {
                builder = builder.with_batch_exporter(exporter);
                exporting = true;
            }
            Err(e) => exporter_error = Some(e.to_string()),
        }
    }
    let provider = builder.build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(env!("CARGO_PKG_NAME")));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => registry
            .with(fmt.json().flatten_event(true).with_current_span(true).with_filter(ClientParseErrors))
            .try_init(),
        LogFormat::Pretty => registry.with(fmt.with_filter(ClientParseErrors)).try_init(),
    };
    match (otlp_endpoint, exporter_error) {
        (Some(base), None) => tracing::info!(endpoint = base, "exporting spans over OTLP/HTTP"),
        (Some(base), Some(e)) => tracing::error!(endpoint = base, error = %e, "OTLP exporter not started"),
        (None, _) => {}
    }
    Telemetry { provider, exporting }
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

/// Names this request's span in the response's `traceparent` (W3C), so a caller can find it:
/// the root span's OpenTelemetry context, which continued the caller's trace if it sent a
/// valid `traceparent`. Runs inside the root span (within `TracingLogger`). With no
/// subscriber installed (a library user's choice) there is no context; the response then still
/// gets a valid header: the caller's trace id, or a new one, with a fresh span id.
pub async fn trace_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let cx = Span::current().context();
    let sc = cx.span().span_context().clone();
    let header = if sc.is_valid() {
        format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8())
    } else {
        let incoming =
            req.headers().get(&TRACEPARENT).and_then(|v| v.to_str().ok()).and_then(trace_id_of).map(str::to_owned);
        let trace_id = incoming.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        format!("00-{trace_id}-{}-01", &uuid::Uuid::new_v4().simple().to_string()[..16])
    };
    let mut res = next.call(req).await?;
    if let Ok(v) = HeaderValue::from_str(&header) {
        res.headers_mut().insert(TRACEPARENT, v);
    }
    Ok(res)
}

/// The root span carries the request id next to tracing-actix-web's fields (trace_id among them).
pub struct Spans;

impl RootSpanBuilder for Spans {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let rid = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
        // tracing-actix-web (feature opentelemetry_0_32) sets the OpenTelemetry parent from
        // the request's traceparent and records `trace_id` on this span.
        tracing_actix_web::root_span!(request, x_request_id = %rid)
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        {
            // One access-log line per request, inside its span (so with its request and trace
            // ids): at debug, since at a flash sale's rate it would cost more than the booking,
            // and a client's mistake (4xx) is not the server's trouble; a server error always,
            // at ERROR with what went wrong.
            let _in = span.enter();
            let (status, error) = match outcome {
                Ok(res) => (res.status().as_u16(), res.response().error().map(ToString::to_string)),
                Err(e) => (e.as_response_error().status_code().as_u16(), Some(e.to_string())),
            };
            if status >= 500 {
                tracing::error!(status, error = error.as_deref().unwrap_or("-"), "request failed");
            } else {
                tracing::debug!(status, error = error.as_deref(), "request served");
            }
        }
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// actix-http logs a request it cannot parse (a bad header, a broken request line) at ERROR,
/// "stream error: request parse error: …", after answering it 400. That is the client's
/// mistake, not the server's trouble, and a fuzzer makes thousands of them, so the log drops
/// that line; every other event passes.
struct ClientParseErrors;

const ACTIX_DISPATCHER: &str = "actix_http::h1::dispatcher";
const PARSE_ERROR: &str = "stream error: request parse error";

impl<S> Filter<S> for ClientParseErrors {
    fn enabled(&self, _: &tracing::Metadata<'_>, _: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &tracing::Event<'_>, _: &Context<'_, S>) -> bool {
        if event.metadata().target() != ACTIX_DISPATCHER {
            return true;
        }
        let mut message = MessageStartsWith { prefix: PARSE_ERROR, found: false };
        event.record(&mut message);
        !message.found
    }
}

struct MessageStartsWith {
    prefix: &'static str,
    found: bool,
}

impl tracing::field::Visit for MessageStartsWith {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.found = format!("{value:?}").starts_with(self.prefix);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// The writer of a test subscriber: what it printed.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_request_actix_cannot_parse_is_not_logged_as_an_error_but_the_rest_is() {
        let out = Captured::default();
        let writer = out.clone();
        let layer = tracing_subscriber::fmt::layer().with_writer(move || writer.clone()).with_filter(ClientParseErrors);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "actix_http::h1::dispatcher", "stream error: request parse error: invalid Header provided");
            tracing::error!(target: "actix_http::h1::dispatcher", "Internal server error: unexpected eof");
            tracing::error!(target: "gateway", "stream error: request parse error: ours, kept");
        });
        let text = String::from_utf8(out.0.lock().map(|v| v.clone()).unwrap_or_default()).unwrap_or_default();
        assert!(!text.contains("invalid Header provided"), "{text}");
        assert!(text.contains("unexpected eof"), "{text}");
        assert!(text.contains("ours, kept"), "{text}");
    }

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
