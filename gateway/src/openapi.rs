//! The OpenAPI 3.1 description of the API, generated from the handlers' `#[utoipa::path]`
//! annotations as the routes are registered (utoipa-actix-web), served at `/openapi.json`,
//! with Swagger UI (bundled, no internet needed) at `/docs/`.

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// Where the spec and the interactive docs are served.
pub const SPEC_PATH: &str = "/openapi.json";
pub const DOCS_PATH: &str = "/docs/";

/// Shared parts of the document; the paths (and the schemas they use) are added by
/// `UtoipaApp` from the `service(...)` calls in `routes`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Reservation engine API",
        description = "Hotels, events and appointment providers: search availability, hold and book, pay, \
                       join waitlists. Errors are RFC 9457 problem+json with a stable `code`. Sign in with \
                       /api/v1/auth/login and send the access token as `Authorization: Bearer <token>`."
    ),
    modifiers(&Meta),
    components(
        schemas(crate::error::Problem, engine::domain::error::FieldError),
        responses(
            crate::error::responses::BadRequest,
            crate::error::responses::Unauthorized,
            crate::error::responses::Forbidden,
            crate::error::responses::Unprocessable,
            crate::error::responses::TooManyRequests,
            crate::error::responses::Unavailable
        )
    ),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "resources", description = "Hotels, events and providers: declare, read, search"),
        (name = "bookings", description = "Hold, book, confirm, release, cancel, reschedule"),
        (name = "waitlist", description = "Waitlists of sold-out resources and their offers"),
        (name = "payments", description = "Paying for held bookings and the provider's webhook"),
        (name = "admin", description = "Admin-only operations"),
        (name = "dashboard", description = "Owners' figures per day or month: bookings, cancellations, revenue, capacity used"),
        (name = "ingest", description = "Channel-manager feed of booked and cancelled room-nights"),
        (name = "live", description = "Live updates over WebSocket: own bookings, owners' availability"),
        (name = "operations", description = "Health, readiness and metrics"),
        (name = "webhooks", description = "Owners' outbound webhooks: endpoints, signed deliveries, their log"),
        (name = "calendar", description = "iCal feeds of bookings at secret URLs"),
    )
)]
pub struct ApiDoc;

/// The `bearer` security scheme (JWT access tokens) and the crate version.
struct Meta;

impl Modify for Meta {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("An access token from /api/v1/auth/login, /register or /refresh"))
                    .build(),
            ),
        );
    }
}

/// Completes the collected document: every state-changing operation of a signed-in caller
/// honours an `Idempotency-Key` header (the idempotency middleware), so each documents it.
/// Operations without a token (register, login, refresh, logout, the payment webhook) ignore
/// the header, so they do not offer it.
pub fn finish(mut api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, RefOr, Required, Type};
    for item in api.paths.paths.values_mut() {
        for op in [&mut item.post, &mut item.put, &mut item.patch, &mut item.delete].into_iter().flatten() {
            if op.security.as_ref().is_none_or(Vec::is_empty) {
                continue;
            }
            let params = op.parameters.get_or_insert_with(Vec::new);
            let present =
                params.iter().any(|p| matches!(p, RefOr::T(p) if p.name.eq_ignore_ascii_case("idempotency-key")));
            if present {
                continue;
            }
            params.push(RefOr::T(
                ParameterBuilder::new()
                    .name("Idempotency-Key")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "1 to 200 visible ASCII characters, per caller, kept 24 h: a retry with the same key and \
                         request gets the first answer again (`Idempotent-Replayed: true`); the same key with \
                         another request is 422 `idempotency_key_reused`, while the first still runs 409 \
                         `idempotency_key_in_use`. An answer that carries a secret (sent with `Cache-Control: \
                         no-store`) is never kept: its retry answers 409 `idempotent_answer_withheld`.",
                    ))
                    .schema(Some(
                        ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(200)),
                    ))
                    .build(),
            ));
        }
    }
    close_tagged_variants(api)
}

