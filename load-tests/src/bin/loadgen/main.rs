//! loadgen: drives a running gateway over HTTP like a crowd of clients would, measures what
//! they saw, then checks in PostgreSQL that the engine kept its promises (PASS or FAIL).
//!
//! Scenarios: `flash-sale` (many clients on one event). Both closed loop (`--clients N`
//! concurrent clients, each sending its next request when the last answered) and open loop
//! (`--rate R`: requests leave on a fixed schedule whatever the server does, and latency is
//! measured from the scheduled send time, so a server that falls behind shows it). Clients
//! are minted access tokens with the server's JWT_SECRET (no sign-up per client); run the
//! server with RATE_LIMIT_BOOKINGS_PER_SEC raised for rates above its per-user default.
//!
//! ```text
//! JWT_SECRET=... loadgen --base-url http://127.0.0.1:8080 \
//!     --database-url postgres://postgres@127.0.0.1/reservations flash-sale --capacity 100000 --clients 1000
//! ```

mod invariants;
mod stats;

use clap::{Parser, Subcommand};
use gateway::accounts::Role;
use gateway::auth::{JwtKeys, access_token};
use serde_json::{Value, json};
use stats::{Outcome, Recorder};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use uuid::Uuid;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser)]
#[command(about = "HTTP load generator and invariant checker for the reservation gateway")]
struct Args {
    /// The running gateway.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base_url: String,
    /// The server's JWT secret, to mint access tokens for the simulated clients.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    /// The server's database, for the invariant check after the run (skipped without it).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Many clients booking tickets of one event (confirmed at once) until it sells out.
    FlashSale {
        #[arg(long, default_value_t = 10_000)]
        capacity: u32,
        /// Closed loop: this many concurrent clients.
        #[arg(long, default_value_t = 500)]
        clients: usize,
        /// Open loop instead: requests per second, on a fixed schedule.
        #[arg(long)]
        rate: Option<u32>,
        /// Open loop: how long to send; closed loop: the longest a run may take.
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
        /// Distinct client accounts the requests are spread over.
        #[arg(long, default_value_t = 1_000)]
        users: usize,
        /// Open loop: requests in flight at most; beyond it a send is counted as not sent.
        #[arg(long, default_value_t = 20_000)]
        max_in_flight: usize,
    },
    /// Availability search: `hotels` hotels spread over `cities` cities, random stays booked
    /// across the next year, then `clients` closed-loop clients searching a random city for a
    /// random stay of 1 to 7 nights in the next 365 days.
    HotelSearch {
        #[arg(long, default_value_t = 1_000)]
        hotels: usize,
        #[arg(long, default_value_t = 20)]
        cities: usize,
        /// Stays booked before the searches start (spread over the hotels and the year).
        #[arg(long, default_value_t = 20_000)]
        stays: usize,
        /// Concurrent clients; a list (`16,64`) runs one phase per count on the same hotels.
        #[arg(long, value_delimiter = ',', default_value = "64")]
        clients: Vec<usize>,
        /// Per phase.
        #[arg(long, default_value_t = 20)]
        duration_secs: u64,
        /// Hotels per page of results.
        #[arg(long, default_value_t = 20)]
        page: u32,
    },
    /// Creates `count` events and reads each once, so each has an actor in memory: for the
    /// server's memory with that many active resources (read its RSS before and after).
    ManyResources {
        #[arg(long, default_value_t = 100_000)]
        count: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// The server's process id: its resident memory (VmRSS) is read before and after.
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// Only the invariant check, over everything in the database.
    Check,
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let pass = rt.block_on(run(args))?;
    if !pass {
        std::process::exit(1);
    }
    Ok(())
}

struct Api {
    http: reqwest::Client,
    base: String,
    keys: JwtKeys,
}

impl Api {
    fn token(&self, user: Uuid, role: Role) -> Result<String, BoxError> {
        access_token(&self.keys, engine::domain::ids::UserId(user), role, jiff::Timestamp::now())
            .map_err(|e| format!("minting a token: {}", e.detail).into())
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> Result<(u16, Value), reqwest::Error> {
        let res = self.http.post(format!("{}{path}", self.base)).bearer_auth(token).json(body).send().await?;
        let status = res.status().as_u16();
        let v = res.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, v))
    }
}

