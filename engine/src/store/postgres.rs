//! The production store: PostgreSQL through deadpool-postgres.
//!
//! A commit is one transaction for one or many resources' batches (`postgres/commit.rs`):
//! fence each on its version, then bulk-write every changed booking, history row, waitlist
//! entry, outbox row and idempotency record with one statement per table, whatever the number
//! of batches and their sizes.

use super::{
    BookingFilter, CommitBatch, LoadedResource, ResourceFilter, ResourceSummary, Store, StoreError, StoreFuture,
    StoreOverview, clamp_list_limit,
};
use crate::domain::booking::{Booking, BookingItem, BookingStatus, Wish};
use crate::domain::command::IdempotencyRecord;
use crate::domain::event::{CategorySpec, EventSpec};
use crate::domain::hotel::{HotelSpec, RoomSpec, RoomTypeSpec};
use crate::domain::ids::{BookingId, CategoryId, ResourceId, RoomId, RoomTypeId, UserId, WaitlistEntryId};
use crate::domain::money::{Currency, Money};
use crate::domain::provider::{DateOverride, DayHours, LocalInterval, ProviderSpec};
use crate::domain::spec::{KindSpec, ResourceKind, ResourceSpec};
use crate::domain::stats::DayStats;
use crate::domain::waitlist::{WaitlistEntry, WaitlistStatus};
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use jiff::Timestamp;
use jiff::civil::{Date, Time};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Key of the advisory lock that serialises migrations when several processes start at once.
const MIGRATION_LOCK_KEY: i64 = 0x7265_7365_7276_6531;

#[derive(Clone, Debug)]
pub struct PgConfig {
    pub url: String,
    pub pool_size: usize,
    /// Bound on every statement, so a stuck database shows up as an error, not a hang.
    pub statement_timeout_ms: u64,
    /// How long a caller waits for a pooled connection before the store reports unavailable.
    pub pool_wait_timeout_ms: u64,
}

impl PgConfig {
    pub fn new(url: impl Into<String>) -> Self {
        PgConfig { url: url.into(), pool_size: 16, statement_timeout_ms: 5_000, pool_wait_timeout_ms: 5_000 }
    }
}

#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn db_err(e: tokio_postgres::Error) -> StoreError {
    match e.code() {
        // A constraint refused the batch: the deciding state was wrong or stale. Treat it like
        // a lost fence (reload and re-decide) rather than as an outage.
        Some(c) if c.code().starts_with("23") => StoreError::Conflict,
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE => StoreError::Conflict,
        _ => StoreError::Unavailable(e.to_string()),
    }
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

impl PgStore {
    /// Creates the database if it is missing, applies the migrations (under an advisory lock,
    /// so concurrent starts are safe) and opens the pool.
    pub async fn connect(cfg: &PgConfig) -> Result<PgStore, StoreError> {
        let mut pg: tokio_postgres::Config =
            cfg.url.parse().map_err(|e| unavailable(format!("bad database URL: {e}")))?;
        create_database_if_missing(&pg).await?;
        migrate(&pg).await?;
        pg.options(format!("-c statement_timeout={}", cfg.statement_timeout_ms));
        let mgr = Manager::from_config(pg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let wait = Some(Duration::from_millis(cfg.pool_wait_timeout_ms));
        let pool = Pool::builder(mgr)
            .max_size(cfg.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(wait)
            .create_timeout(wait)
            .recycle_timeout(wait)
            .build()
            .map_err(unavailable)?;
        Ok(PgStore { pool })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(unavailable)
    }

    /// These bookings, whatever their resources, in one statement (ids not found are absent).
    /// By primary key alone: with `AND resource_id = ...` the planner ANDed a bitmap of the
    /// resource's every booking (measured: 7 % of the database's CPU in the feed benchmark) to
    /// find a thousand ids, so callers that need one resource filter the result.
    pub async fn bookings_by_id(&self, ids: &[BookingId]) -> Result<Vec<Booking>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = ids.iter().map(|b| b.0).collect();
        let c = self.client().await?;
        let rows = c
            .query(&format!("SELECT {BOOKING_COLUMNS} FROM bookings WHERE id = ANY($1)"), &[&ids])
            .await
            .map_err(db_err)?;
        rows.iter().map(booking_from_row).collect()
    }
}

async fn connect_raw(pg: &tokio_postgres::Config) -> Result<tokio_postgres::Client, StoreError> {
    let (client, conn) = pg.connect(NoTls).await.map_err(unavailable)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}

async fn create_database_if_missing(pg: &tokio_postgres::Config) -> Result<(), StoreError> {
    let Some(name) = pg.get_dbname().map(str::to_owned) else { return Ok(()) };
    if name == "postgres" {
        return Ok(());
    }
    let mut admin = pg.clone();
    admin.dbname("postgres");
    let client = match connect_raw(&admin).await {
        Ok(c) => c,
        // No access to the maintenance database: assume the target exists and let the real
        // connection report the problem if not.
        Err(_) => return Ok(()),
    };
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(unavailable)?
        .is_some();
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match client.batch_execute(&format!("CREATE DATABASE {quoted}")).await {
            Ok(()) => tracing::info!(database = %name, "created database"),
            Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => {}
            // Two processes racing to create it: the loser sees a unique violation.
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {}
            Err(e) => return Err(unavailable(e)),
        }
    }
    Ok(())
}

