//! Payments through the simulated provider: a trait with a PostgreSQL and an in-memory
//! implementation (tables `payments`, `payment_webhook_events`, migration V3), and in
//! `provider` the webhook signatures and the simulator that calls the webhook.

pub mod memory;
pub mod postgres;
pub mod provider;

use engine::domain::ids::{BookingId, ResourceId, UserId};
use engine::domain::money::Money;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use uuid::Uuid;

pub type PaymentFuture<T> = Pin<Box<dyn Future<Output = Result<T, PaymentError>> + Send + 'static>>;

/// Longest provider event id we store.
pub const MAX_EVENT_ID_CHARS: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Succeeded,
    Failed,
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Refunded => "refunded",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => PaymentStatus::Pending,
            "succeeded" => PaymentStatus::Succeeded,
            "failed" => PaymentStatus::Failed,
            "refunded" => PaymentStatus::Refunded,
            _ => return None,
        })
    }
}

/// What the simulated provider is told to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChosenOutcome {
    Succeed,
    Fail,
}

impl ChosenOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ChosenOutcome::Succeed => "succeed",
            ChosenOutcome::Fail => "fail",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "succeed" => Some(ChosenOutcome::Succeed),
            "fail" => Some(ChosenOutcome::Fail),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Payment {
    pub id: Uuid,
    pub booking_id: BookingId,
    pub resource_id: ResourceId,
    pub user_id: UserId,
    pub amount: Money,
    pub status: PaymentStatus,
    pub chosen_outcome: Option<ChosenOutcome>,
    pub failure_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One processed webhook delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEvent {
    pub event_id: String,
    pub payment_id: Uuid,
    pub received_at: Timestamp,
    /// The payment's status after the event.
    pub result: PaymentStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error("a payment for this booking is already pending")]
    PendingExists,
    #[error("the payment is no longer pending (it is {})", .0.as_str())]
    NotPending(PaymentStatus),
    #[error("payment store unavailable: {0}")]
    Unavailable(String),
}

pub trait Payments: Send + Sync + 'static {
    /// Stores a new pending payment; `PendingExists` if its booking has one already.
    fn create(&self, p: Payment) -> PaymentFuture<()>;
    fn get(&self, id: Uuid) -> PaymentFuture<Option<Payment>>;
    /// Sets what the simulator will report, while the payment is pending (`NotPending` after).
    fn choose_outcome(&self, id: Uuid, outcome: ChosenOutcome, now: Timestamp) -> PaymentFuture<Option<Payment>>;
    /// Moves a pending payment to `to` (`NotPending` if it had left pending already: a
    /// concurrent delivery won). `Ok(None)` if there is no such payment.
    fn settle(
        &self,
        id: Uuid,
        to: PaymentStatus,
        failure_reason: Option<String>,
        now: Timestamp,
    ) -> PaymentFuture<Option<Payment>>;
    /// Marks a succeeded payment refunded (an admin refunded its cancelled booking in full).
    /// `Ok(None)` if there is no such succeeded payment.
    fn refund(&self, id: Uuid, reason: String, now: Timestamp) -> PaymentFuture<Option<Payment>>;
    fn webhook_event(&self, event_id: &str) -> PaymentFuture<Option<WebhookEvent>>;
    /// Records a processed delivery. `Some(first)` if one with that id was recorded before
    /// (a concurrent delivery won): nothing is written then.
    fn record_event(&self, ev: WebhookEvent) -> PaymentFuture<Option<WebhookEvent>>;
}
