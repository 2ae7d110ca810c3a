//! Starting a payment for a held booking (both faces); the provider settles it later through
//! its webhook (`routes/payments.rs`).

use crate::app::AppError;
use crate::app::access::visible_booking;
use crate::auth::AuthUser;
use crate::payments::{Payment, PaymentError, PaymentStatus};
use crate::state::AppState;
use engine::domain::booking::BookingStatus;
use engine::domain::ids::BookingId;
use uuid::Uuid;

impl From<PaymentError> for AppError {
    fn from(e: PaymentError) -> Self {
        match e {
            PaymentError::PendingExists => AppError::conflict(
                "payment_pending",
                "a payment for this booking is already pending; wait for its result",
            ),
            PaymentError::NotPending(s) => {
                AppError::conflict("payment_not_pending", format!("the payment is already {}", s.as_str()))
            }
            PaymentError::Unavailable(d) => {
                tracing::warn!(detail = %d, "payment store unavailable");
                AppError::unavailable("the payment store is unavailable; retry shortly")
            }
        }
    }
}

/// Starts paying for a held booking the caller may see (`POST /payments`, and the bot's Pay
/// button): a pending payment, settled by the simulated provider through the webhook.
pub async fn start_payment(state: &AppState, user: &AuthUser, booking_id: BookingId) -> Result<Payment, AppError> {
    let (resource_id, booking) = visible_booking(state, user, booking_id).await?;
    let now = state.engine.now();
    if booking.status != BookingStatus::Held {
        return Err(AppError::conflict(
            "booking_not_held",
            format!("only a held booking can be paid; this one is {}", booking.status.as_str()),
        ));
    }
    if booking.hold_expires_at.is_some_and(|t| t <= now) {
        return Err(AppError::conflict("hold_expired", "the hold expired; book again"));
    }
    let payment = Payment {
        id: Uuid::now_v7(),
        booking_id: booking.id,
        resource_id,
        user_id: booking.user_id,
        amount: booking.amount,
        status: PaymentStatus::Pending,
        chosen_outcome: None,
        failure_reason: None,
        created_at: now,
        updated_at: now,
    };
    state.payments.create(payment.clone()).await?;
    state.payment_provider.simulate(state.payments.clone(), payment.id);
    Ok(payment)
}