async fn migrate(pg: &tokio_postgres::Config) -> Result<(), StoreError> {
    let mut client = connect_raw(pg).await?;
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY]).await.map_err(unavailable)?;
    let result = embedded::migrations::runner().run_async(&mut client).await;
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY]).await;
    let report = result.map_err(|e| unavailable(format!("migrations failed: {e}")))?;
    for m in report.applied_migrations() {
        tracing::info!(migration = %m, "applied migration");
    }
    Ok(())
}

// ---- commit: engine/src/store/postgres/commit.rs -----------------------------------------

mod commit;

fn minute(v: u16) -> Result<i16, StoreError> {
    i16::try_from(v).map_err(corrupt)
}

async fn write_kind_spec(
    tx: &deadpool_postgres::Transaction<'_>,
    rid: Uuid,
    kind: &KindSpec,
) -> Result<(), StoreError> {
    match kind {
        KindSpec::Hotel(h) => {
            tx.execute(
                "INSERT INTO hotels (resource_id, city, time_zone, currency, check_out_time, booking_horizon_days)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (resource_id) DO UPDATE SET city = $2, time_zone = $3, currency = $4,
                    check_out_time = $5, booking_horizon_days = $6",
                &[
                    &rid,
                    &h.city,
                    &h.time_zone,
                    &h.currency.as_str(),
                    &h.check_out_time,
                    &i32::from(h.booking_horizon_days),
                ],
            )
            .await
            .map_err(db_err)?;
            // Rooms and types are replaced wholesale; bookings keep their own copy of room ids.
            tx.execute("DELETE FROM room_types WHERE hotel_id = $1", &[&rid]).await.map_err(db_err)?;
            for (i, rt) in h.room_types.iter().enumerate() {
                tx.execute(
                    "INSERT INTO room_types (id, hotel_id, position, name, capacity_guests, base_price_minor)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &rt.id.0,
                        &rid,
                        &i32::try_from(i).map_err(corrupt)?,
                        &rt.name,
                        &i16::try_from(rt.capacity_guests).map_err(corrupt)?,
                        &rt.base_price_minor,
                    ],
                )
                .await
                .map_err(db_err)?;
                if !rt.price_overrides.is_empty() {
                    let nights: Vec<Date> = rt.price_overrides.keys().copied().collect();
                    let prices: Vec<i64> = rt.price_overrides.values().copied().collect();
                    tx.execute(
                        "INSERT INTO room_prices (room_type_id, night, price_minor)
                         SELECT $1, u.n, u.p FROM unnest($2::date[], $3::int8[]) AS u(n, p)",
                        &[&rt.id.0, &nights, &prices],
                    )
                    .await
                    .map_err(db_err)?;
                }
            }
            if !h.rooms.is_empty() {
                let ids: Vec<Uuid> = h.rooms.iter().map(|r| r.id.0).collect();
                let types: Vec<Uuid> = h.rooms.iter().map(|r| r.room_type_id.0).collect();
                let pos: Vec<i32> =
                    (0..h.rooms.len()).map(|i| i32::try_from(i).map_err(corrupt)).collect::<Result<_, _>>()?;
                let numbers: Vec<&str> = h.rooms.iter().map(|r| r.number.as_str()).collect();
                tx.execute(
                    "INSERT INTO rooms (id, hotel_id, room_type_id, position, number)
                     SELECT u.id, $1, u.t, u.p, u.n FROM unnest($2::uuid[], $3::uuid[], $4::int4[], $5::text[]) AS u(id, t, p, n)",
                    &[&rid, &ids, &types, &pos, &numbers],
                )
                .await
                .map_err(db_err)?;
            }
        }
        KindSpec::Event(e) => {
            tx.execute(
                "INSERT INTO events (resource_id, starts_at, ends_at, capacity, max_per_booking, currency, price_minor)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (resource_id) DO UPDATE SET starts_at = $2, ends_at = $3, capacity = $4,
                    max_per_booking = $5, currency = $6, price_minor = $7",
                &[
                    &rid,
                    &e.starts_at,
                    &e.ends_at,
                    &i32::try_from(e.capacity).map_err(corrupt)?,
                    &i32::try_from(e.max_per_booking).map_err(corrupt)?,
                    &e.currency.as_str(),
                    &e.price_minor,
                ],
            )
            .await
            .map_err(db_err)?;
            tx.execute("DELETE FROM ticket_categories WHERE event_id = $1", &[&rid]).await.map_err(db_err)?;
            for (i, c) in e.categories.iter().enumerate() {
                tx.execute(
                    "INSERT INTO ticket_categories (id, event_id, position, name, capacity, price_minor)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &c.id.0,
                        &rid,
                        &i32::try_from(i).map_err(corrupt)?,
                        &c.name,
                        &i32::try_from(c.capacity).map_err(corrupt)?,
                        &c.price_minor,
                    ],
                )
                .await
                .map_err(db_err)?;
            }
        }
        KindSpec::Provider(p) => {
            tx.execute(
                "INSERT INTO providers (resource_id, time_zone, currency, price_minor, slot_minutes, buffer_minutes,
                    min_notice_minutes, booking_horizon_days)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (resource_id) DO UPDATE SET time_zone = $2, currency = $3, price_minor = $4,
                    slot_minutes = $5, buffer_minutes = $6, min_notice_minutes = $7, booking_horizon_days = $8",
                &[
                    &rid,
                    &p.time_zone,
                    &p.currency.as_str(),
                    &p.price_minor,
                    &minute(p.slot_minutes)?,
                    &minute(p.buffer_minutes)?,
                    &i32::try_from(p.min_notice_minutes).map_err(corrupt)?,
                    &i32::from(p.booking_horizon_days),
                ],
            )
            .await
            .map_err(db_err)?;
            tx.execute("DELETE FROM provider_hours WHERE provider_id = $1", &[&rid]).await.map_err(db_err)?;
            tx.execute("DELETE FROM provider_overrides WHERE provider_id = $1", &[&rid]).await.map_err(db_err)?;
            for d in &p.weekly {
                for iv in &d.intervals {
                    tx.execute(
                        "INSERT INTO provider_hours (provider_id, weekday, start_minute, end_minute) VALUES ($1, $2, $3, $4)",
                        &[&rid, &i16::from(d.weekday), &minute(iv.start_minute)?, &minute(iv.end_minute)?],
                    )
                    .await
                    .map_err(db_err)?;
                }
            }
            for o in &p.overrides {
                if o.intervals.is_empty() {
                    tx.execute(
                        "INSERT INTO provider_overrides (provider_id, day, start_minute, end_minute) VALUES ($1, $2, NULL, NULL)",
                        &[&rid, &o.date],
                    )
                    .await
                    .map_err(db_err)?;
                }
                for iv in &o.intervals {
                    tx.execute(
                        "INSERT INTO provider_overrides (provider_id, day, start_minute, end_minute) VALUES ($1, $2, $3, $4)",
                        &[&rid, &o.date, &minute(iv.start_minute)?, &minute(iv.end_minute)?],
                    )
                    .await
                    .map_err(db_err)?;
                }
            }
        }
    }
    Ok(())
}

