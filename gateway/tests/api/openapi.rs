//! The OpenAPI 3.1 document at /openapi.json and Swagger UI at /docs/.

use crate::helpers::{session, spawn_app};
use reqwest::StatusCode;
use serde_json::Value;
use serde_json::json;

/// Every route the app registers, as (method, OpenAPI path). Adding a route means adding it
/// here, and the test below checks it is documented.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/auth/me"),
    ("post", "/api/v1/resources"),
    ("get", "/api/v1/resources"),
    ("get", "/api/v1/hotels/search"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/providers/{id}/slots"),
    ("get", "/api/v1/resources/{id}"),
    ("put", "/api/v1/resources/{id}"),
    ("get", "/api/v1/resources/{id}/bookings"),
    ("post", "/api/v1/bookings"),
    ("get", "/api/v1/bookings"),
    ("get", "/api/v1/bookings/{id}"),
    ("post", "/api/v1/bookings/{id}/confirm"),
    ("post", "/api/v1/bookings/{id}/release"),
    ("post", "/api/v1/bookings/{id}/cancel"),
    ("post", "/api/v1/bookings/{id}/reschedule"),
    ("post", "/api/v1/waitlist"),
    ("get", "/api/v1/waitlist"),
    ("delete", "/api/v1/waitlist/{id}"),
    ("post", "/api/v1/waitlist/{id}/accept"),
    ("post", "/api/v1/waitlist/{id}/decline"),
    ("post", "/api/v1/payments"),
    ("post", "/api/v1/payments/webhook"),
    ("get", "/api/v1/payments/{id}"),
    ("post", "/api/v1/payments/{id}/outcome"),
    ("post", "/api/v1/admin/bookings/{id}/confirm"),
    ("post", "/api/v1/admin/bookings/{id}/refund"),
    ("get", "/api/v1/admin/overview"),
    ("get", "/api/v1/resources/{id}/dashboard"),
    ("get", "/api/v1/resources/{id}/dashboard/summary"),
    ("get", "/api/v1/dashboard"),
    ("post", "/api/v1/ingest"),
    ("post", "/api/v1/me/integration-keys"),
    ("get", "/api/v1/me/integration-keys"),
    ("delete", "/api/v1/me/integration-keys/{id}"),
    ("post", "/api/v1/me/telegram/link-code"),
    ("get", "/api/v1/admin/deliveries"),
    ("get", "/api/v1/admin/deliveries/{id}"),
    ("post", "/api/v1/admin/deliveries/{id}/retry"),
    ("get", "/api/v1/ws"),
    ("post", "/api/v1/webhooks"),
    ("get", "/api/v1/webhooks"),
    ("get", "/api/v1/webhooks/{id}"),
    ("delete", "/api/v1/webhooks/{id}"),
    ("get", "/api/v1/webhooks/{id}/deliveries"),
    ("post", "/api/v1/calendar/feeds"),
    ("get", "/api/v1/calendar/feeds"),
    ("post", "/api/v1/calendar/feeds/{id}/rotate"),
    ("delete", "/api/v1/calendar/feeds/{id}"),
    ("get", "/api/v1/calendar/{token}.ics"),
];

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

async fn spec(app: &crate::helpers::TestApp) -> Value {
    let res = app.http.get(format!("{}/openapi.json", app.addr)).send().await.expect("send");
    assert_eq!(res.status(), StatusCode::OK);
    let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    res.json().await.expect("the spec is JSON")
}

