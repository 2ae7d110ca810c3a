//! loadgen: drives a running gateway over HTTP like a crowd of clients would, measures what
//! they saw, then checks in PostgreSQL that the engine kept its promises (PASS or FAIL).
//!
//! Scenarios: `flash-sale` (many clients on one event), `hotel-rush` (random stays across a
//! year in many hotels, with cancellations), `appointments` (clients racing for one day's
//! slots), `mixed` (searches, stays, cancellations and tickets at once), `hotel-search` and
//! `many-resources`. Each booking scenario runs closed loop (`--clients N` concurrent
//! clients, each sending its next request when the last answered) or open loop (`--rate R`:
//! requests leave on a fixed schedule whatever the server does, and latency is measured from
//! the scheduled send time, so a server that falls behind shows it). Clients are minted access
//! tokens with the server's JWT_SECRET (no sign-up per client); run the server with
//! RATE_LIMIT_BOOKINGS_PER_SEC raised for rates above its per-user default.
//!
//! ```text
//! JWT_SECRET=... loadgen --base-url http://127.0.0.1:8080 \
//!     --database-url postgres://postgres@127.0.0.1/reservations flash-sale --capacity 100000 --clients 1000
//! ```

mod api;
mod appointments;
mod driver;
mod flash_sale;
mod hotels;
mod invariants;
mod many_resources;
mod mixed;
mod stats;

use api::{Api, BoxError};
use clap::{Parser, Subcommand};
use driver::{LoadArgs, Run, drive};
use gateway::auth::JwtKeys;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Longest the invariant check may take (it reads every booking of the run once).
const CHECK_TIMEOUT: Duration = Duration::from_secs(600);

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
    /// Give every simulated client an account with an email address (needs --database-url),
    /// so the notifier fans out and sends their notifications as it would for real clients;
    /// without it the clients have no accounts and no notification is sent.
    #[arg(long, requires = "database_url")]
    accounts: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

/// The hotels a scenario books and searches.
#[derive(clap::Args, Clone, Debug)]
struct HotelArgs {
    #[arg(long, default_value_t = 1_000)]
    hotels: usize,
    #[arg(long, default_value_t = 20)]
    cities: usize,
    /// Stays booked before the run starts (spread over the hotels and the year).
    #[arg(long, default_value_t = 20_000)]
    stays: usize,
}

