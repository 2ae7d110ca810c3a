//! Every route README.md names is served where README says: under `/api/v1`, or at the root
//! for the rows of its "At the root" table. A route README names but the server does not have
//! answers the unknown-route 404 ("no route ...") and fails here.

use crate::helpers::spawn_app;
use reqwest::Method;
use serde_json::Value;

/// (method, path as README writes it, served at the root?)
fn readme_routes() -> Vec<(Method, String, bool)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let mut out = Vec::new();
    let (mut in_routes, mut at_root) = (false, false);
    for line in readme.lines() {
        if line.starts_with('#') {
            at_root = line.contains("At the root");
        }
        if line.starts_with("| route |") {
            in_routes = true;
            continue;
        }
        if !line.starts_with('|') {
            in_routes = false;
            continue;
        }
        if !in_routes || line.starts_with("|---") {
            continue;
        }
        let first_cell = line.split(" | ").next().unwrap_or_default();
        let mut method = Method::GET;
        // The quoted parts of the cell: `POST /a`, `/b` (same method as before), `{json}` (skipped).
        for quoted in first_cell.split('`').skip(1).step_by(2) {
            let (m, path) = match quoted.split_once(' ') {
                Some((m, p)) if p.starts_with('/') => (Method::from_bytes(m.as_bytes()).ok(), p),
                _ => (None, quoted),
            };
            if !path.starts_with('/') {
                continue;
            }
            if let Some(m) = m {
                method = m;
            }
            let path = path.split('?').next().unwrap_or(path).to_owned();
            out.push((method.clone(), path, at_root));
        }
    }
    out
}

#[actix_web::test]
async fn every_route_readme_names_is_served_where_it_says() {
    let app = spawn_app().await;
    let routes = readme_routes();
    assert!(routes.len() >= 50, "README's route tables were not found: {routes:?}");
    assert!(routes.iter().any(|(_, p, root)| p == "/health" && *root), "the root table is read");
    let id = uuid::Uuid::now_v7().to_string();
    for (method, path, root) in routes {
        let concrete = path.replace("{id}", &id).replace("{token}", "cal_unknown");
        let url = if root { format!("{}{concrete}", app.addr) } else { format!("{}/api/v1{concrete}", app.addr) };
        let res = app.http.request(method.clone(), &url).send().await.expect("sent");
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        let unknown = body["detail"].as_str().is_some_and(|d| d.starts_with("no route"));
        assert!(
            !unknown && status != reqwest::StatusCode::METHOD_NOT_ALLOWED,
            "README names {method} {path}, {url} answers {status} {body}"
        );
    }
}