#[actix_web::test]
async fn the_spec_is_openapi_3_1_with_paths_schemas_and_security() {
    let app = spawn_app().await;
    let v = spec(&app).await;
    assert!(v["openapi"].as_str().is_some_and(|s| s.starts_with("3.1")), "openapi: {}", v["openapi"]);
    assert_eq!(v["info"]["title"], "Reservation engine API");
    assert_eq!(v["info"]["version"], env!("CARGO_PKG_VERSION"));
    let paths = v["paths"].as_object().expect("paths");
    for p in [
        "/api/v1/auth/login",
        "/api/v1/bookings",
        "/api/v1/bookings/{id}/confirm",
        "/api/v1/resources",
        "/api/v1/hotels/search",
        "/api/v1/payments/webhook",
        "/api/v1/admin/overview",
        "/health",
    ] {
        assert!(paths.contains_key(p), "{p} is not documented");
    }
    let schemas = v["components"]["schemas"].as_object().expect("schemas");
    for s in ["Booking", "BookingRequest", "Problem", "ResourceInput", "CreateBooking", "Tokens", "User", "Payment"] {
        assert!(schemas.contains_key(s), "schema {s} is missing");
    }
    assert!(schemas["Problem"].get("example").is_some(), "Problem has an example");
    let bearer = &v["components"]["securitySchemes"]["bearer"];
    assert_eq!((bearer["type"].as_str(), bearer["scheme"].as_str()), (Some("http"), Some("bearer")));
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let responses = op["responses"].as_object().map(|r| r.len()).unwrap_or(0);
            assert!(responses > 0, "{method} {path} documents no response");
            assert!(op["tags"].as_array().is_some_and(|t| !t.is_empty()), "{method} {path} has no tag");
            assert!(op["summary"].is_string(), "{method} {path} has no summary");
        }
    }
    let params = v["paths"]["/api/v1/bookings"]["post"]["parameters"].as_array().cloned().unwrap_or_default();
    assert!(
        params.iter().any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
        "Idempotency-Key: {params:?}"
    );
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().into_iter().flat_map(|o| o.values()))
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "operationIds must be unique");
    // Every schema a $ref points at exists.
    let text = v.to_string();
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap_or_default();
        assert!(schemas.contains_key(name), "dangling $ref to {name}");
    }
    // The answers every route shares are one component each, referenced, each with an example.
    let responses = v["components"]["responses"].as_object().expect("components.responses");
    for part in text.split("\"$ref\":\"#/components/responses/").skip(1) {
        let name = part.split('"').next().unwrap_or_default();
        assert!(responses.contains_key(name), "dangling $ref to response {name}");
    }
    for (name, status) in [("BadRequest", 400), ("Unauthorized", 401), ("Unprocessable", 422), ("Unavailable", 503)] {
        let content = &responses[name]["content"]["application/problem+json"];
        assert_eq!(content["example"]["status"], status, "{name}: {content}");
        assert_eq!(content["schema"]["$ref"], "#/components/schemas/Problem", "{name}: {content}");
    }
    let book = &v["paths"]["/api/v1/bookings"]["post"]["responses"];
    assert_eq!(book["503"]["$ref"], "#/components/responses/Unavailable", "{book}");
}

#[actix_web::test]
async fn every_registered_route_is_documented_and_nothing_else() {
    let app = spawn_app().await;
    let v = spec(&app).await;
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in v["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if METHODS.contains(&method.as_str()) {
                documented.push((method.clone(), path.clone()));
            }
        }
    }
    documented.sort();
    let mut expected: Vec<(String, String)> = ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
    expected.sort();
    assert_eq!(documented, expected, "the spec and the registered routes differ");

    // And each listed route is really served (not the catch-all "no route" 404).
    let id = uuid::Uuid::now_v7().to_string();
    for (method, path) in ROUTES {
        let url = format!("{}{}", app.addr, path.replace("{id}", &id));
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let res = app.http.request(m, &url).send().await.expect("send");
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        assert!(!body.contains("\"detail\":\"no route"), "{method} {path} is not registered: {status} {body}");
    }
}

#[actix_web::test]
async fn swagger_ui_is_served_without_internet() {
    let app = spawn_app().await;
    let res = app.http.get(format!("{}/docs/", app.addr)).send().await.expect("send");
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.expect("html");
    assert!(html.to_lowercase().contains("swagger"), "not Swagger UI:\n{html}");
    // The bundled assets are served too.
    let res = app.http.get(format!("{}/docs/swagger-initializer.js", app.addr)).send().await.expect("send");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.expect("js").contains("/openapi.json"), "the UI loads our spec");
    // `/docs` leads to `/docs/` (reqwest follows the redirect).
    let res = app.http.get(format!("{}/docs", app.addr)).send().await.expect("send");
    assert_eq!((res.status(), res.url().path()), (StatusCode::OK, "/docs/"));
}