#[derive(Subcommand)]
enum Scenario {
    /// (a) Many clients booking tickets of one event (confirmed at once) until it sells out.
    FlashSale {
        /// Each event's capacity.
        #[arg(long, default_value_t = 10_000)]
        capacity: u32,
        /// Distinct client accounts the requests are spread over.
        #[arg(long, default_value_t = 1_000)]
        users: usize,
        /// Events the requests spread over, uniformly (1: one hot event).
        #[arg(long, default_value_t = 1)]
        events: usize,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// (b) Hotel rush: clients book random stays of 1-7 nights across the next year in random
    /// hotels (16 doubles each), and cancel some of their own.
    HotelRush {
        #[command(flatten)]
        hotels: HotelArgs,
        #[arg(long, default_value_t = 1_000)]
        users: usize,
        /// Percent of requests that cancel one of the sender's stays instead of booking.
        #[arg(long, default_value_t = 20)]
        cancel_pct: u32,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// (c) Appointments: clients racing for the slots of one day at `providers` providers
    /// (10 slots a day each); ends when every slot is taken.
    Appointments {
        #[arg(long, default_value_t = 20)]
        providers: usize,
        #[arg(long, default_value_t = 1_000)]
        users: usize,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// (d) Mixed read/write: searches, stays booked and cancelled, tickets on a popular event.
    Mixed {
        #[command(flatten)]
        hotels: HotelArgs,
        #[arg(long, default_value_t = 1_000)]
        users: usize,
        #[arg(long, default_value_t = 70)]
        search_pct: u32,
        #[arg(long, default_value_t = 15)]
        ticket_pct: u32,
        /// Of the stay requests, the percent that cancel instead.
        #[arg(long, default_value_t = 20)]
        cancel_pct: u32,
        /// The event's capacity.
        #[arg(long, default_value_t = 1_000_000)]
        capacity: u32,
        /// Hotels per page of search results.
        #[arg(long, default_value_t = 20)]
        page: u32,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Availability search: closed-loop clients searching a random city for a random stay of
    /// 1 to 7 nights in the next 365 days.
    HotelSearch {
        #[command(flatten)]
        hotels: HotelArgs,
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

/// A booking scenario's report: the run's figures, and whether every answer was one the
/// scenario expects (a 2xx, or a refusal named in `expected`).
fn booking_report(label: String, run: &Run, expected: &[&str]) -> (Value, bool) {
    let mut v = run.rec.report(&label, run.elapsed, run.booking_window);
    let unexpected = run.rec.unexpected(expected);
    v["unexpected_answers"] = json!(unexpected);
    (v, unexpected == 0)
}

async fn run(args: Args) -> Result<bool, BoxError> {
    // Tokens live long enough for the longest run.
    let keys = JwtKeys::new(args.jwt_secret.as_bytes(), 24 * 3600, 24 * 3600);
    let http = reqwest::Client::builder().pool_max_idle_per_host(50_000).timeout(Duration::from_secs(60)).build()?;
    let accounts = match args.database_url.as_deref().filter(|u| args.accounts && !u.trim().is_empty()) {
        Some(url) => {
            let (db, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            Some(db)
        }
        None => None,
    };
    let api = Arc::new(Api { http, base: args.base_url.trim_end_matches('/').to_owned(), keys, accounts });
    let (mut report, acked, expected_ok) = match args.scenario {
        Scenario::FlashSale { capacity, users, events, load } => {
            let sale = Arc::new(flash_sale::FlashSale::setup(&api, capacity, users, events).await?);
            let run = drive(&api, sale.clone(), &load).await;
            let n = sale.events.len();
            let label = format!("flash sale, {}, {n} event(s) of capacity {capacity}", load.label());
            let (mut v, ok) = booking_report(label, &run, &["sold_out"]);
            v["event_id"] = json!(sale.events.first());
            v["events"] = json!(n);
            let over = run.rec.bookings() > u64::from(capacity) * n as u64;
            v["oversold_by_acks"] = json!(over);
            (v, run.rec.acked, ok && !over)
        }
        Scenario::HotelRush { hotels, users, cancel_pct, load } => {
            let setup = hotels::HotelSetup::create(&api, hotels.hotels, hotels.cities, hotels.stays).await?;
            let mut acked = setup.acked.clone();
            let rush = Arc::new(hotels::Rush::new(&api, setup, users, cancel_pct).await?);
            let run = drive(&api, rush, &load).await;
            let label = format!("hotel rush, {} hotels, {cancel_pct}% cancellations, {}", hotels.hotels, load.label());
            let (v, ok) = booking_report(label, &run, &["no_room_available"]);
            acked.extend(run.rec.acked);
            (v, acked, ok)
        }
        Scenario::Appointments { providers, users, load } => {
            let work = Arc::new(appointments::Appointments::setup(&api, providers, users).await?);
            let run = drive(&api, work.clone(), &load).await;
            let slots = work.slot_count();
            let label = format!("appointments, {providers} providers, {slots} slots on {}, {}", work.day, load.label());
            let (mut v, ok) = booking_report(label, &run, &["slot_unavailable"]);
            // One booking per start at most: more acknowledgements than starts is a double booking.
            let over = run.rec.bookings() > slots as u64;
            v["slots"] = json!(slots);
            v["day"] = json!(work.day.to_string());
            v["providers"] = json!(work.providers);
            v["day_full"] = json!(work.day_full());
            v["double_booked_by_acks"] = json!(over);
            (v, run.rec.acked, ok && !over)
        }
        Scenario::Mixed { hotels, users, search_pct, ticket_pct, cancel_pct, capacity, page, load } => {
            let setup = hotels::HotelSetup::create(&api, hotels.hotels, hotels.cities, hotels.stays).await?;
            let mut acked = setup.acked.clone();
            let search = hotels::Search { cities: setup.cities, page, today: jiff::Zoned::now().date() };
            let rush = hotels::Rush::new(&api, setup, users, cancel_pct).await?;
            let sale = flash_sale::FlashSale::setup(&api, capacity, users, 1).await?;
            let search_pct = search_pct.min(100);
            let ticket_pct = ticket_pct.min(100 - search_pct);
            let work = Arc::new(mixed::Mixed { search, rush, sale, search_pct, ticket_pct });
            let run = drive(&api, work, &load).await;
            let label = format!(
                "mixed, {search_pct}% searches, {ticket_pct}% tickets, the rest stays ({cancel_pct}% of them cancellations), {}",
                load.label()
            );
            let (v, ok) = booking_report(label, &run, &["no_room_available", "sold_out", "ok"]);
            acked.extend(run.rec.acked);
            (v, acked, ok)
        }
        Scenario::HotelSearch { hotels, clients, duration_secs, page } => {
            let setup = hotels::HotelSetup::create(&api, hotels.hotels, hotels.cities, hotels.stays).await?;
            let search = Arc::new(hotels::Search { cities: setup.cities, page, today: jiff::Zoned::now().date() });
            let mut phases = Vec::new();
            let mut ok = true;
            for c in clients.iter().map(|c| (*c).max(1)) {
                let load = LoadArgs { clients: c, rate: None, duration_secs, max_in_flight: c };
                let run = drive(&api, search.clone(), &load).await;
                let label = format!(
                    "hotel search, {} hotels in {} cities, {c} clients, {page} per page",
                    hotels.hotels, hotels.cities
                );
                let (mut v, phase_ok) = booking_report(label, &run, &["ok"]);
                v["searches_per_sec"] = v["requests_per_sec"].clone();
                v["stays_booked_before"] = json!(setup.acked.len());
                ok &= phase_ok;
                if !args.json {
                    stats::print_human(&v);
                }
                phases.push(v);
            }
            (json!({"scenario": "hotel search", "phases": phases}), setup.acked, ok)
        }
        Scenario::ManyResources { count, concurrency, server_pid } => {
            let v = many_resources::many_resources(&api, count, concurrency.max(1), server_pid).await?;
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
        // Bounded: a check that cannot finish must say so and fail, not leave the run hanging.
        let check = async {
            let (db, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            invariants::check_all(&db, &acked).await
        };
        let checks = match tokio::time::timeout(CHECK_TIMEOUT, check).await {
            Ok(checks) => checks?,
            Err(_) => {
                return Err(
                    format!("FAIL: the invariant check did not finish within {} s", CHECK_TIMEOUT.as_secs()).into()
                );
            }
        };
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
        println!("FAIL: more acknowledgements than places, or answers the scenario does not expect (see outcomes)");
    }
    if args.json {
        report["pass"] = json!(pass);
        println!("{report}");
    }
    Ok(pass)
}