async fn run(args: Args) -> Result<bool, BoxError> {
    // Tokens live long enough for the longest run.
    let keys = JwtKeys::new(args.jwt_secret.as_bytes(), 24 * 3600, 24 * 3600);
    let http = reqwest::Client::builder().pool_max_idle_per_host(50_000).timeout(Duration::from_secs(60)).build()?;
    let api = Arc::new(Api { http, base: args.base_url.trim_end_matches('/').to_owned(), keys });
    let (mut report, acked, expected_ok) = match args.scenario {
        Scenario::FlashSale { capacity, clients, rate, duration_secs, users, max_in_flight } => {
            let fs = FlashSale::setup(&api, capacity, users).await?;
            let event = fs.event.clone();
            let (rec, elapsed, window) = match rate {
                Some(r) => fs.open_loop(&api, r, Duration::from_secs(duration_secs), max_in_flight.max(1)).await,
                None => fs.closed_loop(&api, clients.max(1), Duration::from_secs(duration_secs)).await,
            };
            let label = match rate {
                Some(r) => format!("flash sale, open loop {r}/s, capacity {capacity}"),
                None => format!("flash sale, closed loop {clients} clients, capacity {capacity}"),
            };
            let mut v = rec.report(&label, elapsed, window);
            v["event_id"] = json!(event);
            let over = rec.acked.len() > capacity as usize;
            v["oversold_by_acks"] = json!(over);
            let unexpected = rec.unexpected(&["sold_out"]);
            v["unexpected_answers"] = json!(unexpected);
            (v, rec.acked, !over && unexpected == 0)
        }
        Scenario::HotelSearch { hotels, cities, stays, clients, duration_secs, page } => {
            let setup = HotelSetup::create(&api, hotels.max(1), cities.max(1), stays).await?;
            let mut phases = Vec::new();
            let mut ok = true;
            for c in clients.iter().map(|c| (*c).max(1)) {
                let (rec, elapsed) = setup.search(&api, c, Duration::from_secs(duration_secs), page).await;
                let label = format!("hotel search, {hotels} hotels in {cities} cities, {c} clients, {page} per page");
                let mut v = rec.report(&label, elapsed, elapsed);
                v["searches_per_sec"] = v["requests_per_sec"].clone();
                v["stays_booked_before"] = json!(setup.booked);
                let unexpected = rec.unexpected(&["ok"]);
                v["unexpected_answers"] = json!(unexpected);
                ok &= unexpected == 0;
                if !args.json {
                    stats::print_human(&v);
                }
                phases.push(v);
            }
            (json!({"scenario": "hotel search", "phases": phases}), setup.acked, ok)
        }
        Scenario::ManyResources { count, concurrency, server_pid } => {
            let v = many_resources(&api, count, concurrency.max(1), server_pid).await?;
            let ok = v["failed"].as_u64() == Some(0);
            (v, Vec::new(), ok)
        }
        Scenario::Check => (json!({"scenario": "check"}), Vec::new(), true),
    };
    if !args.json && report["scenario"] == "hotel search" {
        // Printed phase by phase above.
    } else if !args.json && report["scenario"] == "many resources" {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !args.json && report["scenario"] != "check" {
        stats::print_human(&report);
    }
    let mut pass = expected_ok;
    if let Some(url) = args.database_url.as_deref().filter(|u| !u.trim().is_empty()) {
        let (db, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        let checks = invariants::check_all(&db, &acked).await?;
        let ok = if args.json {
            checks.iter().all(|c| c.violations.is_empty())
        } else {
            invariants::print(&checks, acked.len())
        };
        report["invariants"] =
            json!(checks.iter().map(|c| json!({"check": c.name, "violations": c.violations})).collect::<Vec<_>>());
        report["invariants_pass"] = json!(ok);
        pass &= ok;
    } else if !args.json {
        println!("invariants: not checked (no --database-url)");
    }
    if !expected_ok && !args.json {
        println!("FAIL: more acknowledgements than capacity, or answers other than 201 and sold_out");
    }
    if args.json {
        report["pass"] = json!(pass);
        println!("{report}");
    }
    Ok(pass)
}

struct FlashSale {
    event: String,
    tokens: Vec<String>,
}

impl FlashSale {
    async fn setup(api: &Api, capacity: u32, users: usize) -> Result<FlashSale, BoxError> {
        let owner = api.token(Uuid::now_v7(), Role::Owner)?;
        // An event a month from now (the same shape the tests use), capacity as asked.
        let spec = engine::fixtures::event(
            engine::domain::ids::UserId(Uuid::nil()),
            "Flash sale",
            capacity,
            jiff::Timestamp::now(),
        );
        let kind = serde_json::to_value(spec.kind)?;
        let (status, v) = api.post("/api/v1/resources", &owner, &json!({"name": "Flash sale", "kind": kind})).await?;
        if status != 201 {
            return Err(format!("creating the event answered {status}: {v}").into());
        }
        let event = v["id"].as_str().ok_or("no event id")?.to_owned();
        let tokens = (0..users.max(1)).map(|_| api.token(Uuid::now_v7(), Role::Client)).collect::<Result<_, _>>()?;
        Ok(FlashSale { event, tokens })
    }

    async fn book(&self, api: &Api, i: usize) -> Outcome {
        let body = json!({"resource_id": self.event, "request": {"kind": "tickets", "quantity": 1}, "confirm": true});
        match api.post("/api/v1/bookings", &self.tokens[i % self.tokens.len()], &body).await {
            Ok((201, v)) => match (v["id"].as_str().and_then(|s| Uuid::parse_str(s).ok()), v["status"].as_str()) {
                (Some(id), Some(status)) => Outcome::Booked { id, status: status.to_owned() },
                _ => Outcome::Refused { status: 201, code: "malformed_booking".into() },
            },
            Ok((status, v)) => Outcome::Refused { status, code: v["code"].as_str().unwrap_or("no_code").to_owned() },
            Err(e) => {
                Outcome::Refused { status: 0, code: if e.is_timeout() { "timeout".into() } else { "transport".into() } }
            }
        }
    }

    /// `clients` loops, each booking until the event is sold out (or `limit` passes).
    async fn closed_loop(self, api: &Arc<Api>, clients: usize, limit: Duration) -> (Recorder, Duration, Duration) {
        let this = Arc::new(self);
        let sold_out = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let last_ack = Arc::new(std::sync::Mutex::new(Duration::ZERO));
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let (this, api, sold_out, last_ack) = (this.clone(), api.clone(), sold_out.clone(), last_ack.clone());
                tokio::spawn(async move {
                    let mut rec = Recorder::new();
                    let mut i = c;
                    while !sold_out.load(Ordering::Relaxed) && started.elapsed() < limit {
                        let t = Instant::now();
                        let out = this.book(&api, i).await;
                        let done = t.elapsed();
                        match &out {
                            Outcome::Refused { code, .. } if code == "sold_out" => {
                                sold_out.store(true, Ordering::Relaxed)
                            }
                            Outcome::Booked { .. } => {
                                let at = started.elapsed();
                                if let Ok(mut l) = last_ack.lock() {
                                    *l = (*l).max(at);
                                }
                            }
                            _ => {}
                        }
                        rec.record(done, out);
                        i += clients;
                    }
                    rec
                })
            })
            .collect();
        let mut total = Recorder::new();
        for t in tasks {
            if let Ok(r) = t.await {
                total.merge(r);
            }
        }
        let window = last_ack.lock().map(|l| *l).unwrap_or_default();
        (total, started.elapsed(), window)
    }

    /// Requests at `rate` per second for `duration`, each on its own schedule.
    async fn open_loop(
        self,
        api: &Arc<Api>,
        rate: u32,
        duration: Duration,
        max_in_flight: usize,
    ) -> (Recorder, Duration, Duration) {
        let this = Arc::new(self);
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
            let (this, api, tx) = (this.clone(), api.clone(), tx.clone());
            tokio::spawn(async move {
                let out = this.book(&api, n as usize).await;
                // From the scheduled send time: a late send is the server's (or the
                // generator's) queueing and is not hidden.
                let latency = due.elapsed();
                let _ = tx.send((latency, out, started.elapsed()));
                drop(permit);
            });
        }
        drop(tx);
        let mut rec = Recorder::new();
        let mut window = Duration::ZERO;
        while let Some((latency, out, at)) = rx.recv().await {
            if matches!(out, Outcome::Booked { .. }) {
                window = window.max(at);
            }
            rec.record(latency, out);
        }
        rec.not_sent = not_sent;
        (rec, started.elapsed(), window)
    }
}