// ---- load -----------------------------------------------------------------------------------

fn currency(s: &str) -> Result<Currency, StoreError> {
    Currency::parse(s.trim()).map_err(corrupt)
}

fn u16_of(v: i32) -> Result<u16, StoreError> {
    u16::try_from(v).map_err(corrupt)
}

fn booking_from_row(r: &Row) -> Result<Booking, StoreError> {
    let status: String = r.try_get("status").map_err(unavailable)?;
    let status = BookingStatus::parse(&status).ok_or_else(|| corrupt(format!("unknown booking status {status}")))?;
    let item_kind: String = r.try_get("item_kind").map_err(unavailable)?;
    let get_uuid = |c: &str| -> Result<Uuid, StoreError> {
        r.try_get::<_, Option<Uuid>>(c).map_err(unavailable)?.ok_or_else(|| corrupt(format!("{c} missing")))
    };
    let item = match item_kind.as_str() {
        "stay" => BookingItem::Stay {
            room_type_id: RoomTypeId(get_uuid("room_type_id")?),
            room_id: RoomId(get_uuid("room_id")?),
            check_in: r
                .try_get::<_, Option<Date>>("check_in")
                .map_err(unavailable)?
                .ok_or_else(|| corrupt("check_in missing"))?,
            check_out: r
                .try_get::<_, Option<Date>>("check_out")
                .map_err(unavailable)?
                .ok_or_else(|| corrupt("check_out missing"))?,
            guests: u16::try_from(r.try_get::<_, Option<i16>>("guests").map_err(unavailable)?.unwrap_or(0))
                .map_err(corrupt)?,
        },
        "tickets" => BookingItem::Tickets {
            category_id: r.try_get::<_, Option<Uuid>>("category_id").map_err(unavailable)?.map(CategoryId),
            quantity: u32::try_from(r.try_get::<_, Option<i32>>("quantity").map_err(unavailable)?.unwrap_or(0))
                .map_err(corrupt)?,
        },
        "appointment" => BookingItem::Appointment {
            starts_at: r
                .try_get::<_, Option<Timestamp>>("starts_at")
                .map_err(unavailable)?
                .ok_or_else(|| corrupt("starts_at missing"))?,
            ends_at: r
                .try_get::<_, Option<Timestamp>>("ends_at")
                .map_err(unavailable)?
                .ok_or_else(|| corrupt("ends_at missing"))?,
        },
        other => return Err(corrupt(format!("unknown item kind {other}"))),
    };
    let cur: String = r.try_get("currency").map_err(unavailable)?;
    Ok(Booking {
        id: BookingId(r.try_get("id").map_err(unavailable)?),
        resource_id: ResourceId(r.try_get("resource_id").map_err(unavailable)?),
        user_id: UserId(r.try_get("user_id").map_err(unavailable)?),
        item,
        status,
        amount: Money::new(r.try_get("amount_minor").map_err(unavailable)?, currency(&cur)?),
        hold_expires_at: r.try_get("hold_expires_at").map_err(unavailable)?,
        payment_ref: r.try_get("payment_ref").map_err(unavailable)?,
        refunded_minor: r.try_get("refunded_minor").map_err(unavailable)?,
        waitlist_entry_id: r.try_get::<_, Option<Uuid>>("waitlist_entry_id").map_err(unavailable)?.map(WaitlistEntryId),
        idempotency_key: r.try_get("idempotency_key").map_err(unavailable)?,
        created_at: r.try_get("created_at").map_err(unavailable)?,
        updated_at: r.try_get("updated_at").map_err(unavailable)?,
    })
}

const BOOKING_COLUMNS: &str = "id, resource_id, item_kind, user_id, status, room_type_id, room_id, check_in, check_out,
    guests, category_id, quantity, starts_at, ends_at, amount_minor, currency, hold_expires_at, payment_ref,
    refunded_minor, waitlist_entry_id, idempotency_key, created_at, updated_at";