/// serde's internally tagged enums (`KindSpec`: `{"type": "event", ...}`) come out of utoipa as
/// `oneOf` branches `allOf: [{$ref: EventSpec}, {type}]`. The referenced spec is closed
/// (`additionalProperties: false`, from `deny_unknown_fields`) and knows no `type`, and in
/// `allOf` each part is checked alone, so no document satisfied any branch. Each such branch is
/// inlined here as one closed object: the spec's properties plus the tag, which is what the
/// server accepts (serde strips the tag before the closed struct reads the rest).
fn close_tagged_variants(api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let Ok(mut doc) = serde_json::to_value(&api) else { return api };
    let schemas =
        doc.pointer("/components/schemas").and_then(serde_json::Value::as_object).cloned().unwrap_or_default();
    let resolve = |part: &serde_json::Value| match part.get("$ref").and_then(serde_json::Value::as_str) {
        Some(r) => schemas.get(r.trim_start_matches("#/components/schemas/")).cloned(),
        None => Some(part.clone()),
    };
    let Some(all) = doc.pointer_mut("/components/schemas").and_then(serde_json::Value::as_object_mut) else {
        return api;
    };
    for schema in all.values_mut() {
        let Some(branches) = schema.get_mut("oneOf").and_then(serde_json::Value::as_array_mut) else { continue };
        for branch in branches.iter_mut() {
            let Some(parts) = branch.get("allOf").and_then(serde_json::Value::as_array) else { continue };
            let Some(parts) = parts.iter().map(resolve).collect::<Option<Vec<_>>>() else { continue };
            if !parts.iter().any(|p| p.get("additionalProperties") == Some(&serde_json::Value::Bool(false))) {
                continue;
            }
            let (mut properties, mut required) = (serde_json::Map::new(), Vec::new());
            for p in &parts {
                if let Some(props) = p.get("properties").and_then(serde_json::Value::as_object) {
                    properties.extend(props.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                for r in p.get("required").and_then(serde_json::Value::as_array).into_iter().flatten() {
                    if !required.contains(r) {
                        required.push(r.clone());
                    }
                }
            }
            let mut inlined = serde_json::json!({
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            });
            if let Some(d) = parts.iter().find_map(|p| p.get("description")) {
                inlined["description"] = d.clone();
            }
            *branch = inlined;
        }
    }
    serde_json::from_value(doc).unwrap_or(api)
}

/// The documented paths and their methods, so that a request for a known path with a method
/// it does not serve is told 405 with `Allow` (not the unknown-route 404). Built from the
/// finished document, which lists every route (a test holds the two together).
pub struct KnownPaths(Vec<(Vec<String>, Vec<&'static str>)>);

impl KnownPaths {
    pub fn of(api: &utoipa::openapi::OpenApi) -> KnownPaths {
        let doc = serde_json::to_value(api).unwrap_or_default();
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            let methods: Vec<&'static str> = ["GET", "POST", "PUT", "PATCH", "DELETE"]
                .into_iter()
                .filter(|m| item.get(m.to_ascii_lowercase()).is_some())
                .collect();
            out.push((path.split('/').map(str::to_owned).collect(), methods));
        }
        KnownPaths(out)
    }

    /// The methods a documented path serves, if `path` is one of them.
    pub fn methods_of(&self, path: &str) -> Option<Vec<&'static str>> {
        let parts: Vec<&str> = path.split('/').collect();
        let mut found: Option<Vec<&'static str>> = None;
        for (template, methods) in &self.0 {
            let fits = template.len() == parts.len()
                && template.iter().zip(&parts).all(|(t, p)| match t.split_once('}') {
                    // `{id}` is any segment; `{token}.ics` any segment ending in `.ics`.
                    Some((param, suffix)) if param.starts_with('{') => p.len() > suffix.len() && p.ends_with(suffix),
                    _ => t == p,
                });
            if fits {
                let all = found.get_or_insert_with(Vec::new);
                all.extend(methods.iter().filter(|m| !all.contains(m)).copied().collect::<Vec<_>>());
            }
        }
        found
    }
}
