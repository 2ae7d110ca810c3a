//! The owner dashboard web page at `/dashboard`: static HTML, CSS and JavaScript bundled into
//! the binary (works with no internet), with Chart.js 4.6.1 from the npm registry vendored as
//! its minified UMD build next to its MIT licence (`gateway/static/dashboard/`). The page only
//! talks to the public API (login, `?mine=true` resources, the dashboard routes, bookings).

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, ResponseError, web};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/dashboard/dashboard.js"),
    },
    Asset {
        name: "dashboard.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../static/dashboard/dashboard.css"),
    },
    Asset {
        name: "chart.umd.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/dashboard/chart.umd.min.js"),
    },
    Asset {
        name: "chart.js-LICENSE.md",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../static/dashboard/chart.js-LICENSE.md"),
    },
];

const INDEX: &str = include_str!("../../static/dashboard/index.html");

/// Registers `/dashboard` and `/dashboard/assets/{name}` (not part of the JSON API, so not in
/// the OpenAPI document).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/dashboard", web::get().to(index)).route("/dashboard/assets/{name}", web::get().to(asset));
}

async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header(("Content-Security-Policy", "default-src 'self'; img-src 'self' data:"))
        .body(INDEX)
}

async fn asset(name: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|a| a.name == name.as_str()) {
        Some(a) => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, a.content_type))
            .insert_header((CACHE_CONTROL, "public, max-age=3600"))
            .body(a.body),
        None => crate::error::ApiError::not_found("asset").error_response(),
    }
}