async fn read_kind_spec(c: &impl GenericClient, rid: Uuid, kind: ResourceKind) -> Result<KindSpec, StoreError> {
    Ok(match kind {
        ResourceKind::Hotel => {
            let h = c
                .query_one("SELECT city, time_zone, currency, check_out_time, booking_horizon_days FROM hotels WHERE resource_id = $1", &[&rid])
                .await
                .map_err(db_err)?;
            let types = c
                .query("SELECT id, name, capacity_guests, base_price_minor FROM room_types WHERE hotel_id = $1 ORDER BY position", &[&rid])
                .await
                .map_err(db_err)?;
            let prices = c
                .query(
                    "SELECT p.room_type_id, p.night, p.price_minor FROM room_prices p JOIN room_types t ON t.id = p.room_type_id
                     WHERE t.hotel_id = $1",
                    &[&rid],
                )
                .await
                .map_err(db_err)?;
            let mut overrides: HashMap<Uuid, BTreeMap<Date, i64>> = HashMap::new();
            for p in &prices {
                overrides.entry(p.get(0)).or_default().insert(p.get(1), p.get(2));
            }
            let rooms = c
                .query("SELECT id, number, room_type_id FROM rooms WHERE hotel_id = $1 ORDER BY position", &[&rid])
                .await
                .map_err(db_err)?;
            let cur: String = h.get(2);
            KindSpec::Hotel(HotelSpec {
                city: h.get(0),
                time_zone: h.get(1),
                currency: currency(&cur)?,
                check_out_time: h.get::<_, Time>(3),
                booking_horizon_days: u16_of(h.get::<_, i32>(4))?,
                room_types: types
                    .iter()
                    .map(|t| {
                        let id: Uuid = t.get(0);
                        Ok(RoomTypeSpec {
                            id: RoomTypeId(id),
                            name: t.get(1),
                            capacity_guests: u16::try_from(t.get::<_, i16>(2)).map_err(corrupt)?,
                            base_price_minor: t.get(3),
                            price_overrides: overrides.remove(&id).unwrap_or_default(),
                        })
                    })
                    .collect::<Result<_, StoreError>>()?,
                rooms: rooms
                    .iter()
                    .map(|r| RoomSpec { id: RoomId(r.get(0)), number: r.get(1), room_type_id: RoomTypeId(r.get(2)) })
                    .collect(),
            })
        }
        ResourceKind::Event => {
            let e = c
                .query_one(
                    "SELECT starts_at, ends_at, capacity, max_per_booking, currency, price_minor FROM events WHERE resource_id = $1",
                    &[&rid],
                )
                .await
                .map_err(db_err)?;
            let cats = c
                .query("SELECT id, name, capacity, price_minor FROM ticket_categories WHERE event_id = $1 ORDER BY position", &[&rid])
                .await
                .map_err(db_err)?;
            let cur: String = e.get(4);
            KindSpec::Event(EventSpec {
                starts_at: e.get(0),
                ends_at: e.get(1),
                capacity: u32::try_from(e.get::<_, i32>(2)).map_err(corrupt)?,
                max_per_booking: u32::try_from(e.get::<_, i32>(3)).map_err(corrupt)?,
                currency: currency(&cur)?,
                price_minor: e.get(5),
                categories: cats
                    .iter()
                    .map(|c| {
                        Ok(CategorySpec {
                            id: CategoryId(c.get(0)),
                            name: c.get(1),
                            capacity: u32::try_from(c.get::<_, i32>(2)).map_err(corrupt)?,
                            price_minor: c.get(3),
                        })
                    })
                    .collect::<Result<_, StoreError>>()?,
            })
        }
        ResourceKind::Provider => {
            let p = c
                .query_one(
                    "SELECT time_zone, currency, price_minor, slot_minutes, buffer_minutes, min_notice_minutes, booking_horizon_days
                     FROM providers WHERE resource_id = $1",
                    &[&rid],
                )
                .await
                .map_err(db_err)?;
            let hours = c
                .query(
                    "SELECT weekday, start_minute, end_minute FROM provider_hours WHERE provider_id = $1 ORDER BY weekday, start_minute",
                    &[&rid],
                )
                .await
                .map_err(db_err)?;
            let ovs = c
                .query(
                    "SELECT day, start_minute, end_minute FROM provider_overrides WHERE provider_id = $1 ORDER BY day, start_minute",
                    &[&rid],
                )
                .await
                .map_err(db_err)?;
            let mut weekly: Vec<DayHours> = Vec::new();
            for h in &hours {
                let wd = u8::try_from(h.get::<_, i16>(0)).map_err(corrupt)?;
                let iv = LocalInterval {
                    start_minute: u16::try_from(h.get::<_, i16>(1)).map_err(corrupt)?,
                    end_minute: u16::try_from(h.get::<_, i16>(2)).map_err(corrupt)?,
                };
                match weekly.last_mut() {
                    Some(d) if d.weekday == wd => d.intervals.push(iv),
                    _ => weekly.push(DayHours { weekday: wd, intervals: vec![iv] }),
                }
            }
            let mut overrides: Vec<DateOverride> = Vec::new();
            for o in &ovs {
                let day: Date = o.get(0);
                let iv = match (o.get::<_, Option<i16>>(1), o.get::<_, Option<i16>>(2)) {
                    (Some(s), Some(e)) => Some(LocalInterval {
                        start_minute: u16::try_from(s).map_err(corrupt)?,
                        end_minute: u16::try_from(e).map_err(corrupt)?,
                    }),
                    _ => None,
                };
                if overrides.last().map(|d| d.date) != Some(day) {
                    overrides.push(DateOverride { date: day, intervals: Vec::new() });
                }
                if let (Some(d), Some(iv)) = (overrides.last_mut(), iv) {
                    d.intervals.push(iv);
                }
            }
            let cur: String = p.get(1);
            KindSpec::Provider(ProviderSpec {
                time_zone: p.get(0),
                currency: currency(&cur)?,
                price_minor: p.get(2),
                slot_minutes: u16::try_from(p.get::<_, i16>(3)).map_err(corrupt)?,
                buffer_minutes: u16::try_from(p.get::<_, i16>(4)).map_err(corrupt)?,
                min_notice_minutes: u32::try_from(p.get::<_, i32>(5)).map_err(corrupt)?,
                booking_horizon_days: u16_of(p.get::<_, i32>(6))?,
                weekly,
                overrides,
            })
        }
    })
}

