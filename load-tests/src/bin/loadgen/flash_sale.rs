//! (a) Flash sale: many clients on one event of capacity C, tickets confirmed at once, until
//! it sells out. With `--events N`, the same load spread uniformly over N events of capacity
//! C each (spread load: the shards' case), until N sell-outs were heard.

use crate::api::{Api, BoxError};
use crate::driver::Workload;
use crate::stats::Outcome;
use futures::future::BoxFuture;
use gateway::accounts::Role;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use uuid::Uuid;

pub struct FlashSale {
    pub events: Vec<String>,
    tokens: Vec<String>,
    bodies: Vec<Value>,
    sold_out: AtomicUsize,
}

impl FlashSale {
    pub async fn setup(api: &Api, capacity: u32, users: usize, events: usize) -> Result<FlashSale, BoxError> {
        let owner = api.token(Uuid::now_v7(), Role::Owner)?;
        // Events a month from now (the same shape the tests use), capacity as asked.
        // Free tickets: clients confirm at once without a payment (a priced one needs POST /payments).
        let spec = engine::fixtures::free(engine::fixtures::event(
            engine::domain::ids::UserId(Uuid::nil()),
            "Flash sale",
            capacity,
            jiff::Timestamp::now(),
        ));
        let mut ids = Vec::with_capacity(events.max(1));
        for _ in 0..events.max(1) {
            ids.push(api.create_resource(&owner, &spec).await?);
        }
        let bodies = ids
            .iter()
            .map(|e| json!({"resource_id": e, "request": {"kind": "tickets", "quantity": 1}, "confirm": true}))
            .collect();
        Ok(FlashSale { events: ids, tokens: api.client_tokens(users).await?, bodies, sold_out: AtomicUsize::new(0) })
    }
}

impl Workload for FlashSale {
    fn call<'a>(&'a self, api: &'a Api, n: u64) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let token = &self.tokens[(n % self.tokens.len() as u64) as usize];
            // A uniform pick of the event, spread over the request numbers (Fibonacci hashing).
            let pick = (n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16) % self.bodies.len() as u64;
            let out = api.book(token, &self.bodies[pick as usize]).await;
            if matches!(&out, Outcome::Refused { code, .. } if code == "sold_out") {
                self.sold_out.fetch_add(1, Ordering::Relaxed);
            }
            out
        })
    }

    fn finished(&self) -> bool {
        self.sold_out.load(Ordering::Relaxed) >= self.events.len()
    }
}
