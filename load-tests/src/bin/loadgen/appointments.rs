//! (c) Appointments: many clients racing for the slots of one day at a few providers. The
//! day's free start times are read before the race (neighbouring starts overlap: booking one
//! takes its neighbours too); each client picks a random one it has not yet seen refused or
//! booked, so requests collide as they would when everyone looks at the same day. Without
//! cancellations a start once refused stays refused, so the race ends when every start has
//! been booked or refused: the day is full.

use crate::api::{Api, BoxError, XorShift};
use crate::driver::Workload;
use crate::stats::Outcome;
use futures::future::BoxFuture;
use gateway::accounts::Role;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use uuid::Uuid;

pub struct Appointments {
    pub providers: Vec<String>,
    /// (provider id, starts_at) of every free start of the day before the race.
    slots: Vec<(String, String)>,
    /// Per start: booked or refused by now (it will not come free again).
    gone: Vec<AtomicBool>,
    open: AtomicUsize,
    tokens: Vec<String>,
    pub day: jiff::civil::Date,
}

impl Appointments {
    /// `providers` providers (Berlin, Monday to Friday, 30-minute slots) and the free slots of
    /// the first weekday at least two days ahead.
    pub async fn setup(api: &Api, providers: usize, users: usize) -> Result<Appointments, BoxError> {
        let owner = api.token(Uuid::now_v7(), Role::Owner)?;
        let mut day = jiff::Zoned::now().date() + jiff::Span::new().days(2);
        while matches!(day.weekday(), jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday) {
            day = day.tomorrow()?;
        }
        let run = Uuid::now_v7().simple().to_string();
        let mut slots = Vec::new();
        let mut ids = Vec::new();
        for i in 0..providers.max(1) {
            // Free appointments: clients confirm at once without a payment.
            let spec = engine::fixtures::free(engine::fixtures::provider(
                engine::domain::ids::UserId(Uuid::nil()),
                &format!("Provider {i} {run}"),
            ));
            let id = api.create_resource(&owner, &spec).await?;
            let (status, v) = api.get(&format!("/api/v1/providers/{id}/slots?date={day}")).await?;
            let list = v["slots"]
                .as_array()
                .filter(|_| status == 200)
                .ok_or_else(|| format!("slots answered {status}: {v}"))?;
            slots.extend(list.iter().filter_map(|s| Some((id.clone(), s["starts_at"].as_str()?.to_owned()))));
            ids.push(id);
        }
        if slots.is_empty() {
            return Err(format!("the providers have no free slots on {day}").into());
        }
        let gone = slots.iter().map(|_| AtomicBool::new(false)).collect();
        let open = AtomicUsize::new(slots.len());
        Ok(Appointments { providers: ids, slots, gone, open, tokens: api.client_tokens(users).await?, day })
    }

    /// A random start not yet known to be gone (the next open one after a random pick).
    fn pick(&self, rng: &mut XorShift) -> Option<usize> {
        let len = self.slots.len();
        let first = rng.below(len as u64) as usize;
        (0..len).map(|k| (first + k) % len).find(|&i| !self.gone[i].load(Ordering::Relaxed))
    }

    fn mark_gone(&self, i: usize) {
        if !self.gone[i].swap(true, Ordering::Relaxed) {
            self.open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// True once every start has been booked or refused.
    pub fn day_full(&self) -> bool {
        self.finished()
    }
}

impl Workload for Appointments {
    fn call<'a>(&'a self, api: &'a Api, n: u64) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let mut rng = XorShift::seeded(n ^ 0x1405_7B7E_F767_814F);
            let Some(i) = self.pick(&mut rng) else {
                // Open loop goes on after the day is full: a request for a taken start.
                let i = rng.below(self.slots.len() as u64) as usize;
                return self.book(api, n, i).await;
            };
            let out = self.book(api, n, i).await;
            if matches!(&out, Outcome::Booked { .. })
                || matches!(&out, Outcome::Refused { code, .. } if code == "slot_unavailable")
            {
                self.mark_gone(i);
            }
            out
        })
    }

    fn finished(&self) -> bool {
        self.open.load(Ordering::Relaxed) == 0
    }
}

impl Appointments {
    async fn book(&self, api: &Api, n: u64, i: usize) -> Outcome {
        let (provider, starts_at) = &self.slots[i];
        let body: Value = json!({"resource_id": provider, "confirm": true,
            "request": {"kind": "appointment", "starts_at": starts_at}});
        let token = &self.tokens[(n % self.tokens.len() as u64) as usize];
        api.book(token, &body).await
    }
}