async fn load_resource(store: PgStore, id: ResourceId) -> Result<Option<LoadedResource>, StoreError> {
    let mut client = store.client().await?;
    // One snapshot for the whole read, so the spec, bookings and version agree.
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(db_err)?;
    let rid = id.0;
    let Some(r) = tx
        .query_opt(
            "SELECT kind, name, owner_id, hold_ttl_secs, offer_ttl_secs, version, reference FROM resources WHERE id = $1",
            &[&rid],
        )
        .await
        .map_err(db_err)?
    else {
        return Ok(None);
    };
    let kind_s: String = r.get(0);
    let kind = ResourceKind::parse(&kind_s).ok_or_else(|| corrupt(format!("unknown resource kind {kind_s}")))?;
    let spec = ResourceSpec {
        name: r.get(1),
        owner_id: UserId(r.get(2)),
        reference: r.get(6),
        hold_ttl_secs: u32::try_from(r.get::<_, i32>(3)).map_err(corrupt)?,
        offer_ttl_secs: u32::try_from(r.get::<_, i32>(4)).map_err(corrupt)?,
        kind: read_kind_spec(&tx, rid, kind).await?,
    };
    let version: i64 = r.get(5);
    let rows = tx
        .query(
            &format!(
                "SELECT {BOOKING_COLUMNS} FROM bookings WHERE resource_id = $1 AND status IN ('held', 'confirmed')"
            ),
            &[&rid],
        )
        .await
        .map_err(db_err)?;
    let bookings = rows.iter().map(booking_from_row).collect::<Result<Vec<_>, _>>()?;
    let rows = tx
        .query(
            "SELECT id, user_id, wish, status, position, offer_booking_id, offer_expires_at, joined_at, updated_at
             FROM waitlist_entries WHERE resource_id = $1 AND (status IN ('waiting', 'offered')
                OR position = (SELECT max(position) FROM waitlist_entries WHERE resource_id = $1))
             ORDER BY position",
            &[&rid],
        )
        .await
        .map_err(db_err)?;
    let mut waitlist = Vec::with_capacity(rows.len());
    for w in &rows {
        let status: String = w.get(3);
        let wish: serde_json::Value = w.get(2);
        waitlist.push(WaitlistEntry {
            id: WaitlistEntryId(w.get(0)),
            resource_id: id,
            user_id: UserId(w.get(1)),
            wish: serde_json::from_value::<Wish>(wish).map_err(corrupt)?,
            status: WaitlistStatus::parse(&status)
                .ok_or_else(|| corrupt(format!("unknown waitlist status {status}")))?,
            position: w.get(4),
            offer_booking_id: w.get::<_, Option<Uuid>>(5).map(BookingId),
            offer_expires_at: w.get(6),
            joined_at: w.get(7),
            updated_at: w.get(8),
        });
    }
    // Retention is measured from the newest record, not the database clock, so a resource
    // driven by an injected clock keeps the same records as in memory.
    let rows = tx
        .query(
            "SELECT scope, key, fingerprint, result, created_at FROM idempotency_keys
             WHERE resource_id = $1 AND created_at > (SELECT max(created_at) FROM idempotency_keys WHERE resource_id = $1) - interval '24 hours'",
            &[&rid],
        )
        .await
        .map_err(db_err)?;
    let mut idempotency = Vec::with_capacity(rows.len());
    for k in &rows {
        let result: serde_json::Value = k.get(3);
        idempotency.push(IdempotencyRecord {
            scope: k.get(0),
            key: k.get(1),
            fingerprint: k.get(2),
            result: serde_json::from_value(result).map_err(corrupt)?,
            at: k.get(4),
        });
    }
    // The feed's cancelled (and just completed) stays, so that a replay of their booking event
    // is recognised without a query per batch. Nights before the day before yesterday are
    // past in every time zone: a booking event for one is refused unless it is a replay, is
    // rare, and is looked up (`ResourceState::feed_lookups`); leaving them out keeps this
    // bounded by what is still to come, not by the hotel's whole history.
    let feed_known_from: Date =
        tx.query_one("SELECT (now() AT TIME ZONE 'UTC')::date - 2", &[]).await.map_err(db_err)?.get(0);
    let feed_gone = tx
        .query(
            "SELECT id FROM bookings WHERE resource_id = $1 AND status IN ('cancelled', 'completed')
               AND item_kind = 'stay' AND check_in >= $2 AND idempotency_key LIKE 'ingest:%'",
            &[&rid, &feed_known_from],
        )
        .await
        .map_err(db_err)?
        .iter()
        .map(|r| BookingId(r.get(0)))
        .collect();
    tx.commit().await.map_err(db_err)?;
    Ok(Some(LoadedResource { spec, version, bookings, waitlist, idempotency, feed_gone, feed_known_from }))
}

