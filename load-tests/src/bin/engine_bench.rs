//! engine-bench: the engine driven directly (no HTTP) by many concurrent clients booking one
//! hot event (or, with `--events N`, N events chosen uniformly at random per booking: spread
//! load), durably in PostgreSQL; then, in the same run and on the same server, the naive SQL
//! baseline (`../shared/bench/naive-sql/hot.sql`, or `spread.sql` for spread load, under
//! pgbench) and the ratio. Afterwards it checks in the database that nothing was oversold and
//! every acknowledged booking is there.

use clap::Parser;
use engine::domain::booking::{BookingRequest, Requester};
use engine::domain::command::Command;
use engine::domain::ids::{BookingId, UserId};
use engine::store::postgres::{PgConfig, PgStore};
use engine::{Engine, EngineConfig, EngineError, SystemClock, fixtures};
use hdrhistogram::Histogram;
use std::path::PathBuf;
use std::process::Command as Proc;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Flash-sale benchmark of the engine against the naive SQL baseline")]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    pg_host: String,
    #[arg(long, default_value_t = 5432)]
    pg_port: u16,
    #[arg(long, default_value = "postgres")]
    pg_user: String,
    /// Concurrent clients, each booking one ticket at a time in a closed loop.
    #[arg(long, default_value_t = 2000)]
    clients: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 2)]
    arbiters: usize,
    #[arg(long, default_value_t = 2000)]
    max_batch: usize,
    #[arg(long, default_value_t = 8)]
    pool_size: usize,
    /// Events the bookings spread over, uniformly (1: the hot event).
    #[arg(long, default_value_t = 1)]
    events: usize,
    /// Shard committers (ENGINE_COMMITTERS); unset, the engine's default.
    #[arg(long)]
    committers: Option<usize>,
    /// Skip the pgbench baseline.
    #[arg(long)]
    skip_naive: bool,
    #[arg(long, default_value_t = 10)]
    naive_seconds: u64,
    #[arg(long, default_value_t = 16)]
    naive_clients: u32,
    #[arg(long, default_value = "../shared/bench/naive-sql")]
    naive_dir: PathBuf,
    /// SQL run on the fresh benchmark database before the load, for profiling experiments
    /// (e.g. "DROP INDEX bookings_user" to see what one index costs). Never used for the
    /// figures in docs/benchmarks.md unless stated there.
    #[arg(long)]
    setup_sql: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

type BoxError = Box<dyn std::error::Error>;

struct ClientStats {
    latency_us: Histogram<u64>,
    ok: u64,
    sold_out: u64,
    busy: u64,
    other: u64,
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    actix::System::new().block_on(run(args))
}

async fn admin(args: &Args, db: &str) -> Result<tokio_postgres::Client, BoxError> {
    let url = format!("postgres://{}@{}:{}/{}", args.pg_user, args.pg_host, args.pg_port, db);
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    actix::spawn(async move {
        let _ = conn.await;
    });
    Ok(c)
}

