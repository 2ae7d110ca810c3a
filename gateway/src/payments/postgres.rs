//! Payments in PostgreSQL (tables `payments`, `payment_webhook_events`, migration V3).

use super::{ChosenOutcome, Payment, PaymentError, PaymentFuture, PaymentStatus, Payments, WebhookEvent};
use deadpool_postgres::Pool;
use engine::domain::ids::{BookingId, ResourceId, UserId};
use engine::domain::money::{Currency, Money};
use jiff::Timestamp;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

#[derive(Clone)]
pub struct PgPayments {
    pool: Pool,
}

impl PgPayments {
    pub fn new(pool: Pool) -> Self {
        PgPayments { pool }
    }
}

fn unavailable(e: impl std::fmt::Display) -> PaymentError {
    PaymentError::Unavailable(e.to_string())
}

const COLUMNS: &str = "id, booking_id, resource_id, user_id, amount_minor, currency, status, chosen_outcome, \
                       failure_reason, created_at, updated_at";

fn payment_from(r: &Row) -> Result<Payment, PaymentError> {
    let status: String = r.get("status");
    let chosen: Option<String> = r.get("chosen_outcome");
    let currency: String = r.get("currency");
    Ok(Payment {
        id: r.get("id"),
        booking_id: BookingId(r.get("booking_id")),
        resource_id: ResourceId(r.get("resource_id")),
        user_id: UserId(r.get("user_id")),
        amount: Money::new(
            r.get("amount_minor"),
            Currency::parse(&currency).map_err(|_| unavailable(format!("bad currency {currency:?}")))?,
        ),
        status: PaymentStatus::parse(&status).ok_or_else(|| unavailable(format!("unknown status {status}")))?,
        chosen_outcome: chosen
            .map(|c| ChosenOutcome::parse(&c).ok_or_else(|| unavailable(format!("unknown outcome {c}"))))
            .transpose()?,
        failure_reason: r.get("failure_reason"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    })
}

fn event_from(r: &Row) -> Result<WebhookEvent, PaymentError> {
    let result: String = r.get("result");
    Ok(WebhookEvent {
        event_id: r.get("event_id"),
        payment_id: r.get("payment_id"),
        received_at: r.get("received_at"),
        result: PaymentStatus::parse(&result).ok_or_else(|| unavailable(format!("unknown result {result}")))?,
    })
}

/// The payment's status when a guarded update matched no row: not pending, or absent.
async fn current_status(c: &deadpool_postgres::Object, id: Uuid) -> Result<Option<PaymentStatus>, PaymentError> {
    let row = c.query_opt("SELECT status FROM payments WHERE id = $1", &[&id]).await.map_err(unavailable)?;
    row.map(|r| {
        let s: String = r.get(0);
        PaymentStatus::parse(&s).ok_or_else(|| unavailable(format!("unknown status {s}")))
    })
    .transpose()
}

impl Payments for PgPayments {
    fn create(&self, p: Payment) -> PaymentFuture<()> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let c = pool.get().await.map_err(unavailable)?;
            let r = c
                .execute(
                    &format!("INSERT INTO payments ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"),
                    &[
                        &p.id,
                        &p.booking_id.0,
                        &p.resource_id.0,
                        &p.user_id.0,
                        &p.amount.amount_minor,
                        &p.amount.currency.as_str(),
                        &p.status.as_str(),
                        &p.chosen_outcome.map(ChosenOutcome::as_str),
                        &p.failure_reason,
                        &p.created_at,
                        &p.updated_at,
                    ],
                )
                .await;
            match r {
                Ok(_) => Ok(()),
                // payments_one_pending_per_booking
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(PaymentError::PendingExists),
                Err(e) => Err(unavailable(e)),
            }
        })
    }

    fn get(&self, id: Uuid) -> PaymentFuture<Option<Payment>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let c = pool.get().await.map_err(unavailable)?;
            let row = c
                .query_opt(&format!("SELECT {COLUMNS} FROM payments WHERE id = $1"), &[&id])
                .await
                .map_err(unavailable)?;
            row.as_ref().map(payment_from).transpose()
        })
    }

    fn choose_outcome(&self, id: Uuid, outcome: ChosenOutcome, now: Timestamp) -> PaymentFuture<Option<Payment>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let c = pool.get().await.map_err(unavailable)?;
            let row = c
                .query_opt(
                    &format!(
                        "UPDATE payments SET chosen_outcome = $2, updated_at = $3
                         WHERE id = $1 AND status = 'pending' RETURNING {COLUMNS}"
                    ),
                    &[&id, &outcome.as_str(), &now],
                )
                .await
                .map_err(unavailable)?;
            match row {
                Some(r) => payment_from(&r).map(Some),
                None => match current_status(&c, id).await? {
                    Some(s) => Err(PaymentError::NotPending(s)),
                    None => Ok(None),
                },
            }
        })
    }

    fn settle(
        &self,
        id: Uuid,
        to: PaymentStatus,
        failure_reason: Option<String>,
        now: Timestamp,
    ) -> PaymentFuture<Option<Payment>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let c = pool.get().await.map_err(unavailable)?;
            // Guarded on `pending`: of two concurrent deliveries only one settles.
            let row = c
                .query_opt(
                    &format!(
                        "UPDATE payments SET status = $2, failure_reason = $3, updated_at = $4
                         WHERE id = $1 AND status = 'pending' RETURNING {COLUMNS}"
                    ),
                    &[&id, &to.as_str(), &failure_reason, &now],
                )
                .await
                .map_err(unavailable)?;
            match row {
                Some(r) => payment_from(&r).map(Some),
                None => match current_status(&c, id).await? {
                    Some(s) => Err(PaymentError::NotPending(s)),
                    None => Ok(None),
                },
            }
        })
    }

    fn refund(&self, id: Uuid, reason: String, now: Timestamp) -> PaymentFuture<Option<Payment>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let c = pool.get().await.map_err(unavailable)?;
            let row = c
                .query_opt(
                    &format!(
                        "UPDATE payments SET status = 'refunded', failure_reason = $2, updated_at = $3
                         WHERE id = $1 AND status = 'succeeded' RETURNING {COLUMNS}"
                    ),
                    &[&id, &reason, &now],
                )
                .await
                .map_err(unavailable)?;
            row.as_ref().map(payment_from).transpose()
        })
    }

    fn webhook_event(&self, event_id: &str) -> PaymentFuture<Option<WebhookEvent>> {
        let pool = self.pool.clone();
        let event_id = event_id.to_owned();
        Box::pin(async move {
            let c = pool.get().await.map_err(unavailable)?;
            let row = c
                .query_opt(
                    "SELECT event_id, payment_id, received_at, result FROM payment_webhook_events WHERE event_id = $1",
                    &[&event_id],
                )
                .await
                .map_err(unavailable)?;
            row.as_ref().map(event_from).transpose()
        })
    }

    fn record_event(&self, ev: WebhookEvent) -> PaymentFuture<Option<WebhookEvent>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let c = pool.get().await.map_err(unavailable)?;
            let inserted = c
                .execute(
                    "INSERT INTO payment_webhook_events (event_id, payment_id, received_at, result)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING",
                    &[&ev.event_id, &ev.payment_id, &ev.received_at, &ev.result.as_str()],
                )
                .await
                .map_err(unavailable)?;
            if inserted == 1 {
                return Ok(None);
            }
            // Rows are never deleted, so the one that won is there.
            let row = c
                .query_one(
                    "SELECT event_id, payment_id, received_at, result FROM payment_webhook_events WHERE event_id = $1",
                    &[&ev.event_id],
                )
                .await
                .map_err(unavailable)?;
            event_from(&row).map(Some)
        })
    }
}