/// The request example of `method path` in the spec.
fn example(spec: &Value, method: &str, path: &str) -> Value {
    let ex = &spec["paths"][path][method]["requestBody"]["content"]["application/json"]["example"];
    assert!(ex.is_object(), "{method} {path} has no request example");
    ex.clone()
}

#[actix_web::test]
async fn the_documented_examples_are_accepted_by_the_api() {
    let app = spawn_app().await;
    let v = spec(&app).await;
    let (st, body) = app.post("/api/v1/auth/register", None, example(&v, "post", "/api/v1/auth/register")).await;
    assert_eq!(st, StatusCode::CREATED, "register example: {body}");
    let client = session(&body);
    let (st, body) = app.post("/api/v1/auth/login", None, example(&v, "post", "/api/v1/auth/login")).await;
    assert_eq!(st, StatusCode::OK, "login example: {body}");

    let owner = app.register("owner").await;
    let (st, body) = app.post("/api/v1/resources", Some(&owner.token), example(&v, "post", "/api/v1/resources")).await;
    assert_eq!(st, StatusCode::CREATED, "resource example: {body}");
    let event = body["id"].as_str().expect("id").to_owned();

    let mut booking = example(&v, "post", "/api/v1/bookings");
    booking["resource_id"] = json!(event);
    let (st, body) = app.post("/api/v1/bookings", Some(&client.token), booking).await;
    assert_eq!(st, StatusCode::CREATED, "booking example: {body}");
    let id = body["id"].as_str().expect("id");
    let path = format!("/api/v1/bookings/{id}/cancel");
    let cancel = example(&v, "post", "/api/v1/bookings/{id}/cancel");
    let (st, body) = app.post(&path, Some(&client.token), cancel).await;
    assert_eq!(st, StatusCode::OK, "cancel example: {body}");

    let mut join = example(&v, "post", "/api/v1/waitlist");
    join["resource_id"] = json!(event);
    let (st, body) = app.post("/api/v1/waitlist", Some(&client.token), join).await;
    // Not sold out: the API says so (409 available_now) rather than rejecting the body.
    assert_eq!((st, crate::helpers::code(&body)), (StatusCode::CONFLICT, "available_now"), "waitlist example: {body}");
}

/// The operations that do not offer `Idempotency-Key` are exactly the ones the middleware
/// ignores it on (`idempotency::KEYLESS_ROUTES`): the document says what the server does.
#[actix_web::test]
async fn idempotency_key_is_offered_exactly_where_it_is_honoured() {
    let app = spawn_app().await;
    let v: Value =
        app.http.get(format!("{}/openapi.json", app.addr)).send().await.expect("spec").json().await.expect("json");
    let mut keyless = Vec::new();
    for (path, item) in v["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            if !["post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let offered = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"));
            if !offered {
                keyless.push(path.clone());
            }
        }
    }
    keyless.sort();
    let mut want: Vec<String> = gateway::idempotency::KEYLESS_ROUTES.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(keyless, want);
}

/// What middleware and extractors answer for every route alike is in every operation that can
/// get it: a JSON body can be 400/413/415/422, a keyed operation 400/409/422, a parameter 400.
#[actix_web::test]
async fn answers_of_middleware_and_extractors_are_documented_on_every_operation() {
    let app = spawn_app().await;
    let v = spec(&app).await;
    for (path, item) in v["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let responses = op["responses"].as_object().expect("responses");
            let must = |code: &str, why: &str| {
                assert!(responses.contains_key(code), "{method} {path} does not document {code} ({why})");
            };
            if op.get("requestBody").is_some() {
                for code in ["400", "413", "415", "422"] {
                    must(code, "a JSON body");
                }
            }
            let keyed = op["parameters"].as_array().is_some_and(|ps| ps.iter().any(|p| p["name"] == "Idempotency-Key"));
            if keyed {
                for code in ["400", "409", "422"] {
                    must(code, "Idempotency-Key");
                }
            }
            if op["parameters"].as_array().is_some_and(|ps| ps.iter().any(|p| p["in"] == "path" || p["in"] == "query"))
            {
                must("400", "a parameter");
            }
        }
    }
    // 415 is what a body without a content type gets, as documented.
    let res = app.http.post(format!("{}/api/v1/auth/login", app.addr)).body("{}").send().await.expect("sent");
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

