//! (a) Flash sale: many clients on one event of capacity C, tickets confirmed at once, until
//! it sells out.

use crate::api::{Api, BoxError};
use crate::driver::Workload;
use crate::stats::Outcome;
use futures::future::BoxFuture;
use gateway::accounts::Role;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use uuid::Uuid;

pub struct FlashSale {
    pub event: String,
    tokens: Vec<String>,
    body: Value,
    sold_out: AtomicBool,
}

impl FlashSale {
    pub async fn setup(api: &Api, capacity: u32, users: usize) -> Result<FlashSale, BoxError> {
        let owner = api.token(Uuid::now_v7(), Role::Owner)?;
        // An event a month from now (the same shape the tests use), capacity as asked.
        // Free tickets: clients confirm at once without a payment (a priced one needs POST /payments).
        let spec = engine::fixtures::free(engine::fixtures::event(
            engine::domain::ids::UserId(Uuid::nil()),
            "Flash sale",
            capacity,
            jiff::Timestamp::now(),
        ));
        let event = api.create_resource(&owner, &spec).await?;
        let body = json!({"resource_id": event, "request": {"kind": "tickets", "quantity": 1}, "confirm": true});
        Ok(FlashSale { event, tokens: api.client_tokens(users)?, body, sold_out: AtomicBool::new(false) })
    }
}

impl Workload for FlashSale {
    fn call<'a>(&'a self, api: &'a Api, n: u64) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let token = &self.tokens[(n % self.tokens.len() as u64) as usize];
            let out = api.book(token, &self.body).await;
            if matches!(&out, Outcome::Refused { code, .. } if code == "sold_out") {
                self.sold_out.store(true, Ordering::Relaxed);
            }
            out
        })
    }

    fn finished(&self) -> bool {
        self.sold_out.load(Ordering::Relaxed)
    }
}
