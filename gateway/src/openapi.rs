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
            crate::error::responses::Unavailable,
            crate::error::responses::PayloadTooLarge,
            crate::error::responses::UnsupportedMediaType,
            crate::error::responses::IdempotencyConflict
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

/// Completes the collected document with what middleware and extractors answer for every
/// route alike, so no handler has to repeat it:
/// - a path or query parameter that does not parse is 400 (`invalid_path`, `invalid_query`);
/// - a JSON body may be malformed (400), over `MAX_BODY_BYTES` (413), sent without its content
///   type (415) or fail the schema's types and limits (422);
/// - every state-changing operation of a signed-in caller honours an `Idempotency-Key` header
///   (the idempotency middleware): a bad key is 400, a key still running or whose answer is
///   withheld 409, a key reused for another request 422. Operations without a token
///   (register, login, refresh, logout, the payment webhook) ignore the header, so they do not
///   offer it.
pub fn finish(mut api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, Ref, RefOr, Required, Type};
    let ensure = |op: &mut utoipa::openapi::path::Operation, status: &str, response: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(response)));
    };
    for item in api.paths.paths.values_mut() {
        if let Some(op) = item.get.as_mut()
            && op.parameters.as_ref().is_some_and(|p| !p.is_empty())
        {
            ensure(op, "400", "BadRequest");
        }
        for op in [&mut item.post, &mut item.put, &mut item.patch, &mut item.delete].into_iter().flatten() {
            if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                ensure(op, "400", "BadRequest");
            }
            if op.request_body.is_some() {
                ensure(op, "400", "BadRequest");
                ensure(op, "413", "PayloadTooLarge");
                ensure(op, "415", "UnsupportedMediaType");
                ensure(op, "422", "Unprocessable");
            }
            if op.security.as_ref().is_none_or(Vec::is_empty) {
                continue;
            }
            ensure(op, "400", "BadRequest");
            ensure(op, "409", "IdempotencyConflict");
            ensure(op, "422", "Unprocessable");
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
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .min_length(Some(1))
                            .max_length(Some(200))
                            .pattern(Some("^[!-~]{1,200}$")),
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

/// The documented paths and their methods, so that a request for a documented path with a
/// method it does not serve is told 405 with `Allow` before anything else looks at it (the
/// router would otherwise hand `GET /payments/webhook` to `GET /payments/{id}`, and the
/// idempotency middleware would judge a key on a route that does not exist). Built from the
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

    /// The methods the documented path `path` serves, if it is one. Where several templates
    /// fit, the most specific wins, as in OpenAPI (a literal segment beats a parameter, earlier
    /// segments first): `/payments/webhook` is its own path, not `/payments/{id}`.
    pub fn methods_of(&self, path: &str) -> Option<&[&'static str]> {
        let parts: Vec<&str> = path.split('/').collect();
        let mut best: Option<(Vec<bool>, &[&'static str])> = None;
        for (template, methods) in &self.0 {
            if template.len() != parts.len() {
                continue;
            }
            let mut literal = Vec::with_capacity(parts.len());
            let fits = template.iter().zip(&parts).all(|(t, p)| match t.split_once('}') {
                // `{id}` is any segment; `{token}.ics` any segment ending in `.ics`.
                Some((param, suffix)) if param.starts_with('{') => {
                    literal.push(false);
                    p.len() > suffix.len() && p.ends_with(suffix)
                }
                _ => {
                    literal.push(true);
                    t == p
                }
            });
            if fits && best.as_ref().is_none_or(|(b, _)| literal > *b) {
                best = Some((literal, methods));
            }
        }
        best.map(|(_, methods)| methods)
    }
}

/// 405 `method_not_allowed` with `Allow` for a documented path asked with a method it does not
/// serve. HEAD and OPTIONS pass (the router and CORS answer those), as does every path the
/// document does not list (the router's 404).
pub async fn method_guard(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    use actix_web::http::{Method, StatusCode, header};
    let refused = match req.app_data::<actix_web::web::Data<KnownPaths>>() {
        Some(known) if req.method() != Method::HEAD && req.method() != Method::OPTIONS => known
            .methods_of(req.path())
            .filter(|m| !m.is_empty() && !m.contains(&req.method().as_str()))
            .map(|m| m.join(", ")),
        _ => None,
    };
    let Some(allow) = refused else {
        return next.call(req).await.map(actix_web::dev::ServiceResponse::map_into_boxed_body);
    };
    let e = crate::error::ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} {} is not served; this path takes {allow}", req.method(), req.path()),
    );
    let mut res = req.error_response(e);
    if let Ok(v) = header::HeaderValue::from_str(&allow) {
        res.headers_mut().insert(header::ALLOW, v);
    }
    Ok(res)
}
