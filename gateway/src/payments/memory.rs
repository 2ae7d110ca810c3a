//! Payments in memory, for the no-database demo. Nothing survives the process.

use super::{ChosenOutcome, Payment, PaymentError, PaymentFuture, PaymentStatus, Payments, WebhookEvent};
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use uuid::Uuid;

#[derive(Default)]
struct Data {
    payments: HashMap<Uuid, Payment>,
    events: HashMap<String, WebhookEvent>,
}

#[derive(Clone, Default)]
pub struct MemoryPayments {
    data: Arc<Mutex<Data>>,
}

impl MemoryPayments {
    fn lock(&self) -> MutexGuard<'_, Data> {
        // Every update below is a check followed by one insert or field change: a poisoned
        // lock still guards consistent data.
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Payments for MemoryPayments {
    fn create(&self, p: Payment) -> PaymentFuture<()> {
        let this = self.clone();
        Box::pin(async move {
            let mut d = this.lock();
            if d.payments.values().any(|x| x.booking_id == p.booking_id && x.status == PaymentStatus::Pending) {
                return Err(PaymentError::PendingExists);
            }
            d.payments.insert(p.id, p);
            Ok(())
        })
    }

    fn get(&self, id: Uuid) -> PaymentFuture<Option<Payment>> {
        let this = self.clone();
        Box::pin(async move { Ok(this.lock().payments.get(&id).cloned()) })
    }

    fn choose_outcome(&self, id: Uuid, outcome: ChosenOutcome, now: Timestamp) -> PaymentFuture<Option<Payment>> {
        let this = self.clone();
        Box::pin(async move {
            let mut d = this.lock();
            let Some(p) = d.payments.get_mut(&id) else { return Ok(None) };
            if p.status != PaymentStatus::Pending {
                return Err(PaymentError::NotPending(p.status));
            }
            p.chosen_outcome = Some(outcome);
            p.updated_at = now;
            Ok(Some(p.clone()))
        })
    }

    fn settle(
        &self,
        id: Uuid,
        to: PaymentStatus,
        failure_reason: Option<String>,
        now: Timestamp,
    ) -> PaymentFuture<Option<Payment>> {
        let this = self.clone();
        Box::pin(async move {
            let mut d = this.lock();
            let Some(p) = d.payments.get_mut(&id) else { return Ok(None) };
            if p.status != PaymentStatus::Pending {
                return Err(PaymentError::NotPending(p.status));
            }
            p.status = to;
            p.failure_reason = failure_reason;
            p.updated_at = now;
            Ok(Some(p.clone()))
        })
    }

    fn refund(&self, id: Uuid, reason: String, now: Timestamp) -> PaymentFuture<Option<Payment>> {
        let this = self.clone();
        Box::pin(async move {
            let mut d = this.lock();
            match d.payments.get_mut(&id) {
                Some(p) if p.status == PaymentStatus::Succeeded => {
                    p.status = PaymentStatus::Refunded;
                    p.failure_reason = Some(reason);
                    p.updated_at = now;
                    Ok(Some(p.clone()))
                }
                _ => Ok(None),
            }
        })
    }

    fn webhook_event(&self, event_id: &str) -> PaymentFuture<Option<WebhookEvent>> {
        let this = self.clone();
        let event_id = event_id.to_owned();
        Box::pin(async move { Ok(this.lock().events.get(&event_id).cloned()) })
    }

    fn record_event(&self, ev: WebhookEvent) -> PaymentFuture<Option<WebhookEvent>> {
        let this = self.clone();
        Box::pin(async move {
            let mut d = this.lock();
            if let Some(first) = d.events.get(&ev.event_id) {
                return Ok(Some(first.clone()));
            }
            d.events.insert(ev.event_id.clone(), ev);
            Ok(None)
        })
    }
}
