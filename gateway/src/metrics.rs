//! Prometheus metrics: every metric is described and every histogram has buckets (so
//! `promtool check metrics` passes and histograms render as histograms).

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0];

/// The process-wide recorder (installed once; later calls return the same handle).
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full("engine_commit_batch_size".into()), BATCH_BUCKETS))
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("engine_merged_commit_resources".into()), BATCH_BUCKETS)
                });
            let handle = match builder.and_then(|b| b.install_recorder()) {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    return None;
                }
            };
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
    describe_counter!("http_requests_total", "HTTP requests answered, by method, route and status");
    describe_histogram!("http_request_duration_seconds", Unit::Seconds, "HTTP request latency, by method and route");
    describe_counter!("engine_commands_total", "Commands decided by resource actors, by command and outcome");
    describe_gauge!("engine_active_resources", "Resource actors in memory");
    describe_gauge!("engine_queued_commands", "Commands sent to actors and not yet answered (mailbox + pending)");
    describe_histogram!("engine_commit_batch_size", "Commands per group commit");
    describe_histogram!("engine_commit_duration_seconds", Unit::Seconds, "Duration of one group commit");
    describe_counter!(
        "engine_commit_failures_total",
        "Group commits that failed (their callers got store_unavailable)"
    );
    describe_histogram!(
        "engine_merged_commit_resources",
        "Resources whose batches a shard committer wrote in one transaction"
    );
    describe_counter!(
        "engine_merged_commit_failures_total",
        "Merged transactions that failed or whose outcome is unknown (every batch in them got the error)"
    );
    describe_gauge!("ws_connections", "Live-update WebSocket connections (open or closing)");
    describe_counter!(
        "ws_dropped_total",
        "WebSocket connections dropped by the server, by reason (too_slow, overloaded, shutdown)"
    );
    describe_gauge!("outbox_backlog", "Notifications in the outbox not yet delivered");
    describe_gauge!("outbox_oldest_pending_seconds", Unit::Seconds, "Age of the oldest undelivered notification");
}

/// Refreshes the outbox gauges from PostgreSQL every 15 s (the outbox holds only what is
/// still to deliver). A failed read keeps the last values and is logged at debug level.
pub fn spawn_outbox_gauges(pool: deadpool_postgres::Pool) {
    actix_web::rt::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(15));
        loop {
            every.tick().await;
            let row = match pool.get().await {
                Ok(c) => c
                    .query_one(
                        "SELECT count(*)::float8, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 FROM outbox",
                        &[],
                    )
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match row {
                Ok(r) => {
                    metrics::gauge!("outbox_backlog").set(r.get::<_, f64>(0));
                    metrics::gauge!("outbox_oldest_pending_seconds").set(r.get::<_, f64>(1));
                }
                Err(e) => tracing::debug!(error = %e, "outbox gauges not refreshed"),
            }
        }
    });
}

/// Counts and times every request by its route pattern (never the raw path: bounded labels).
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let res = next.call(req).await?;
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".into());
    let status = res.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    Ok(res)
}