async fn run(args: Args) -> Result<(), BoxError> {
    let db = "engine_bench";
    admin(&args, "postgres").await?.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await?;
    let mut cfg = PgConfig::new(format!("postgres://{}@{}:{}/{db}", args.pg_user, args.pg_host, args.pg_port));
    cfg.pool_size = args.pool_size;
    let store = PgStore::connect(&cfg).await?;
    let check = admin(&args, db).await?;
    if let Some(sql) = &args.setup_sql {
        check.batch_execute(sql).await?;
    }
    let sync: String = check.query_one("SHOW synchronous_commit", &[]).await?.get(0);
    let fsync: String = check.query_one("SHOW fsync", &[]).await?.get(0);

    let defaults = EngineConfig::default();
    let engine = Engine::new(
        Arc::new(store),
        Arc::new(SystemClock),
        EngineConfig {
            max_batch: args.max_batch,
            arbiters: args.arbiters,
            committers: args.committers.unwrap_or(defaults.committers),
            ..defaults
        },
    );
    // Free tickets: a client books and confirms at once, no payment (docs/benchmarks.md).
    let capacity = 10_000_000u64;
    let owner = UserId::new_v7();
    let mut ids = Vec::with_capacity(args.events.max(1));
    for chunk in (0..args.events.max(1)).collect::<Vec<_>>().chunks(100) {
        let made = futures::future::join_all(chunk.iter().map(|i| {
            let mut spec = fixtures::free(fixtures::event(owner, &format!("Sale {i}"), 10_000_000, engine.now()));
            if let engine::domain::spec::KindSpec::Event(e) = &mut spec.kind {
                e.max_per_booking = 1;
            }
            engine.create(spec)
        }))
        .await;
        for m in made {
            ids.push(m?);
        }
    }
    let ids = Arc::new(ids);

    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut handles = Vec::with_capacity(args.clients);
    for c in 0..args.clients {
        let e = engine.clone();
        let ids = ids.clone();
        handles.push(actix::spawn(async move {
            // xorshift64: a cheap uniform pick of the event, seeded per client.
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ ((c as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
            let mut s = ClientStats {
                latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)?,
                ok: 0,
                sold_out: 0,
                busy: 0,
                other: 0,
            };
            let user = UserId::new_v7();
            while Instant::now() < deadline {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let id = ids[(x % ids.len() as u64) as usize];
                let cmd = Command::Hold {
                    booking_id: BookingId::new_v7(),
                    user_id: user,
                    request: BookingRequest::Tickets { category_id: None, quantity: 1 },
                    confirm: true,
                    by: Requester::Client(user),
                };
                let t = Instant::now();
                let r = e.execute(id, cmd, None).await;
                s.latency_us.saturating_record(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
                match r {
                    Ok(_) => s.ok += 1,
                    Err(EngineError::Domain(d)) if d.code() == "sold_out" => s.sold_out += 1,
                    Err(EngineError::Busy) => {
                        s.busy += 1;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err(_) => s.other += 1,
                }
            }
            Ok::<_, hdrhistogram::CreationError>(s)
        }));
    }
    let mut total = ClientStats {
        latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        ok: 0,
        sold_out: 0,
        busy: 0,
        other: 0,
    };
    for h in handles {
        let s = h.await??;
        total.latency_us.add(&s.latency_us)?;
        total.ok += s.ok;
        total.sold_out += s.sold_out;
        total.busy += s.busy;
        total.other += s.other;
    }
    let elapsed = started.elapsed().as_secs_f64();
    engine.shutdown(Duration::from_secs(10)).await;

    // Invariants, read from the database itself: in total, and per event (taken = its rows,
    // never above capacity).
    let row = check
        .query_one(
            "SELECT (SELECT count(*) FROM bookings WHERE status IN ('held', 'confirmed')),
                    (SELECT count(*) FROM bookings),
                    (SELECT coalesce(sum(taken), 0)::int8 FROM events),
                    (SELECT count(*) FROM outbox),
                    (SELECT count(*) FROM events e WHERE e.taken > e.capacity OR e.taken <>
                        (SELECT count(*) FROM bookings b WHERE b.resource_id = e.resource_id AND b.status IN ('held', 'confirmed')))",
            &[],
        )
        .await?;
    let (active, all, taken, outbox, bad_events): (i64, i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    let acked = i64::try_from(total.ok)?;
    let invariants_ok = active == acked
        && all == acked
        && taken == acked
        && outbox == acked
        && bad_events == 0
        && u64::try_from(active)? <= capacity * ids.len() as u64;

    let naive = if args.skip_naive { None } else { Some(naive_baseline(&args)?) };
    let rate = total.ok as f64 / elapsed;
    let q = |p: f64| total.latency_us.value_at_quantile(p) as f64 / 1000.0;
    if args.json {
        let v = serde_json::json!({
            "clients": args.clients, "events": ids.len(), "seconds": elapsed, "bookings": total.ok, "bookings_per_sec": rate,
            "latency_ms_p50": q(0.5), "latency_ms_p99": q(0.99), "latency_ms_max": total.latency_us.max() as f64 / 1000.0,
            "sold_out": total.sold_out, "busy": total.busy, "other_errors": total.other,
            "synchronous_commit": sync, "fsync": fsync, "invariants_ok": invariants_ok,
            "naive_hot_tps": naive, "ratio": naive.map(|n| rate / n),
        });
        println!("{v}");
    } else {
        let load = if ids.len() == 1 { "one hot event".to_owned() } else { format!("{} events, uniform", ids.len()) };
        println!("engine, {load}, {} clients, {elapsed:.1} s (synchronous_commit={sync}, fsync={fsync})", args.clients);
        println!("  bookings/s        {rate:.0}");
        println!(
            "  latency ms        p50 {:.2}  p99 {:.2}  max {:.2}",
            q(0.5),
            q(0.99),
            total.latency_us.max() as f64 / 1000.0
        );
        println!(
            "  outcomes          ok {}  sold_out {}  busy {}  other {}",
            total.ok, total.sold_out, total.busy, total.other
        );
        println!(
            "  database          active {active}  rows {all}  events.taken {taken}  outbox {outbox}  bad events {bad_events}"
        );
        if let Some(n) = naive {
            println!(
                "naive SQL ({}, pgbench -c {} -j 2, {} s): {n:.0} bookings/s",
                naive_script(&args),
                args.naive_clients,
                args.naive_seconds
            );
            println!("ratio engine / naive: {:.1}x", rate / n);
        }
        println!("invariants: {}", if invariants_ok { "PASS" } else { "FAIL" });
    }
    if !invariants_ok || total.other > 0 {
        return Err("invariant check failed or unexpected errors".into());
    }
    Ok(())
}

/// The baseline for the load: `hot.sql` for one event, `spread.sql` (1,000 events, uniform)
/// for spread load.
fn naive_script(args: &Args) -> &'static str {
    if args.events > 1 { "spread.sql" } else { "hot.sql" }
}

/// Runs the naive script (one booking per transaction) under pgbench; returns its tps.
fn naive_baseline(args: &Args) -> Result<f64, BoxError> {
    let conn = ["-h", args.pg_host.as_str(), "-U", args.pg_user.as_str()];
    let port = args.pg_port.to_string();
    let run = |cmd: &mut Proc| -> Result<String, BoxError> {
        let out = cmd.output()?;
        if !out.status.success() {
            return Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    run(Proc::new("dropdb").args(conn).args(["-p", &port, "--if-exists", "--force", "naive_bench"]))?;
    run(Proc::new("createdb").args(conn).args(["-p", &port, "naive_bench"]))?;
    run(Proc::new("psql")
        .args(conn)
        .args(["-p", &port, "-q", "-d", "naive_bench", "-f"])
        .arg(args.naive_dir.join("schema.sql")))?;
    let out = run(Proc::new("pgbench")
        .args(conn)
        .args(["-p", &port, "-n", "-f"])
        .arg(args.naive_dir.join(naive_script(args)))
        .args(["-c", &args.naive_clients.to_string(), "-j", "2", "-T", &args.naive_seconds.to_string()])
        // The database name is positional: pgbench's `-d` means --debug, whose per-statement
        // logging slows the baseline (measured: 1,100 instead of 1,525 tps on a busy machine).
        .arg("naive_bench"))?;
    let tps = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("tps = ").and_then(|r| r.split_whitespace().next()).and_then(|v| v.parse::<f64>().ok())
        })
        .ok_or("no tps line in pgbench output")?;
    run(Proc::new("dropdb").args(conn).args(["-p", &port, "--if-exists", "--force", "naive_bench"]))?;
    Ok(tps)
}
