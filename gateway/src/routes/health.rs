//! /health (the process is up), /ready (the store answers), /metrics.

use crate::error::{ApiError, Problem};
use crate::state::AppState;
use actix_web::{HttpResponse, get, web};

pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(health).service(ready).service(metrics);
}

#[utoipa::path(
    tag = "operations",
    summary = "Liveness",
    description = "The process is up.",
    responses(
        (status = 200, description = "Up", body = Object, example = json!({"status": "ok"}))
    )
)]
#[get("/health")]
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the store answers (migrations ran before the server started listening).
#[utoipa::path(
    tag = "operations",
    summary = "Readiness",
    description = "Ready when the store answers.",
    responses(
        (status = 200, description = "Ready", body = Object, example = json!({"status": "ready", "store": "postgres"})),
        (status = 503, description = "The database does not answer", body = Problem, content_type = "application/problem+json")
    )
)]
#[get("/ready")]
async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = if state.pg.is_some() { "postgres" } else { "memory" };
    if let Some(pg) = &state.pg {
        let c = pg.pool().get().await.map_err(|e| ApiError::unavailable(format!("database: {e}")))?;
        c.query_one("SELECT 1", &[]).await.map_err(|e| ApiError::unavailable(format!("database: {e}")))?;
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready", "store": store })))
}

#[utoipa::path(
    tag = "operations",
    summary = "Prometheus metrics",
    description = "Metrics in the Prometheus text format.",
    responses(
        (status = 200, description = "Metrics", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 503, description = "No metrics recorder installed")
    )
)]
#[get("/metrics")]
async fn metrics() -> HttpResponse {
    match crate::metrics::handle() {
        Some(h) => HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(h.render()),
        None => HttpResponse::ServiceUnavailable().finish(),
    }
}
