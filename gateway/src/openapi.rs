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

/// Completes the collected document: every state-changing operation honours an
/// `Idempotency-Key` header (the idempotency middleware), so each documents it.
pub fn finish(mut api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, RefOr, Required, Type};
    for item in api.paths.paths.values_mut() {
        for op in [&mut item.post, &mut item.put, &mut item.patch, &mut item.delete].into_iter().flatten() {
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
                         `idempotency_key_in_use`.",
                    ))
                    .schema(Some(
                        ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(200)),
                    ))
                    .build(),
            ));
        }
    }
    api
}
