//! The public API under /api/v1, and the operational endpoints.

pub mod admin;
pub mod auth;
pub mod bookings;
pub mod calendar;
pub mod dashboard;
pub mod dashboard_page;
pub mod deliveries;
pub mod health;
pub mod ingest;
pub mod integration_keys;
pub mod live;
pub mod payments;
pub mod resources;
pub mod waitlist;
pub mod webhooks;

use utoipa_actix_web::scope;
use utoipa_actix_web::service_config::ServiceConfig;

/// Registers every route; each handler's `#[utoipa::path]` is collected into the OpenAPI
/// document as it is registered.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.configure(health::configure).service(
        scope::scope("/api/v1")
            .configure(auth::configure)
            .configure(resources::configure)
            .configure(bookings::configure)
            .configure(waitlist::configure)
            .configure(payments::configure)
            .configure(admin::configure)
            .configure(dashboard::configure)
            .configure(ingest::configure)
            .configure(integration_keys::configure)
            .configure(deliveries::configure)
            .configure(live::configure)
            .configure(webhooks::configure)
            .configure(calendar::configure)
            .configure(crate::telegram::configure),
    );
}
