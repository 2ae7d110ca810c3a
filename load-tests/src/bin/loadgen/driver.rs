//! How load is offered, whatever the scenario: closed loop (N clients, each sending its next
//! request when the last one answered) or open loop (requests leave on a fixed schedule
//! whatever the server does, latency measured from the scheduled send time, so a server that
//! falls behind shows it instead of slowing the generator down with it).

use crate::api::Api;
use crate::stats::{Outcome, Recorder};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// What one simulated request does. `n` numbers the requests of a run (0, 1, 2, ...): a
/// scenario derives from it which user sends and, through a seeded generator, what.
pub trait Workload: Send + Sync + 'static {
    fn call<'a>(&'a self, api: &'a Api, n: u64) -> BoxFuture<'a, Outcome>;
    /// Closed loop stops early once this is true (an event sold out, a day fully booked).
    fn finished(&self) -> bool {
        false
    }
}

/// The load's shape, shared by every scenario's command line.
#[derive(clap::Args, Clone, Debug)]
pub struct LoadArgs {
    /// Closed loop: this many concurrent clients.
    #[arg(long, default_value_t = 500)]
    pub clients: usize,
    /// Open loop instead: requests per second, on a fixed schedule.
    #[arg(long)]
    pub rate: Option<u32>,
    /// Open loop: how long to send; closed loop: the longest a run may take.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Open loop: requests in flight at most; beyond it a send is counted as not sent.
    #[arg(long, default_value_t = 20_000)]
    pub max_in_flight: usize,
}

impl LoadArgs {
    pub fn label(&self) -> String {
        match self.rate {
            Some(r) => format!("open loop {r}/s for {} s", self.duration_secs),
            None => format!("closed loop {} clients", self.clients),
        }
    }
}

/// What a run measured, and until when bookings were still being acknowledged (the rate of
/// bookings is over that window, not over the tail of refusals after a sell-out).
pub struct Run {
    pub rec: Recorder,
    pub elapsed: Duration,
    pub booking_window: Duration,
}

pub async fn drive(api: &Arc<Api>, work: Arc<dyn Workload>, load: &LoadArgs) -> Run {
    let duration = Duration::from_secs(load.duration_secs);
    match load.rate {
        Some(rate) => open_loop(api, work, rate.max(1), duration, load.max_in_flight.max(1)).await,
        None => closed_loop(api, work, load.clients.max(1), duration).await,
    }
}

async fn closed_loop(api: &Arc<Api>, work: Arc<dyn Workload>, clients: usize, limit: Duration) -> Run {
    let started = Instant::now();
    let last_ack = Arc::new(Mutex::new(Duration::ZERO));
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (work, api, last_ack) = (work.clone(), api.clone(), last_ack.clone());
            tokio::spawn(async move {
                let mut rec = Recorder::new();
                let mut n = c as u64;
                while !work.finished() && started.elapsed() < limit {
                    let t = Instant::now();
                    let out = work.call(&api, n).await;
                    let took = t.elapsed();
                    if matches!(out, Outcome::Booked { .. }) {
                        let at = started.elapsed();
                        if let Ok(mut l) = last_ack.lock() {
                            *l = (*l).max(at);
                        }
                    }
                    rec.record(took, out);
                    n += clients as u64;
                }
                rec
            })
        })
        .collect();
    let mut rec = Recorder::new();
    for t in tasks {
        if let Ok(r) = t.await {
            rec.merge(r);
        }
    }
    let booking_window = last_ack.lock().map(|l| *l).unwrap_or_default();
    Run { rec, elapsed: started.elapsed(), booking_window }
}

async fn open_loop(
    api: &Arc<Api>,
    work: Arc<dyn Workload>,
    rate: u32,
    duration: Duration,
    max_in_flight: usize,
) -> Run {
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Duration, Outcome, Duration)>();
    let total_requests = u64::from(rate) * duration.as_secs();
    let started = tokio::time::Instant::now();
    let mut not_sent = 0;
    for n in 0..total_requests {
        let due = started + Duration::from_secs_f64(n as f64 / f64::from(rate));
        tokio::time::sleep_until(due).await;
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            not_sent += 1;
            continue;
        };
        let (work, api, tx) = (work.clone(), api.clone(), tx.clone());
        tokio::spawn(async move {
            let out = work.call(&api, n).await;
            // From the scheduled send time: a late send is the server's (or the generator's)
            // queueing and is not hidden.
            let latency = due.elapsed();
            let _ = tx.send((latency, out, started.elapsed()));
            drop(permit);
        });
    }
    drop(tx);
    let mut rec = Recorder::new();
    let mut booking_window = Duration::ZERO;
    while let Some((latency, out, at)) = rx.recv().await {
        if matches!(out, Outcome::Booked { .. }) {
            booking_window = booking_window.max(at);
        }
        rec.record(latency, out);
    }
    rec.not_sent = not_sent;
    Run { rec, elapsed: started.elapsed(), booking_window }
}