/// `KindSpec` (`{"type": "event", ...}`) must be satisfiable: each branch one closed object
/// that names the tag, and a real resource's `kind` fits exactly one branch.
#[actix_web::test]
async fn every_kind_spec_branch_accepts_what_the_server_accepts() {
    let app = spawn_app().await;
    let v: Value =
        app.http.get(format!("{}/openapi.json", app.addr)).send().await.expect("spec").json().await.expect("json");
    let branches = v["components"]["schemas"]["KindSpec"]["oneOf"].as_array().expect("KindSpec.oneOf").clone();
    assert_eq!(branches.len(), 3);
    let owner = app.register("owner").await;
    let now = jiff::Timestamp::now();
    let kinds = [
        engine::fixtures::event(engine::domain::ids::UserId::new_v7(), "e", 10, now).kind,
        engine::fixtures::hotel(engine::domain::ids::UserId::new_v7(), "h", "Berlin", 1, 1).kind,
        engine::fixtures::provider(engine::domain::ids::UserId::new_v7(), "p").kind,
    ];
    for kind in kinds {
        let id = app.create_resource(&owner, "Schema check", serde_json::to_value(&kind).expect("json")).await;
        let (_, r) = app.get(&format!("/api/v1/resources/{id}"), None).await;
        let sent = &r["spec"];
        let fits: Vec<&Value> = branches
            .iter()
            .filter(|b| {
                let props = b["properties"].as_object().expect("an inlined branch has properties");
                let tag_ok = b["properties"]["type"]["enum"].as_array().is_some_and(|e| e.contains(&sent["type"]));
                let required_ok = b["required"]
                    .as_array()
                    .is_some_and(|req| req.iter().all(|f| f.as_str().is_some_and(|f| sent.get(f).is_some())));
                let no_extra = sent.as_object().expect("kind").keys().all(|k| props.contains_key(k));
                tag_ok && required_ok && no_extra && b["additionalProperties"] == json!(false)
            })
            .collect();
        assert_eq!(fits.len(), 1, "kind {sent} fits {} branches of {branches:?}", fits.len());
    }
}

/// A documented path asked with a method it does not serve answers 405 with `Allow`; an
/// unknown path stays 404.
#[actix_web::test]
async fn a_known_path_with_another_method_is_405_with_allow() {
    let app = spawn_app().await;
    let id = uuid::Uuid::now_v7();
    for (method, path, allow) in [
        (reqwest::Method::DELETE, "/api/v1/bookings".to_owned(), "GET, POST"),
        (reqwest::Method::PATCH, format!("/api/v1/resources/{id}"), "GET, PUT"),
        (reqwest::Method::POST, "/health".to_owned(), "GET"),
        (reqwest::Method::PUT, "/api/v1/calendar/abc.ics".to_owned(), "GET"),
    ] {
        let res = app.http.request(method.clone(), format!("{}{path}", app.addr)).send().await.expect("sent");
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(res.headers().get("allow").and_then(|v| v.to_str().ok()), Some(allow), "{method} {path}");
        let v: Value = res.json().await.expect("problem");
        assert_eq!(v["code"], "method_not_allowed");
    }
    let res = app.http.delete(format!("{}/api/v1/nothing-here", app.addr)).send().await.expect("sent");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // A literal path beats a template: GET /payments/webhook is not GET /payments/{id} (400).
    let res = app.http.get(format!("{}/api/v1/payments/webhook", app.addr)).send().await.expect("sent");
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers().get("allow").and_then(|v| v.to_str().ok()), Some("POST"));

    // The method is refused before the idempotency middleware judges the key: the same key
    // on two unserved methods is 405 both times, never 422 `idempotency_key_reused`.
    let client = app.register("client").await;
    for method in [reqwest::Method::PUT, reqwest::Method::PATCH] {
        let res = app
            .http
            .request(method.clone(), format!("{}/api/v1/bookings/{id}/cancel", app.addr))
            .bearer_auth(&client.token)
            .header("Idempotency-Key", "same-key-on-unserved-methods")
            .json(&json!({}))
            .send()
            .await
            .expect("sent");
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
    }
}