impl Store for PgStore {
    fn load_bookings(&self, resource_id: ResourceId, ids: Vec<BookingId>) -> StoreFuture<Vec<Booking>> {
        let this = self.clone();
        Box::pin(async move {
            let found = this.bookings_by_id(&ids).await?;
            Ok(found.into_iter().filter(|b| b.resource_id == resource_id).collect())
        })
    }

    fn daily_stats(&self, resource_id: ResourceId, from: Date, to: Date) -> StoreFuture<Vec<DayStats>> {
        let this = self.clone();
        Box::pin(async move {
            let c = this.client().await?;
            let stmt = c
                .prepare_cached(
                    "SELECT day, booked_units, booked_minutes, booked_minor, cancelled_units, cancelled_minor
                     FROM daily_stats WHERE resource_id = $1 AND day >= $2 AND day < $3 ORDER BY day",
                )
                .await
                .map_err(db_err)?;
            let rows = c.query(&stmt, &[&resource_id.0, &from, &to]).await.map_err(db_err)?;
            rows.iter()
                .map(|r| {
                    Ok(DayStats {
                        day: r.try_get(0).map_err(db_err)?,
                        booked_units: r.try_get(1).map_err(db_err)?,
                        booked_minutes: r.try_get(2).map_err(db_err)?,
                        booked_minor: r.try_get(3).map_err(db_err)?,
                        cancelled_units: r.try_get(4).map_err(db_err)?,
                        cancelled_minor: r.try_get(5).map_err(db_err)?,
                    })
                })
                .collect()
        })
    }

    fn load(&self, id: ResourceId) -> StoreFuture<Option<LoadedResource>> {
        Box::pin(load_resource(self.clone(), id))
    }

    fn commit(&self, batch: CommitBatch) -> StoreFuture<i64> {
        let this = self.clone();
        Box::pin(async move {
            let mut results = commit::commit_many(this, vec![batch]).await?;
            results.pop().unwrap_or_else(|| Err(corrupt("a merged commit answered no batch")))
        })
    }

    fn commit_many(&self, batches: Vec<CommitBatch>) -> StoreFuture<Vec<Result<i64, StoreError>>> {
        Box::pin(commit::commit_many(self.clone(), batches))
    }

    fn load_booking(&self, resource_id: ResourceId, booking_id: BookingId) -> StoreFuture<Option<Booking>> {
        let this = self.clone();
        Box::pin(async move {
            let c = this.client().await?;
            let row = c
                .query_opt(
                    &format!("SELECT {BOOKING_COLUMNS} FROM bookings WHERE id = $1 AND resource_id = $2"),
                    &[&booking_id.0, &resource_id.0],
                )
                .await
                .map_err(db_err)?;
            row.as_ref().map(booking_from_row).transpose()
        })
    }

    fn locate_booking(&self, booking_id: BookingId) -> StoreFuture<Option<ResourceId>> {
        let this = self.clone();
        Box::pin(async move {
            let c = this.client().await?;
            let row = c
                .query_opt("SELECT resource_id FROM bookings WHERE id = $1", &[&booking_id.0])
                .await
                .map_err(db_err)?;
            Ok(row.map(|r| ResourceId(r.get(0))))
        })
    }

    fn resources_with_lapsed_holds(&self, now: Timestamp, limit: i64) -> StoreFuture<Vec<ResourceId>> {
        let this = self.clone();
        Box::pin(async move {
            let c = this.client().await?;
            let rows = c
                .query(
                    "SELECT DISTINCT resource_id FROM bookings WHERE status = 'held' AND hold_expires_at <= $1 LIMIT $2",
                    &[&now, &limit],
                )
                .await
                .map_err(db_err)?;
            Ok(rows.iter().map(|r| ResourceId(r.get(0))).collect())
        })
    }

    fn list_resources(&self, filter: ResourceFilter) -> StoreFuture<Vec<ResourceSummary>> {
        Box::pin(list_resources(self.clone(), filter))
    }

    fn list_bookings(&self, filter: BookingFilter) -> StoreFuture<Vec<Booking>> {
        Box::pin(list_bookings(self.clone(), filter))
    }

    fn locate_entry(&self, entry_id: WaitlistEntryId) -> StoreFuture<Option<ResourceId>> {
        let this = self.clone();
        Box::pin(async move {
            let c = this.client().await?;
            let row = c
                .query_opt("SELECT resource_id FROM waitlist_entries WHERE id = $1", &[&entry_id.0])
                .await
                .map_err(db_err)?;
            Ok(row.map(|r| ResourceId(r.get(0))))
        })
    }

