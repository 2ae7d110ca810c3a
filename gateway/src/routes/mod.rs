//! The public API under /api/v1, and the operational endpoints.

pub mod admin;
pub mod auth;
pub mod bookings;
pub mod health;
pub mod payments;
pub mod resources;
pub mod waitlist;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(health::configure).service(
        web::scope("/api/v1")
            .configure(auth::configure)
            .configure(resources::configure)
            .configure(bookings::configure)
            .configure(waitlist::configure)
            .configure(payments::configure)
            .configure(admin::configure),
    );
}
