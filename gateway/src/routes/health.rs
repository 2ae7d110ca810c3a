//! /health (the process is up), /ready (the store answers), /metrics.

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpResponse, get, web};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health).service(ready).service(metrics);
}

#[get("/health")]
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the store answers (migrations ran before the server started listening).
#[get("/ready")]
async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = if state.pg.is_some() { "postgres" } else { "memory" };
    if let Some(pg) = &state.pg {
        let c = pg.pool().get().await.map_err(|e| ApiError::unavailable(format!("database: {e}")))?;
        c.query_one("SELECT 1", &[]).await.map_err(|e| ApiError::unavailable(format!("database: {e}")))?;
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready", "store": store })))
}

#[get("/metrics")]
async fn metrics() -> HttpResponse {
    match crate::metrics::handle() {
        Some(h) => HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(h.render()),
        None => HttpResponse::ServiceUnavailable().finish(),
    }
}