    fn list_waitlist_entries(&self, user_id: UserId, limit: i64) -> StoreFuture<Vec<WaitlistEntry>> {
        let this = self.clone();
        Box::pin(async move {
            let c = this.client().await?;
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT {WAITLIST_COLUMNS} FROM waitlist_entries WHERE user_id = $1
                     ORDER BY joined_at DESC, id DESC LIMIT $2"
                ))
                .await
                .map_err(db_err)?;
            let rows = c.query(&stmt, &[&user_id.0, &clamp_list_limit(limit)]).await.map_err(db_err)?;
            rows.iter().map(waitlist_entry_from_row).collect()
        })
    }

    fn overview(&self) -> StoreFuture<StoreOverview> {
        let this = self.clone();
        Box::pin(async move {
            let c = this.client().await?;
            // sum(bigint) is numeric: cast back, the counters are far below i64::MAX.
            let r = c
                .query_one(
                    "SELECT count(*) FILTER (WHERE kind = 'hotel'),
                            count(*) FILTER (WHERE kind = 'event'),
                            count(*) FILTER (WHERE kind = 'provider'),
                            coalesce(sum(held_bookings), 0)::bigint,
                            coalesce(sum(held_units), 0)::bigint,
                            coalesce(sum(confirmed_bookings), 0)::bigint,
                            coalesce(sum(confirmed_units), 0)::bigint
                     FROM resources",
                    &[],
                )
                .await
                .map_err(db_err)?;
            // The predicate matches the partial index of active entries.
            let w = c
                .query_one(
                    "SELECT count(*) FILTER (WHERE status = 'waiting'), count(*) FILTER (WHERE status = 'offered')
                     FROM waitlist_entries WHERE status IN ('waiting', 'offered')",
                    &[],
                )
                .await
                .map_err(db_err)?;
            let n = |v: i64| u64::try_from(v).map_err(|_| corrupt(format!("negative total {v}")));
            Ok(StoreOverview {
                hotels: n(r.get(0))?,
                events: n(r.get(1))?,
                providers: n(r.get(2))?,
                held_bookings: n(r.get(3))?,
                held_units: n(r.get(4))?,
                confirmed_bookings: n(r.get(5))?,
                confirmed_units: n(r.get(6))?,
                waitlist_waiting: n(w.get(0))?,
                waitlist_offered: n(w.get(1))?,
            })
        })
    }
}

// ---- listings -------------------------------------------------------------------------------
//
// Each listing is assembled from fixed SQL fragments, one per filter that is set, with every
// value bound as a numbered parameter: no input text ever reaches the SQL. Leaving unset
// filters out of the statement (rather than `$n IS NULL OR ...`) lets the planner pick the
// index that fits the filters actually given. Statements are prepared once per shape and
// connection.

/// Bound parameters of a listing, each paired with the `$n` it is referred to by.
#[derive(Default)]
struct Params<'a> {
    values: Vec<&'a (dyn ToSql + Sync)>,
}

impl<'a> Params<'a> {
    /// Binds `v` and returns its placeholder (`$1`, `$2`, ...).
    fn bind(&mut self, v: &'a (dyn ToSql + Sync)) -> String {
        self.values.push(v);
        format!("${}", self.values.len())
    }
}

async fn list_resources(store: PgStore, filter: ResourceFilter) -> Result<Vec<ResourceSummary>, StoreError> {
    let kind = filter.kind.map(ResourceKind::as_str);
    let owner = filter.owner_id.map(|o| o.0);
    let after = filter.after.map(|a| a.0);
    let limit = clamp_list_limit(filter.limit);
    let mut p = Params::default();
    let mut sql = String::from("SELECT r.id, r.kind, r.name, r.owner_id, h.city, r.version, r.reference FROM ");
    if let Some(c) = &filter.city {
        // Only hotels have a city: start from the hotels of that city (hotels_city, on
        // lower(city)), then sort those few by id. `OFFSET 0` keeps the subquery whole: without
        // it a generic plan may walk the hotels in id order to serve the LIMIT and test every
        // hotel's city, which reads them all when the city has fewer hotels than the page.
        sql += &format!(
            "(SELECT resource_id, city FROM hotels WHERE lower(city) = lower({}::text) OFFSET 0) h
             JOIN resources r ON r.id = h.resource_id WHERE TRUE",
            p.bind(c)
        );
    } else {
        sql += "resources r LEFT JOIN hotels h ON h.resource_id = r.id WHERE TRUE";
    }
    if let Some(k) = &kind {
        sql += &format!(" AND r.kind = {}", p.bind(k));
    }
    if let Some(o) = &owner {
        sql += &format!(" AND r.owner_id = {}", p.bind(o));
    }
    if let Some(r) = &filter.reference {
        sql += &format!(" AND r.reference = {}", p.bind(r));
    }
    if let Some(a) = &after {
        sql += &format!(" AND r.id > {}", p.bind(a));
    }
    sql += &format!(" ORDER BY r.id LIMIT {}", p.bind(&limit));

    let c = store.client().await?;
    let stmt = c.prepare_cached(&sql).await.map_err(db_err)?;
    let rows = c.query(&stmt, &p.values).await.map_err(db_err)?;
    rows.iter()
        .map(|r| {
            let ks: String = r.get(1);
            Ok(ResourceSummary {
                id: ResourceId(r.get(0)),
                kind: ResourceKind::parse(&ks).ok_or_else(|| corrupt(format!("unknown kind {ks}")))?,
                name: r.get(2),
                owner_id: UserId(r.get(3)),
                city: r.get(4),
                version: r.get(5),
                reference: r.get(6),
            })
        })
        .collect()
}

/// When a booking's service is over, as `KindSpec::service_ends_at` computes it: an
/// appointment's end, its event's end, or check-out time on the check-out date in the hotel's
/// zone. Evaluated per row after the user, resource or owner conditions have narrowed the rows
/// through their index; the lookups are primary-key reads of the resource's own row.
const SERVICE_ENDS_AT: &str = "(CASE item_kind
    WHEN 'appointment' THEN ends_at
    WHEN 'tickets' THEN (SELECT e.ends_at FROM events e WHERE e.resource_id = bookings.resource_id)
    ELSE (SELECT (bookings.check_out + h.check_out_time) AT TIME ZONE h.time_zone
          FROM hotels h WHERE h.resource_id = bookings.resource_id) END)";