/// Resident memory of a process in KiB (Linux /proc).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

async fn many_resources(api: &Arc<Api>, count: usize, concurrency: usize, pid: Option<u32>) -> Result<Value, BoxError> {
    use futures::StreamExt;
    let rss_before = pid.and_then(rss_kib);
    let owner = api.token(Uuid::now_v7(), Role::Owner)?;
    let spec = engine::fixtures::event(engine::domain::ids::UserId(Uuid::nil()), "x", 100, jiff::Timestamp::now());
    let kind = serde_json::to_value(spec.kind)?;
    let started = Instant::now();
    let created: Vec<Option<String>> = futures::stream::iter(0..count)
        .map(|i| {
            let (api, owner, kind) = (api.clone(), owner.clone(), kind.clone());
            async move {
                let body = json!({"name": format!("Event {i}"), "kind": kind});
                match api.post("/api/v1/resources", &owner, &body).await {
                    Ok((201, v)) => v["id"].as_str().map(str::to_owned),
                    _ => None,
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let create_secs = started.elapsed().as_secs_f64();
    let ids: Vec<String> = created.iter().flatten().cloned().collect();
    let rss_created = pid.and_then(rss_kib);
    // Reading each once activates its actor (creating may already have).
    let started = Instant::now();
    let read_ok: usize = futures::stream::iter(ids.iter())
        .map(|id| {
            let api = api.clone();
            async move {
                let res = api.http.get(format!("{}/api/v1/resources/{id}", api.base)).send().await;
                usize::from(res.map(|r| r.status().is_success()).unwrap_or(false))
            }
        })
        .buffer_unordered(concurrency)
        .fold(0, |a, b| async move { a + b })
        .await;
    let read_secs = started.elapsed().as_secs_f64();
    let rss_after = pid.and_then(rss_kib);
    let failed = (count - ids.len()) + (ids.len() - read_ok);
    let per_resource = match (rss_before, rss_after) {
        (Some(b), Some(a)) if !ids.is_empty() => Some((a.saturating_sub(b) as f64 * 1024.0) / ids.len() as f64),
        _ => None,
    };
    Ok(json!({
        "scenario": "many resources",
        "created": ids.len(),
        "creates_per_sec": ids.len() as f64 / create_secs.max(1e-9),
        "read": read_ok,
        "reads_per_sec": read_ok as f64 / read_secs.max(1e-9),
        "failed": failed,
        "server_rss_mib_before": rss_before.map(|k| k as f64 / 1024.0),
        "server_rss_mib_after_create": rss_created.map(|k| k as f64 / 1024.0),
        "server_rss_mib_after_read": rss_after.map(|k| k as f64 / 1024.0),
        "server_bytes_per_active_resource": per_resource,
    }))
}

/// A small, seeded generator: the load's randomness needs no quality, only speed and repeats.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

struct HotelSetup {
    cities: usize,
    booked: usize,
    acked: Vec<(Uuid, String)>,
}

impl HotelSetup {
    async fn create(api: &Arc<Api>, hotels: usize, cities: usize, stays: usize) -> Result<HotelSetup, BoxError> {
        use futures::StreamExt;
        let owner = api.token(Uuid::now_v7(), Role::Owner)?;
        let run = Uuid::now_v7().simple().to_string();
        // (hotel id, double room type) per hotel; 16 doubles and 4 suites each.
        let created: Vec<Result<(String, String), String>> = futures::stream::iter(0..hotels)
            .map(|i| {
                let (api, owner, run) = (api.clone(), owner.clone(), run.clone());
                async move {
                    let name = format!("Hotel {i} {run}");
                    let spec = engine::fixtures::hotel(
                        engine::domain::ids::UserId(Uuid::nil()),
                        &name,
                        &format!("City {}", i % cities),
                        16,
                        4,
                    );
                    let kind = serde_json::to_value(&spec.kind).map_err(|e| e.to_string())?;
                    let double = match &spec.kind {
                        engine::domain::spec::KindSpec::Hotel(h) => h.room_types[0].id.0.to_string(),
                        _ => return Err("not a hotel".to_owned()),
                    };
                    match api.post("/api/v1/resources", &owner, &json!({"name": name, "kind": kind})).await {
                        Ok((201, v)) => Ok((v["id"].as_str().unwrap_or_default().to_owned(), double)),
                        Ok((st, v)) => Err(format!("creating a hotel answered {st}: {v}")),
                        Err(e) => Err(e.to_string()),
                    }
                }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        let hotels: Vec<(String, String)> = created.into_iter().collect::<Result<_, _>>()?;
        let today = jiff::Zoned::now().date();
        let client = api.token(Uuid::now_v7(), Role::Client)?;
        let results: Vec<Option<(Uuid, String)>> = futures::stream::iter(0..stays)
            .map(|n| {
                let (api, client) = (api.clone(), client.clone());
                let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (n as u64 + 1));
                let (hotel, double) = hotels[rng.below(hotels.len() as u64) as usize].clone();
                let check_in = today + jiff::Span::new().days(i64::try_from(2 + rng.below(360)).unwrap_or(2));
                let check_out = check_in + jiff::Span::new().days(i64::try_from(1 + rng.below(7)).unwrap_or(1));
                async move {
                    let body = json!({"resource_id": hotel, "confirm": true, "request": {
                        "kind": "stay", "room_type_id": double, "check_in": check_in.to_string(),
                        "check_out": check_out.to_string(), "guests": 2}});
                    match api.post("/api/v1/bookings", &client, &body).await {
                        Ok((201, v)) => {
                            Some((Uuid::parse_str(v["id"].as_str()?).ok()?, v["status"].as_str()?.to_owned()))
                        }
                        _ => None,
                    }
                }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        let acked: Vec<(Uuid, String)> = results.into_iter().flatten().collect();
        Ok(HotelSetup { cities, booked: acked.len(), acked })
    }

    async fn search(&self, api: &Arc<Api>, clients: usize, duration: Duration, page: u32) -> (Recorder, Duration) {
        let started = Instant::now();
        let today = jiff::Zoned::now().date();
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let (api, cities) = (api.clone(), self.cities);
                tokio::spawn(async move {
                    let mut rec = Recorder::new();
                    let mut rng = XorShift(0x2545_F491_4F6C_DD1D ^ (c as u64 + 1));
                    while started.elapsed() < duration {
                        let check_in = today + jiff::Span::new().days(i64::try_from(2 + rng.below(360)).unwrap_or(2));
                        let check_out = check_in + jiff::Span::new().days(i64::try_from(1 + rng.below(7)).unwrap_or(1));
                        let url = format!(
                            "{}/api/v1/hotels/search?city=City%20{}&check_in={check_in}&check_out={check_out}&guests=2&limit={page}",
                            api.base,
                            rng.below(cities as u64)
                        );
                        let t = Instant::now();
                        let out = match api.http.get(url).send().await {
                            Ok(r) if r.status().is_success() => {
                                let status = r.status().as_u16();
                                // Read the whole answer: its size is part of the cost.
                                match r.bytes().await {
                                    Ok(_) => Outcome::Answered { status },
                                    Err(_) => Outcome::Refused { status: 0, code: "transport".into() },
                                }
                            }
                            Ok(r) => {
                                let status = r.status().as_u16();
                                let v = r.json::<Value>().await.unwrap_or(Value::Null);
                                Outcome::Refused { status, code: v["code"].as_str().unwrap_or("no_code").to_owned() }
                            }
                            Err(_) => Outcome::Refused { status: 0, code: "transport".into() },
                        };
                        rec.record(t.elapsed(), out);
                    }
                    rec
                })
            })
            .collect();
        let mut total = Recorder::new();
        for t in tasks {
            if let Ok(r) = t.await {
                total.merge(r);
            }
        }
        (total, started.elapsed())
    }
}