/// The property `prop` of component schema `schema`.
fn property<'a>(spec: &'a Value, schema: &str, prop: &str) -> &'a Value {
    let p = &spec["components"]["schemas"][schema]["properties"][prop];
    assert!(p.is_object(), "{schema}.{prop} is not in the spec");
    p
}

/// The limits the server enforces are declared where a client (or a generated one) reads them,
/// with the same numbers as the constants the checks use, so a schema-valid request is not
/// refused for a limit the schema hid.
#[actix_web::test]
async fn the_limits_the_server_enforces_are_declared_with_its_numbers() {
    use engine::domain::{command, event, hotel, provider, spec as rspec};
    use gateway::pagination::{DEFAULT_PAGE, MAX_PAGE};
    let app = spawn_app().await;
    let v = spec(&app).await;

    // Every page size, wherever it is taken.
    let mut pages = 0;
    for (path, item) in v["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            for p in op["parameters"].as_array().into_iter().flatten().filter(|p| p["name"] == "limit") {
                let s = &p["schema"];
                assert_eq!(s["minimum"], 1, "{method} {path} limit");
                assert_eq!(s["maximum"], MAX_PAGE, "{method} {path} limit");
                assert_eq!(s["default"], DEFAULT_PAGE, "{method} {path} limit");
                pages += 1;
            }
        }
    }
    assert!(pages >= 7, "only {pages} operations take a page size");

    let n = |x: usize| json!(x);
    let u = |x: u32| json!(x);
    let table: Vec<(&str, &str, &str, Value)> = vec![
        ("ResourceInput", "name", "maxLength", n(rspec::MAX_NAME_CHARS)),
        ("ResourceInput", "name", "minLength", json!(1)),
        ("ResourceInput", "hold_ttl_secs", "maximum", u(rspec::MAX_HOLD_TTL_SECS)),
        ("ResourceInput", "hold_ttl_secs", "minimum", json!(1)),
        ("ResourceInput", "hold_ttl_secs", "default", u(rspec::DEFAULT_HOLD_TTL_SECS)),
        ("ResourceInput", "offer_ttl_secs", "default", u(rspec::DEFAULT_OFFER_TTL_SECS)),
        ("ResourceInput", "offer_ttl_secs", "maximum", u(rspec::MAX_OFFER_TTL_SECS)),
        ("ResourceInput", "reference", "maxLength", n(rspec::MAX_REFERENCE_CHARS)),
        ("RegisterBody", "password", "minLength", n(gateway::auth::MIN_PASSWORD_CHARS)),
        ("RegisterBody", "password", "maxLength", n(gateway::auth::MAX_PASSWORD_CHARS)),
        ("RegisterBody", "name", "maxLength", n(rspec::MAX_NAME_CHARS)),
        ("LoginBody", "password", "maxLength", n(gateway::auth::MAX_PASSWORD_CHARS)),
        ("CancelBody", "reason", "maxLength", n(command::MAX_REASON_CHARS)),
        ("ConfirmBody", "payment_ref", "maxLength", n(command::MAX_KEY_CHARS)),
        ("EndpointInput", "description", "maxLength", n(gateway::routes::webhooks::MAX_DESCRIPTION_CHARS)),
        ("EndpointInput", "event_types", "minItems", json!(1)),
        ("KeyInput", "name", "maxLength", n(gateway::integration_keys::MAX_NAME_CHARS)),
        ("KeyInput", "hotel_ids", "maxItems", n(gateway::integration_keys::MAX_HOTELS_PER_KEY)),
        ("FeedEvent", "timestamp", "minLength", json!(1)),
        ("FeedEvent", "rpg_status", "minimum", json!(1)),
        ("FeedEvent", "rpg_status", "maximum", json!(2)),
        ("WebhookBody", "event_id", "maxLength", n(gateway::payments::MAX_EVENT_ID_CHARS)),
        ("EventSpec", "capacity", "maximum", u(event::MAX_EVENT_CAPACITY)),
        ("EventSpec", "max_per_booking", "maximum", u(event::MAX_PER_BOOKING_LIMIT)),
        ("EventSpec", "categories", "maxItems", n(event::MAX_CATEGORIES)),
        ("HotelSpec", "room_types", "maxItems", n(hotel::MAX_ROOM_TYPES)),
        ("HotelSpec", "rooms", "maxItems", n(hotel::MAX_ROOMS)),
        ("HotelSpec", "booking_horizon_days", "maximum", json!(hotel::MAX_HORIZON_DAYS)),
        ("RoomTypeSpec", "capacity_guests", "maximum", json!(hotel::MAX_GUESTS)),
        ("RoomSpec", "number", "maxLength", n(hotel::MAX_ROOM_NUMBER_CHARS)),
        ("ProviderSpec", "slot_minutes", "maximum", json!(provider::MAX_SLOT_MINUTES)),
        ("ProviderSpec", "buffer_minutes", "maximum", json!(provider::MAX_BUFFER_MINUTES)),
        ("ProviderSpec", "min_notice_minutes", "maximum", u(provider::MAX_NOTICE_MINUTES)),
        ("ProviderSpec", "booking_horizon_days", "maximum", json!(provider::MAX_HORIZON_DAYS)),
        ("ProviderSpec", "overrides", "maxItems", n(provider::MAX_OVERRIDES)),
    ];
    for (schema, prop, keyword, want) in &table {
        assert_eq!(&property(&v, schema, prop)[*keyword], want, "{schema}.{prop} {keyword}");
    }
    for (schema, prop) in
        [("EventSpec", "price_minor"), ("RoomTypeSpec", "base_price_minor"), ("ProviderSpec", "price_minor")]
    {
        let max = property(&v, schema, prop)["maximum"].as_f64();
        assert_eq!(max, Some(engine::domain::money::MAX_UNIT_PRICE_MINOR as f64), "{schema}.{prop}");
    }
    // Quantities and guests in every request and wish.
    let text = serde_json::to_string(&v["components"]["schemas"]["BookingRequest"]).expect("json");
    assert!(text.contains(&format!("\"maximum\":{}", event::MAX_PER_BOOKING_LIMIT)), "{text}");
    assert!(text.contains(&format!("\"maximum\":{}", hotel::MAX_GUESTS)), "{text}");

    // The patterns accept what the server accepts and refuse what it refuses.
    let name = property(&v, "ResourceInput", "name")["pattern"].as_str().expect("pattern").to_owned();
    let name = regex::Regex::new(&name).expect("an ECMA pattern that is also a Rust regex");
    assert!(name.is_match("Rust Conf 2030") && name.is_match(" Zimmer\u{e4} "));
    assert!(!name.is_match("   ") && !name.is_match("tab\there") && !name.is_match(""));
    let reference = property(&v, "ResourceInput", "reference")["pattern"].as_str().expect("pattern").to_owned();
    let reference = regex::Regex::new(&reference).expect("a Rust regex too");
    for r in ["0", "berlin-1", "A.b_c", "x y", "-1", "", "ä", &"x".repeat(rspec::MAX_REFERENCE_CHARS + 1)] {
        assert_eq!(reference.is_match(r), rspec::check_reference(r).is_ok(), "reference {r:?}");
    }
    let email = property(&v, "RegisterBody", "email")["pattern"].as_str().expect("pattern").to_owned();
    let email = regex::Regex::new(&email).expect("a Rust regex too");
    assert!(email.is_match("ada@example.com") && email.is_match("a+b@x.y"));
    assert!(!email.is_match("ada@.example") && !email.is_match("ada@example") && !email.is_match("a b@x.y"));

    // And the server holds the line at the declared numbers.
    let client = app.register("client").await;
    for (limit, want) in [
        (MAX_PAGE, StatusCode::OK),
        (MAX_PAGE + 1, StatusCode::UNPROCESSABLE_ENTITY),
        (0, StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (st, body) =
            app.send(reqwest::Method::GET, &format!("/api/v1/bookings?limit={limit}"), Some(&client.token), None).await;
        assert_eq!(st, want, "limit={limit}: {body}");
    }
}