async fn list_bookings(store: PgStore, filter: BookingFilter) -> Result<Vec<Booking>, StoreError> {
    let user = filter.user_id.map(|u| u.0);
    let resource = filter.resource_id.map(|r| r.0);
    let owner = filter.owner_id.map(|o| o.0);
    let statuses: Vec<&'static str> = filter.statuses.iter().map(|s| s.as_str()).collect();
    let before = filter.before.map(|(t, id)| (t, id.0));
    let limit = clamp_list_limit(filter.limit);
    let mut p = Params::default();
    // bookings_by_user serves a user's listing, bookings_by_resource a resource's (and, through
    // resources_owner, an owner's); the status and date conditions narrow within them.
    let mut sql = format!("SELECT {BOOKING_COLUMNS} FROM bookings WHERE TRUE");
    if let Some(u) = &user {
        sql += &format!(" AND user_id = {}", p.bind(u));
    }
    if let Some(r) = &resource {
        sql += &format!(" AND resource_id = {}", p.bind(r));
    }
    if let Some(o) = &owner {
        sql += &format!(" AND resource_id IN (SELECT r.id FROM resources r WHERE r.owner_id = {})", p.bind(o));
    }
    if !statuses.is_empty() {
        sql += &format!(" AND status = ANY({}::text[])", p.bind(&statuses));
    }
    if let Some(from) = &filter.created_from {
        sql += &format!(" AND created_at >= {}", p.bind(from));
    }
    if let Some(t) = &filter.ends_after {
        sql += &format!(" AND {SERVICE_ENDS_AT} > {}", p.bind(t));
    }
    if let Some(t) = &filter.ended_by {
        sql += &format!(" AND {SERVICE_ENDS_AT} <= {}", p.bind(t));
    }
    // The newest instant a listing can show: where a window of recent rows starts from.
    let mut newest = String::from("now()");
    if let Some(to) = &filter.created_to {
        newest = p.bind(to);
        sql += &format!(" AND created_at < {newest}");
    }
    if let Some((t, id)) = &before {
        let (t, id) = (p.bind(t), p.bind(id));
        newest = t.clone();
        // The plain bound on created_at is implied by the row comparison; it is spelled out
        // because an index on (..., created_at) can use it and cannot use the row comparison.
        sql += &format!(" AND created_at <= {t}::timestamptz AND (created_at, id) < ({t}::timestamptz, {id}::uuid)");
    }
    let order = format!(" ORDER BY created_at DESC, id DESC LIMIT {}", p.bind(&limit));

    let c = store.client().await?;
    if user.is_none() && resource.is_none() && owner.is_none() {
        // Everything (an admin's view) has no btree to walk, and one on created_at would tax
        // every booking written. Rows arrive in created_at order, so a BRIN index
        // (bookings_created) finds a recent window for almost nothing: read growing windows
        // back from the newest instant, and the first that fills the page holds the page
        // (everything outside it is older). Measured on 1M rows: 20 ms instead of a 300 ms
        // sort of the whole table. A sparse history falls through to the full query.
        let windowed =
            format!("{sql} AND created_at >= {newest} - make_interval(secs => ${}::float8){order}", p.values.len() + 1);
        let stmt = c.prepare_cached(&windowed).await.map_err(db_err)?;
        for secs in LISTING_WINDOWS_SECS {
            let mut values = p.values.clone();
            values.push(&secs);
            let rows = c.query(&stmt, &values).await.map_err(db_err)?;
            if i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit {
                return rows.iter().map(booking_from_row).collect();
            }
        }
    }
    let stmt = c.prepare_cached(&format!("{sql}{order}")).await.map_err(db_err)?;
    let rows = c.query(&stmt, &p.values).await.map_err(db_err)?;
    rows.iter().map(booking_from_row).collect()
}

/// The windows (an hour, a day, a week, 30 days, a year) an unscoped listing reads first.
const LISTING_WINDOWS_SECS: [f64; 5] = [3_600.0, 86_400.0, 604_800.0, 2_592_000.0, 31_536_000.0];

const WAITLIST_COLUMNS: &str =
    "id, resource_id, user_id, wish, status, position, offer_booking_id, offer_expires_at, joined_at, updated_at";

fn waitlist_entry_from_row(r: &Row) -> Result<WaitlistEntry, StoreError> {
    let status: String = r.try_get("status").map_err(unavailable)?;
    let wish: serde_json::Value = r.try_get("wish").map_err(unavailable)?;
    Ok(WaitlistEntry {
        id: WaitlistEntryId(r.try_get("id").map_err(unavailable)?),
        resource_id: ResourceId(r.try_get("resource_id").map_err(unavailable)?),
        user_id: UserId(r.try_get("user_id").map_err(unavailable)?),
        wish: serde_json::from_value::<Wish>(wish).map_err(corrupt)?,
        status: WaitlistStatus::parse(&status).ok_or_else(|| corrupt(format!("unknown waitlist status {status}")))?,
        position: r.try_get("position").map_err(unavailable)?,
        offer_booking_id: r.try_get::<_, Option<Uuid>>("offer_booking_id").map_err(unavailable)?.map(BookingId),
        offer_expires_at: r.try_get("offer_expires_at").map_err(unavailable)?,
        joined_at: r.try_get("joined_at").map_err(unavailable)?,
        updated_at: r.try_get("updated_at").map_err(unavailable)?,
    })
}
