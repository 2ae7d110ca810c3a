//! Memory per active resource: creates `count` events and reads each once, so each has an
//! actor in memory, reading the server's resident memory before and after.

use crate::api::{Api, BoxError};
use gateway::accounts::Role;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// Resident memory of a process in KiB (Linux /proc).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

pub async fn many_resources(
    api: &Arc<Api>,
    count: usize,
    concurrency: usize,
    pid: Option<u32>,
) -> Result<Value, BoxError> {
    use futures::StreamExt;
    let rss_before = pid.and_then(rss_kib);
    let owner = api.token(Uuid::now_v7(), Role::Owner)?;
    // Free tickets: clients confirm at once without a payment.
    let spec = engine::fixtures::free(engine::fixtures::event(
        engine::domain::ids::UserId(Uuid::nil()),
        "x",
        100,
        jiff::Timestamp::now(),
    ));
    let kind = serde_json::to_value(spec.kind)?;
    let started = Instant::now();
    let created: Vec<Option<String>> = futures::stream::iter(0..count)
        .map(|i| {
            let (api, owner, kind) = (api.clone(), owner.clone(), kind.clone());
            async move {
                let body = json!({"name": format!("Event {i}"), "kind": kind});
                match api.post("/api/v1/resources", &owner, &body).await {
                    Ok((201, v)) => v["id"].as_str().map(str::to_owned),
                    _ => None,
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let create_secs = started.elapsed().as_secs_f64();
    let ids: Vec<String> = created.iter().flatten().cloned().collect();
    let rss_created = pid.and_then(rss_kib);
    // Reading each once activates its actor (creating may already have).
    let started = Instant::now();
    let read_ok: usize = futures::stream::iter(ids.iter())
        .map(|id| {
            let api = api.clone();
            async move {
                let res = api.http.get(format!("{}/api/v1/resources/{id}", api.base)).send().await;
                usize::from(res.map(|r| r.status().is_success()).unwrap_or(false))
            }
        })
        .buffer_unordered(concurrency)
        .fold(0, |a, b| async move { a + b })
        .await;
    let read_secs = started.elapsed().as_secs_f64();
    let rss_after = pid.and_then(rss_kib);
    let failed = (count - ids.len()) + (ids.len() - read_ok);
    let per_resource = match (rss_before, rss_after) {
        (Some(b), Some(a)) if !ids.is_empty() => Some((a.saturating_sub(b) as f64 * 1024.0) / ids.len() as f64),
        _ => None,
    };
    Ok(json!({
        "scenario": "many resources",
        "created": ids.len(),
        "creates_per_sec": ids.len() as f64 / create_secs.max(1e-9),
        "read": read_ok,
        "reads_per_sec": read_ok as f64 / read_secs.max(1e-9),
        "failed": failed,
        "server_rss_mib_before": rss_before.map(|k| k as f64 / 1024.0),
        "server_rss_mib_after_create": rss_created.map(|k| k as f64 / 1024.0),
        "server_rss_mib_after_read": rss_after.map(|k| k as f64 / 1024.0),
        "server_bytes_per_active_resource": per_resource,
    }))
}
