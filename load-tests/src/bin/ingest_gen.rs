//! ingest-gen: seed 000's `send_random_data.sh`, against our running server. It signs in as
//! an owner (registering it if needed), creates N hotels (rooms numbered 1..=R, like the seed's
//! integer room ids) unless given existing ones, then sends random booked and cancelled
//! room-nights of one year to `POST /api/v1/ingest` in batches, at a chosen rate (0 = as fast
//! as the server answers), and reports what the server answered and the rate it sustained.
//!
//! Booking events walk each hotel's room-nights in a pseudo-random order without repeats, so
//! every booking event is a new booking (a real write) unless `--collide` asks for random,
//! colliding ones; cancellations pick a room-night this run booked before.

use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

#[derive(Parser, Debug, Clone)]
#[command(about = "Random booking/cancellation events for a year, sent to a running server's /api/v1/ingest")]
struct Args {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The owner to sign in as (registered first if it does not exist).
    #[arg(long, default_value = "feed-owner@example.com")]
    email: String,
    #[arg(long, default_value = "feed-owner-password")]
    password: String,
    /// Hotels to create (ignored with --hotel).
    #[arg(long, default_value_t = 4)]
    hotels: usize,
    /// Rooms per created hotel, numbered 1..=rooms.
    #[arg(long, default_value_t = 100)]
    rooms: u32,
    /// Existing hotel ids to feed instead of creating hotels (rooms must be numbered 1..=rooms).
    #[arg(long = "hotel")]
    hotel_ids: Vec<String>,
    /// The year whose nights are booked (must be bookable: from today to the hotel's horizon).
    #[arg(long, default_value_t = 2028)]
    year: i16,
    /// Events per second in total; 0 = as fast as the server answers.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Events per request (1..=1000).
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// How long to send.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Share of events that cancel an earlier booking (0..1).
    #[arg(long, default_value_t = 0.1)]
    cancel_ratio: f64,
    /// Random rooms and nights (bookings collide and are refused) instead of a walk without repeats.
    #[arg(long)]
    collide: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop after this many events (0: only --seconds limits the run).
    #[arg(long, default_value_t = 0)]
    events: u64,
    /// Send the feed with an integration key made for these hotels (as a channel manager
    /// would) instead of the owner's access token.
    #[arg(long)]
    use_key: bool,
    /// Afterwards, read the first hotel's dashboard this many times (day, then month) and
    /// report the latency.
    #[arg(long, default_value_t = 0)]
    dashboard_reads: u32,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// xorshift64*: enough randomness for test data, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// One hotel's walk over its room-nights and what this run booked there.
struct Feed {
    id: String,
    slots: u64,
    stride: u64,
    next: u64,
    booked: Vec<u64>,
}

struct Gen {
    args: Args,
    nights: Vec<String>,
    feeds: Vec<Feed>,
    rng: Rng,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl Gen {
    /// The next batch of events.
    fn batch(&mut self) -> Vec<Value> {
        let now = jiff::Timestamp::now();
        let mut out = Vec::with_capacity(self.args.batch);
        for _ in 0..self.args.batch {
            let h = self.rng.below(self.feeds.len() as u64) as usize;
            let nights = self.nights.len() as u64;
            let cancel = self.rng.chance(self.args.cancel_ratio);
            let Some(f) = self.feeds.get_mut(h) else { break };
            let (status, slot) = if cancel && !f.booked.is_empty() {
                let i = self.rng.below(f.booked.len() as u64) as usize;
                (2, f.booked.swap_remove(i))
            } else if self.args.collide {
                (1, self.rng.below(f.slots))
            } else {
                if f.next >= f.slots {
                    continue;
                }
                let s = (f.next * f.stride) % f.slots;
                f.next += 1;
                f.booked.push(s);
                (1, s)
            };
            let room = slot / nights + 1;
            let night = &self.nights[(slot % nights) as usize];
            // Each event its own instant, so two events are never the same event.
            let ts = now + jiff::SignedDuration::from_micros(out.len() as i64);
            out.push(json!({"hotel_id": f.id, "timestamp": ts.to_string(), "rpg_status": status,
                "room_id": room, "night_of_stay": night}));
        }
        out
    }
}

async fn token(http: &reqwest::Client, args: &Args) -> Result<String, BoxError> {
    let login = json!({"email": args.email, "password": args.password});
    let res = http.post(format!("{}/api/v1/auth/login", args.url)).json(&login).send().await?;
    let v: Value = if res.status().is_success() {
        res.json().await?
    } else {
        let reg = json!({"email": args.email, "password": args.password, "name": "Feed owner", "role": "owner"});
        let res = http.post(format!("{}/api/v1/auth/register", args.url)).json(&reg).send().await?;
        if !res.status().is_success() {
            return Err(format!("cannot sign in or register {}: {}", args.email, res.text().await?).into());
        }
        res.json().await?
    };
    v["access_token"].as_str().map(str::to_owned).ok_or_else(|| "no access_token in the answer".into())
}

/// An integration key limited to `hotels`, made with the owner's token.
async fn integration_key(
    http: &reqwest::Client,
    args: &Args,
    token: &str,
    hotels: &[String],
) -> Result<String, BoxError> {
    let body = json!({"name": "ingest-gen", "hotel_ids": hotels});
    let res =
        http.post(format!("{}/api/v1/me/integration-keys", args.url)).bearer_auth(token).json(&body).send().await?;
    if !res.status().is_success() {
        return Err(format!("making an integration key failed: {}", res.text().await?).into());
    }
    let v: Value = res.json().await?;
    v["key"].as_str().map(str::to_owned).ok_or_else(|| "no key in the answer".into())
}

async fn create_hotel(http: &reqwest::Client, args: &Args, token: &str, n: usize) -> Result<String, BoxError> {
    let rt = uuid::Uuid::now_v7();
    let rooms: Vec<Value> = (1..=args.rooms)
        .map(|i| json!({"id": uuid::Uuid::now_v7(), "number": i.to_string(), "room_type_id": rt}))
        .collect();
    let body = json!({"name": format!("Generated hotel {n}"), "kind": {"type": "hotel", "city": "Generated",
        "time_zone": "Europe/Berlin", "currency": "EUR", "check_out_time": "11:00:00", "booking_horizon_days": 1100,
        "room_types": [{"id": rt, "name": "Room", "capacity_guests": 2, "base_price_minor": 9_900}], "rooms": rooms}});
    let res = http.post(format!("{}/api/v1/resources", args.url)).bearer_auth(token).json(&body).send().await?;
    if !res.status().is_success() {
        return Err(format!("creating a hotel failed: {}", res.text().await?).into());
    }
    let v: Value = res.json().await?;
    v["id"].as_str().map(str::to_owned).ok_or_else(|| "no id in the answer".into())
}

#[derive(Default)]
struct Tally {
    results: BTreeMap<String, u64>,
    failed_requests: u64,
    latency_us: Option<Histogram<u64>>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    if !(1..=1000).contains(&args.batch) {
        return Err("--batch must be 1..=1000".into());
    }
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency.max(1) * 2).build()?;
    let token = token(&http, &args).await?;
    let mut ids = args.hotel_ids.clone();
    if ids.is_empty() {
        for n in 0..args.hotels {
            ids.push(create_hotel(&http, &args, &token, n).await?);
        }
        eprintln!("created {} hotels with {} rooms each", ids.len(), args.rooms);
    }
    // What the feed is sent with: the owner's access token, or a key for these hotels.
    let feed_token = if args.use_key { integration_key(&http, &args, &token, &ids).await? } else { token.clone() };
    let first = jiff::civil::date(args.year, 1, 1);
    let mut nights = Vec::new();
    let mut d = first;
    while d.year() == args.year {
        nights.push(d.to_string());
        d = d.tomorrow()?;
    }
    let slots = u64::from(args.rooms) * nights.len() as u64;
    // A stride coprime with the number of slots walks all of them once, in a scattered order.
    let mut stride = 7_919 % slots.max(1);
    while slots > 1 && gcd(stride.max(1), slots) != 1 {
        stride += 1;
    }
    let feeds = ids
        .iter()
        .map(|id| Feed { id: id.clone(), slots, stride: stride.max(1), next: 0, booked: Vec::new() })
        .collect();
    let generator = Arc::new(Mutex::new(Gen { nights, feeds, rng: Rng(args.seed.max(1)), args: args.clone() }));
    let tally = Arc::new(Mutex::new(Tally { latency_us: Histogram::new(3).ok(), ..Tally::default() }));
    let sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.seconds);
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (generator, tally, sent, http, token) =
            (generator.clone(), tally.clone(), sent.clone(), http.clone(), feed_token.clone());
        let (url, rate, limit) = (format!("{}/api/v1/ingest", args.url), args.rate, args.events);
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let mut batch = generator.lock().await.batch();
                // Pace: the k-th event may leave at start + k / rate.
                let k = sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                if limit > 0 {
                    batch.truncate(usize::try_from(limit.saturating_sub(k)).unwrap_or(0));
                }
                if batch.is_empty() {
                    break;
                }
                if rate > 0 {
                    let due = start + Duration::from_secs_f64(k as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let t = Instant::now();
                let res = http.post(&url).bearer_auth(&token).json(&batch).send().await;
                let us = t.elapsed().as_micros() as u64;
                let mut tl = tally.lock().await;
                match res {
                    Ok(r) if r.status().is_success() => {
                        if let Some(h) = tl.latency_us.as_mut() {
                            let _ = h.record(us.max(1));
                        }
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        for item in v["results"].as_array().into_iter().flatten() {
                            let key = match item["status"].as_str() {
                                Some("rejected") => format!("rejected:{}", item["code"].as_str().unwrap_or("?")),
                                Some(s) => s.to_owned(),
                                None => "?".to_owned(),
                            };
                            *tl.results.entry(key).or_default() += 1;
                        }
                    }
                    Ok(r) => {
                        tl.failed_requests += 1;
                        eprintln!("request failed: {} {}", r.status(), r.text().await.unwrap_or_default());
                    }
                    Err(e) => {
                        tl.failed_requests += 1;
                        eprintln!("request failed: {e}");
                    }
                }
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let secs = start.elapsed().as_secs_f64();
    let tl = tally.lock().await;
    let answered: u64 = tl.results.values().sum();
    println!(
        "hotels {}, year {}, batch {}, concurrency {}, target rate {}/s",
        ids.len(),
        args.year,
        args.batch,
        args.concurrency,
        args.rate
    );
    println!(
        "{answered} events answered in {secs:.1} s = {:.0} events/s; failed requests {}",
        answered as f64 / secs,
        tl.failed_requests
    );
    for (k, v) in &tl.results {
        println!("  {k}: {v}");
    }
    if let Some(h) = &tl.latency_us {
        println!(
            "request latency ms: p50 {:.1}, p99 {:.1}, max {:.1}",
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.max() as f64 / 1000.0
        );
    }
    if args.dashboard_reads > 0
        && let Some(id) = ids.first()
    {
        for period in ["day", "month"] {
            let url = format!("{}/api/v1/resources/{id}/dashboard?year={}&period={period}", args.url, args.year);
            let mut h = Histogram::<u64>::new(3)?;
            let mut total = 0i64;
            for _ in 0..args.dashboard_reads {
                let t = Instant::now();
                let v: Value = http.get(&url).bearer_auth(&token).send().await?.error_for_status()?.json().await?;
                h.record((t.elapsed().as_micros() as u64).max(1))?;
                total = v.as_object().map(|o| o.values().filter_map(Value::as_i64).sum()).unwrap_or(0);
            }
            println!(
                "dashboard period={period} ({total} room-nights in the year), {} reads: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                args.dashboard_reads,
                h.value_at_quantile(0.5) as f64 / 1000.0,
                h.value_at_quantile(0.99) as f64 / 1000.0,
                h.max() as f64 / 1000.0
            );
        }
    }
    for id in &ids {
        println!("  hotel {id}: GET {}/api/v1/resources/{id}/dashboard?year={}&period=month", args.url, args.year);
    }
    Ok(())
}
