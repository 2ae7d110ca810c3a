//! The merged commit: many resources' batches in one transaction (a shard committer's, see
//! `crate::committer`), each fenced on its own version.
//!
//! The steps, each one statement whatever the number of resources (creates and specification
//! changes aside: they are rare and written one by one):
//! 1. creates: `INSERT ... ON CONFLICT DO NOTHING` (an existing id, or a reference the owner
//!    already uses, refuses that create alone);
//! 2. the fence: one `UPDATE resources ... FROM unnest(...) WHERE version = expected RETURNING
//!    id`; a resource not returned moved since its actor loaded it and is refused alone: none of
//!    its rows is written;
//! 3. the accepted batches' rows: COPY for new bookings, history and outbox rows; one upsert
//!    each for changed bookings, waitlist entries, idempotency records and day counters; one
//!    update of `events.taken`. The statements that do not COPY are pipelined.
//!
//! A database guard that refuses a row (room_nights, the events CHECK, the appointments
//! exclusion) fails the whole transaction: every batch in it is answered with the error and
//! nobody believes it committed.

use super::{PgStore, corrupt, db_err, write_kind_spec};
use crate::domain::booking::{Booking, BookingItem, Requester, Transition};
use crate::domain::command::{Change, IdempotencyRecord, Notification};
use crate::domain::ids::BookingId;
use crate::domain::spec::{ResourceKind, ResourceSpec};
use crate::domain::stats::DayStats;
use crate::domain::waitlist::WaitlistEntry;
use crate::store::{CommitBatch, StoreError};
use futures::future::try_join_all;
use jiff::Timestamp;
use jiff::civil::Date;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::{Pin, pin};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use uuid::Uuid;

/// Column arrays for one bulk upsert of bookings.
#[derive(Default)]
struct BookingCols {
    resource_id: Vec<Uuid>,
    id: Vec<Uuid>,
    item_kind: Vec<&'static str>,
    user_id: Vec<Uuid>,
    status: Vec<&'static str>,
    room_type_id: Vec<Option<Uuid>>,
    room_id: Vec<Option<Uuid>>,
    check_in: Vec<Option<Date>>,
    check_out: Vec<Option<Date>>,
    guests: Vec<Option<i16>>,
    category_id: Vec<Option<Uuid>>,
    quantity: Vec<Option<i32>>,
    starts_at: Vec<Option<Timestamp>>,
    ends_at: Vec<Option<Timestamp>>,
    amount_minor: Vec<i64>,
    currency: Vec<String>,
    hold_expires_at: Vec<Option<Timestamp>>,
    payment_ref: Vec<Option<String>>,
    refunded_minor: Vec<i64>,
    waitlist_entry_id: Vec<Option<Uuid>>,
    idempotency_key: Vec<Option<String>>,
    created_at: Vec<Timestamp>,
    updated_at: Vec<Timestamp>,
}

/// The kind-specific columns of a booking row (NULL where the kind has none).
struct ItemCols {
    kind: &'static str,
    room_type_id: Option<Uuid>,
    room_id: Option<Uuid>,
    check_in: Option<Date>,
    check_out: Option<Date>,
    guests: Option<i16>,
    category_id: Option<Uuid>,
    quantity: Option<i32>,
    starts_at: Option<Timestamp>,
    ends_at: Option<Timestamp>,
}

impl ItemCols {
    fn of(item: &BookingItem) -> Result<ItemCols, StoreError> {
        let mut c = ItemCols {
            kind: "",
            room_type_id: None,
            room_id: None,
            check_in: None,
            check_out: None,
            guests: None,
            category_id: None,
            quantity: None,
            starts_at: None,
            ends_at: None,
        };
        match item {
            BookingItem::Stay { room_type_id, room_id, check_in, check_out, guests } => {
                c.kind = "stay";
                c.room_type_id = Some(room_type_id.0);
                c.room_id = Some(room_id.0);
                c.check_in = Some(*check_in);
                c.check_out = Some(*check_out);
                c.guests = Some(i16::try_from(*guests).map_err(corrupt)?);
            }
            BookingItem::Tickets { category_id, quantity } => {
                c.kind = "tickets";
                c.category_id = category_id.map(|x| x.0);
                c.quantity = Some(i32::try_from(*quantity).map_err(corrupt)?);
            }
            BookingItem::Appointment { starts_at, ends_at } => {
                c.kind = "appointment";
                c.starts_at = Some(*starts_at);
                c.ends_at = Some(*ends_at);
            }
        }
        Ok(c)
    }
}

impl BookingCols {
    fn push(&mut self, rid: Uuid, b: &Booking) -> Result<(), StoreError> {
        let c = ItemCols::of(&b.item)?;
        self.resource_id.push(rid);
        self.id.push(b.id.0);
        self.user_id.push(b.user_id.0);
        self.status.push(b.status.as_str());
        self.item_kind.push(c.kind);
        self.room_type_id.push(c.room_type_id);
        self.room_id.push(c.room_id);
        self.check_in.push(c.check_in);
        self.check_out.push(c.check_out);
        self.guests.push(c.guests);
        self.category_id.push(c.category_id);
        self.quantity.push(c.quantity);
        self.starts_at.push(c.starts_at);
        self.ends_at.push(c.ends_at);
        self.amount_minor.push(b.amount.amount_minor);
        self.currency.push(b.amount.currency.as_str().to_owned());
        self.hold_expires_at.push(b.hold_expires_at);
        self.payment_ref.push(b.payment_ref.clone());
        self.refunded_minor.push(b.refunded_minor);
        self.waitlist_entry_id.push(b.waitlist_entry_id.map(|w| w.0));
        self.idempotency_key.push(b.idempotency_key.clone());
        self.created_at.push(b.created_at);
        self.updated_at.push(b.updated_at);
        Ok(())
    }
}

/// Bookings created in this batch are plain inserts: binary COPY is the cheapest way in.
const COPY_BOOKINGS: &str = "COPY bookings (id, resource_id, item_kind, user_id, status, room_type_id, room_id,
    check_in, check_out, guests, category_id, quantity, starts_at, ends_at, amount_minor, currency,
    hold_expires_at, payment_ref, refunded_minor, waitlist_entry_id, idempotency_key, created_at, updated_at)
    FROM STDIN (FORMAT binary)";
const COPY_BOOKINGS_TYPES: [Type; 23] = [
    Type::UUID,
    Type::UUID,
    Type::TEXT,
    Type::UUID,
    Type::TEXT,
    Type::UUID,
    Type::UUID,
    Type::DATE,
    Type::DATE,
    Type::INT2,
    Type::UUID,
    Type::INT4,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
    Type::INT8,
    Type::BPCHAR,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::INT8,
    Type::UUID,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
];

async fn copy_new_bookings(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: &[(Uuid, &Booking)],
) -> Result<(), StoreError> {
    let sink = tx.copy_in(COPY_BOOKINGS).await.map_err(db_err)?;
    let mut w = pin!(BinaryCopyInWriter::new(sink, &COPY_BOOKINGS_TYPES));
    for (rid, b) in rows {
        let c = ItemCols::of(&b.item)?;
        let entry = b.waitlist_entry_id.map(|x| x.0);
        w.as_mut()
            .write(&[
                &b.id.0,
                rid,
                &c.kind,
                &b.user_id.0,
                &b.status.as_str(),
                &c.room_type_id,
                &c.room_id,
                &c.check_in,
                &c.check_out,
                &c.guests,
                &c.category_id,
                &c.quantity,
                &c.starts_at,
                &c.ends_at,
                &b.amount.amount_minor,
                &b.amount.currency.as_str(),
                &b.hold_expires_at,
                &b.payment_ref,
                &b.refunded_minor,
                &entry,
                &b.idempotency_key,
                &b.created_at,
                &b.updated_at,
            ])
            .await
            .map_err(db_err)?;
    }
    w.finish().await.map_err(db_err)?;
    Ok(())
}

async fn copy_history(tx: &deadpool_postgres::Transaction<'_>, rows: &[(Uuid, &Transition)]) -> Result<(), StoreError> {
    let sink = tx
        .copy_in("COPY booking_history (booking_id, resource_id, from_status, to_status, at, by_role, by_user, reason) FROM STDIN (FORMAT binary)")
        .await
        .map_err(db_err)?;
    let types = [Type::UUID, Type::UUID, Type::TEXT, Type::TEXT, Type::TIMESTAMPTZ, Type::TEXT, Type::UUID, Type::TEXT];
    let mut w = pin!(BinaryCopyInWriter::new(sink, &types));
    for (rid, t) in rows {
        let (role, usr) = role_of(&t.by);
        let from = t.from.map(|s| s.as_str());
        w.as_mut()
            .write(&[&t.booking_id.0, rid, &from, &t.to.as_str(), &t.at, &role, &usr, &t.reason])
            .await
            .map_err(db_err)?;
    }
    w.finish().await.map_err(db_err)?;
    Ok(())
}

async fn copy_outbox(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: &[(Uuid, &Notification)],
) -> Result<(), StoreError> {
    let sink = tx
        .copy_in(
            "COPY outbox (resource_id, kind, user_id, booking_id, entry_id, created_at) FROM STDIN (FORMAT binary)",
        )
        .await
        .map_err(db_err)?;
    let types = [Type::UUID, Type::TEXT, Type::UUID, Type::UUID, Type::UUID, Type::TIMESTAMPTZ];
    let mut w = pin!(BinaryCopyInWriter::new(sink, &types));
    for (rid, n) in rows {
        let (b, e) = (n.booking_id.map(|x| x.0), n.entry_id.map(|x| x.0));
        w.as_mut().write(&[rid, &n.kind.as_str(), &n.user_id.0, &b, &e, &n.at]).await.map_err(db_err)?;
    }
    w.finish().await.map_err(db_err)?;
    Ok(())
}

const UPSERT_BOOKINGS: &str = "
INSERT INTO bookings (id, resource_id, item_kind, user_id, status, room_type_id, room_id, check_in,
    check_out, guests, category_id, quantity, starts_at, ends_at, amount_minor, currency,
    hold_expires_at, payment_ref, refunded_minor, waitlist_entry_id, idempotency_key, created_at, updated_at)
SELECT u.id, u.rid, u.item_kind, u.user_id, u.status, u.room_type_id, u.room_id, u.check_in, u.check_out,
    u.guests, u.category_id, u.quantity, u.starts_at, u.ends_at, u.amount_minor, u.currency,
    u.hold_expires_at, u.payment_ref, u.refunded_minor, u.waitlist_entry_id, u.idempotency_key,
    u.created_at, u.updated_at
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::text[], $6::uuid[], $7::uuid[], $8::date[],
    $9::date[], $10::int2[], $11::uuid[], $12::int4[], $13::timestamptz[], $14::timestamptz[],
    $15::int8[], $16::text[], $17::timestamptz[], $18::text[], $19::int8[], $20::uuid[], $21::text[],
    $22::timestamptz[], $23::timestamptz[])
    AS u(rid, id, item_kind, user_id, status, room_type_id, room_id, check_in, check_out, guests,
         category_id, quantity, starts_at, ends_at, amount_minor, currency, hold_expires_at,
         payment_ref, refunded_minor, waitlist_entry_id, idempotency_key, created_at, updated_at)
ON CONFLICT (id) DO UPDATE SET
    status = EXCLUDED.status, room_type_id = EXCLUDED.room_type_id, room_id = EXCLUDED.room_id,
    check_in = EXCLUDED.check_in, check_out = EXCLUDED.check_out, guests = EXCLUDED.guests,
    category_id = EXCLUDED.category_id, quantity = EXCLUDED.quantity, starts_at = EXCLUDED.starts_at,
    ends_at = EXCLUDED.ends_at, amount_minor = EXCLUDED.amount_minor,
    hold_expires_at = EXCLUDED.hold_expires_at, payment_ref = EXCLUDED.payment_ref,
    refunded_minor = EXCLUDED.refunded_minor, updated_at = EXCLUDED.updated_at";

const UPSERT_WAITLIST: &str = "
INSERT INTO waitlist_entries (id, resource_id, user_id, wish, status, position, offer_booking_id,
    offer_expires_at, joined_at, updated_at)
SELECT u.id, u.rid, u.usr, u.wish, u.status, u.pos, u.ob, u.oe, u.j, u.upd
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::jsonb[], $5::text[], $6::int8[], $7::uuid[],
    $8::timestamptz[], $9::timestamptz[], $10::timestamptz[])
    AS u(rid, id, usr, wish, status, pos, ob, oe, j, upd)
ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, offer_booking_id = EXCLUDED.offer_booking_id,
    offer_expires_at = EXCLUDED.offer_expires_at, updated_at = EXCLUDED.updated_at";

const INSERT_IDEMPOTENCY: &str = "
INSERT INTO idempotency_keys (resource_id, scope, key, fingerprint, result, created_at)
SELECT u.rid, u.s, u.k, u.f, u.r, u.at
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::timestamptz[]) AS u(rid, s, k, f, r, at)
ON CONFLICT DO NOTHING";

const UPSERT_DAILY_STATS: &str = "
INSERT INTO daily_stats AS d (resource_id, day, booked_units, booked_minutes, booked_minor, cancelled_units, cancelled_minor)
SELECT u.rid, u.day, u.bu, u.bm, u.bx, u.cu, u.cx
FROM unnest($1::uuid[], $2::date[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[])
    AS u(rid, day, bu, bm, bx, cu, cx)
ON CONFLICT (resource_id, day) DO UPDATE SET
    booked_units = d.booked_units + EXCLUDED.booked_units,
    booked_minutes = d.booked_minutes + EXCLUDED.booked_minutes,
    booked_minor = d.booked_minor + EXCLUDED.booked_minor,
    cancelled_units = d.cancelled_units + EXCLUDED.cancelled_units,
    cancelled_minor = d.cancelled_minor + EXCLUDED.cancelled_minor";

/// The fence of every updated resource in one statement: a resource whose version is not the
/// one its actor expects is not updated and not returned, so it is refused alone.
const FENCE: &str = "
UPDATE resources r SET version = r.version + 1, held_bookings = u.hb, held_units = u.hu,
    confirmed_bookings = u.cb, confirmed_units = u.cu, updated_at = u.at
FROM unnest($1::uuid[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::timestamptz[])
    AS u(id, v, hb, hu, cb, cu, at)
WHERE r.id = u.id AND r.version = u.v
RETURNING r.id";

/// `ON CONFLICT DO NOTHING` without a target: an existing id or a reference the owner already
/// uses (resources_owner_reference) refuses this create alone instead of the transaction.
const CREATE: &str = "
INSERT INTO resources (id, kind, name, owner_id, hold_ttl_secs, offer_ttl_secs, version,
    held_bookings, held_units, confirmed_bookings, confirmed_units, created_at, updated_at, reference)
VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $10, $11, $11, $12) ON CONFLICT DO NOTHING";

const UPDATE_EVENTS_TAKEN: &str = "
UPDATE events e SET taken = u.t FROM unnest($1::uuid[], $2::int8[]) AS u(id, t) WHERE e.resource_id = u.id";

fn role_of(r: &Requester) -> (&'static str, Option<Uuid>) {
    match r {
        Requester::Client(u) => ("client", Some(u.0)),
        Requester::Owner(u) => ("owner", Some(u.0)),
        Requester::Admin(u) => ("admin", Some(u.0)),
        Requester::System => ("system", None),
    }
}

/// The counters a batch stores, as the database's bigints.
struct Stored {
    hb: i64,
    hu: i64,
    cb: i64,
    cu: i64,
}

impl Stored {
    fn of(b: &CommitBatch) -> Result<Stored, StoreError> {
        let c = b.counters;
        let to_i64 = |v: u64| i64::try_from(v).map_err(corrupt);
        Ok(Stored {
            hb: to_i64(c.held_bookings)?,
            hu: to_i64(c.held_units)?,
            cb: to_i64(c.confirmed_bookings)?,
            cu: to_i64(c.confirmed_units)?,
        })
    }
}

/// The last specification in a batch wins (a create, or an owner's update).
fn last_spec(b: &CommitBatch) -> Option<&ResourceSpec> {
    b.changes.iter().rev().find_map(|ch| match ch {
        Change::Spec(s) => Some(&**s),
        _ => None,
    })
}

/// Every accepted batch's rows, collapsed per resource: a booking changed three times in a
/// batch is written once, as it ended.
#[derive(Default)]
struct Rows<'a> {
    fresh: Vec<(Uuid, &'a Booking)>,
    known: Vec<(Uuid, &'a Booking)>,
    history: Vec<(Uuid, &'a Transition)>,
    entries: Vec<(Uuid, &'a WaitlistEntry)>,
    outbox: Vec<(Uuid, &'a Notification)>,
    idem: Vec<(Uuid, &'a IdempotencyRecord)>,
    tallies: BTreeMap<(Uuid, Date), DayStats>,
    /// Events' `taken` (held + confirmed units): the database's own oversell guard.
    taken: Vec<(Uuid, i64)>,
}

impl<'a> Rows<'a> {
    fn add(&mut self, b: &'a CommitBatch, stored: &Stored) {
        let rid = b.resource_id.0;
        let mut bookings: Vec<&Booking> = Vec::new();
        let mut booking_pos: HashMap<BookingId, usize> = HashMap::new();
        let mut entries: Vec<&WaitlistEntry> = Vec::new();
        let mut entry_pos: HashMap<crate::domain::ids::WaitlistEntryId, usize> = HashMap::new();
        let mut created: HashSet<BookingId> = HashSet::new();
        for ch in &b.changes {
            match ch {
                Change::Spec(_) => {}
                Change::Booking(bk) => match booking_pos.get(&bk.id) {
                    Some(&i) => bookings[i] = bk,
                    None => {
                        booking_pos.insert(bk.id, bookings.len());
                        bookings.push(bk);
                    }
                },
                Change::History(t) => {
                    // Created in this batch (its first transition is here): COPY, not upsert.
                    if t.from.is_none() {
                        created.insert(t.booking_id);
                    }
                    self.history.push((rid, t));
                }
                Change::Waitlist(e) => match entry_pos.get(&e.id) {
                    Some(&i) => entries[i] = e,
                    None => {
                        entry_pos.insert(e.id, entries.len());
                        entries.push(e);
                    }
                },
                Change::Notify(n) => self.outbox.push((rid, n)),
                Change::Idempotency(r) => self.idem.push((rid, r)),
                Change::Tally(t) => self.tallies.entry((rid, t.day)).or_insert_with(|| DayStats::zero(t.day)).add(t),
            }
        }
        for bk in bookings {
            if created.contains(&bk.id) {
                self.fresh.push((rid, bk));
            } else {
                self.known.push((rid, bk));
            }
        }
        self.entries.extend(entries.into_iter().map(|e| (rid, e)));
        if b.kind == ResourceKind::Event {
            self.taken.push((rid, stored.hu + stored.cu));
        }
    }
}

type Exec<'t> = Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send + 't>>;

/// Writes the accepted batches' rows. The COPYs go one after the other; the other statements
/// are sent together (tokio-postgres pipelines futures polled at once), so the transaction
/// waits for one round trip for all of them.
async fn write_rows(tx: &deadpool_postgres::Transaction<'_>, rows: &Rows<'_>) -> Result<(), StoreError> {
    if !rows.fresh.is_empty() {
        copy_new_bookings(tx, &rows.fresh).await?;
    }
    if !rows.history.is_empty() {
        copy_history(tx, &rows.history).await?;
    }
    if !rows.outbox.is_empty() {
        copy_outbox(tx, &rows.outbox).await?;
    }

    let mut cols = BookingCols::default();
    for (rid, b) in &rows.known {
        cols.push(*rid, b)?;
    }
    let e_rid: Vec<Uuid> = rows.entries.iter().map(|(r, _)| *r).collect();
    let e_id: Vec<Uuid> = rows.entries.iter().map(|(_, e)| e.id.0).collect();
    let e_usr: Vec<Uuid> = rows.entries.iter().map(|(_, e)| e.user_id.0).collect();
    let e_wish: Vec<serde_json::Value> =
        rows.entries.iter().map(|(_, e)| serde_json::to_value(&e.wish)).collect::<Result<_, _>>().map_err(corrupt)?;
    let e_status: Vec<&str> = rows.entries.iter().map(|(_, e)| e.status.as_str()).collect();
    let e_pos: Vec<i64> = rows.entries.iter().map(|(_, e)| e.position).collect();
    let e_ob: Vec<Option<Uuid>> = rows.entries.iter().map(|(_, e)| e.offer_booking_id.map(|b| b.0)).collect();
    let e_oe: Vec<Option<Timestamp>> = rows.entries.iter().map(|(_, e)| e.offer_expires_at).collect();
    let e_j: Vec<Timestamp> = rows.entries.iter().map(|(_, e)| e.joined_at).collect();
    let e_upd: Vec<Timestamp> = rows.entries.iter().map(|(_, e)| e.updated_at).collect();
    let i_rid: Vec<Uuid> = rows.idem.iter().map(|(r, _)| *r).collect();
    let i_s: Vec<&str> = rows.idem.iter().map(|(_, r)| r.scope.as_str()).collect();
    let i_k: Vec<&str> = rows.idem.iter().map(|(_, r)| r.key.as_str()).collect();
    let i_f: Vec<&str> = rows.idem.iter().map(|(_, r)| r.fingerprint.as_str()).collect();
    let i_res: Vec<serde_json::Value> =
        rows.idem.iter().map(|(_, r)| serde_json::to_value(&r.result)).collect::<Result<_, _>>().map_err(corrupt)?;
    let i_at: Vec<Timestamp> = rows.idem.iter().map(|(_, r)| r.at).collect();
    // One upsert for every resource's days: a flash sale adds one row per day, not per booking.
    let tallies: Vec<(&(Uuid, Date), &DayStats)> = rows.tallies.iter().filter(|(_, t)| !t.is_zero()).collect();
    let t_rid: Vec<Uuid> = tallies.iter().map(|((r, _), _)| *r).collect();
    let t_day: Vec<Date> = tallies.iter().map(|((_, d), _)| *d).collect();
    let col = |f: fn(&DayStats) -> i64| tallies.iter().map(|(_, t)| f(t)).collect::<Vec<i64>>();
    let (t_bu, t_bm, t_bx, t_cu, t_cx) = (
        col(|t| t.booked_units),
        col(|t| t.booked_minutes),
        col(|t| t.booked_minor),
        col(|t| t.cancelled_units),
        col(|t| t.cancelled_minor),
    );
    let k_rid: Vec<Uuid> = rows.taken.iter().map(|(r, _)| *r).collect();
    let k_taken: Vec<i64> = rows.taken.iter().map(|(_, t)| *t).collect();

    let mut statements: Vec<Exec<'_>> = Vec::new();
    if !cols.id.is_empty() {
        let stmt = tx.prepare_cached(UPSERT_BOOKINGS).await.map_err(db_err)?;
        let c = &cols;
        statements.push(Box::pin(async move {
            tx.execute(
                &stmt,
                &[
                    &c.resource_id,
                    &c.id,
                    &c.item_kind,
                    &c.user_id,
                    &c.status,
                    &c.room_type_id,
                    &c.room_id,
                    &c.check_in,
                    &c.check_out,
                    &c.guests,
                    &c.category_id,
                    &c.quantity,
                    &c.starts_at,
                    &c.ends_at,
                    &c.amount_minor,
                    &c.currency,
                    &c.hold_expires_at,
                    &c.payment_ref,
                    &c.refunded_minor,
                    &c.waitlist_entry_id,
                    &c.idempotency_key,
                    &c.created_at,
                    &c.updated_at,
                ],
            )
            .await
        }));
    }
    if !e_id.is_empty() {
        let stmt = tx.prepare_cached(UPSERT_WAITLIST).await.map_err(db_err)?;
        let (a, b, c, d, e, f, g, h, i, j) =
            (&e_rid, &e_id, &e_usr, &e_wish, &e_status, &e_pos, &e_ob, &e_oe, &e_j, &e_upd);
        statements.push(Box::pin(async move { tx.execute(&stmt, &[a, b, c, d, e, f, g, h, i, j]).await }));
    }
    if !i_rid.is_empty() {
        let stmt = tx.prepare_cached(INSERT_IDEMPOTENCY).await.map_err(db_err)?;
        let (a, b, c, d, e, f) = (&i_rid, &i_s, &i_k, &i_f, &i_res, &i_at);
        statements.push(Box::pin(async move { tx.execute(&stmt, &[a, b, c, d, e, f]).await }));
    }
    if !t_rid.is_empty() {
        let stmt = tx.prepare_cached(UPSERT_DAILY_STATS).await.map_err(db_err)?;
        let (a, b, c, d, e, f, g) = (&t_rid, &t_day, &t_bu, &t_bm, &t_bx, &t_cu, &t_cx);
        statements.push(Box::pin(async move { tx.execute(&stmt, &[a, b, c, d, e, f, g]).await }));
    }
    if !k_rid.is_empty() {
        let stmt = tx.prepare_cached(UPDATE_EVENTS_TAKEN).await.map_err(db_err)?;
        let (a, b) = (&k_rid, &k_taken);
        statements.push(Box::pin(async move { tx.execute(&stmt, &[a, b]).await }));
    }
    try_join_all(statements).await.map_err(db_err)?;
    Ok(())
}

/// See the module comment. `Err`: the transaction failed or its outcome is unknown.
pub(super) async fn commit_many(
    store: PgStore,
    batches: Vec<CommitBatch>,
) -> Result<Vec<Result<i64, StoreError>>, StoreError> {
    let mut results: Vec<Option<Result<i64, StoreError>>> = vec![None; batches.len()];
    let mut stored: Vec<Option<Stored>> = Vec::with_capacity(batches.len());
    // One batch per resource: an actor has one batch in flight, so a second one for the same
    // resource can only be stale (a replaced actor's); it is refused like a moved version.
    let mut seen: HashSet<Uuid> = HashSet::new();
    for (i, b) in batches.iter().enumerate() {
        stored.push(None);
        if !seen.insert(b.resource_id.0) {
            results[i] = Some(Err(StoreError::Conflict));
            continue;
        }
        match Stored::of(b) {
            Ok(s) => stored[i] = Some(s),
            Err(e) => results[i] = Some(Err(e)),
        }
    }

    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(db_err)?;

    // A batch expecting no resource yet but carrying no specification: stale if the resource
    // exists (as a moved version is), else not a batch any actor makes.
    for (i, b) in batches.iter().enumerate() {
        if stored[i].is_none() || b.expected_version != 0 || last_spec(b).is_some() {
            continue;
        }
        let exists =
            tx.query_opt("SELECT 1 FROM resources WHERE id = $1", &[&b.resource_id.0]).await.map_err(db_err)?;
        results[i] = Some(Err(if exists.is_some() {
            StoreError::Conflict
        } else {
            corrupt("creating a resource without its specification")
        }));
        stored[i] = None;
    }

    // 1. Creates, one by one (rare).
    for (i, b) in batches.iter().enumerate() {
        let (Some(s), Some(spec), 0) = (&stored[i], last_spec(b), b.expected_version) else { continue };
        let stmt = tx.prepare_cached(CREATE).await.map_err(db_err)?;
        let n = tx
            .execute(
                &stmt,
                &[
                    &b.resource_id.0,
                    &spec.kind.kind().as_str(),
                    &spec.name,
                    &spec.owner_id.0,
                    &i32::try_from(spec.hold_ttl_secs).map_err(corrupt)?,
                    &i32::try_from(spec.offer_ttl_secs).map_err(corrupt)?,
                    &s.hb,
                    &s.hu,
                    &s.cb,
                    &s.cu,
                    &b.at,
                    &spec.reference,
                ],
            )
            .await
            .map_err(db_err)?;
        if n == 0 {
            results[i] = Some(Err(StoreError::Conflict));
            stored[i] = None;
        }
    }

    // 2. The fence of every update, in one statement.
    let updates: Vec<usize> =
        (0..batches.len()).filter(|&i| stored[i].is_some() && batches[i].expected_version > 0).collect();
    if !updates.is_empty() {
        let pick =
            |f: fn(&Stored) -> i64| updates.iter().filter_map(|&i| stored[i].as_ref().map(f)).collect::<Vec<i64>>();
        let ids: Vec<Uuid> = updates.iter().map(|&i| batches[i].resource_id.0).collect();
        let versions: Vec<i64> = updates.iter().map(|&i| batches[i].expected_version).collect();
        let at: Vec<Timestamp> = updates.iter().map(|&i| batches[i].at).collect();
        let (hb, hu, cb, cu) = (pick(|s| s.hb), pick(|s| s.hu), pick(|s| s.cb), pick(|s| s.cu));
        let stmt = tx.prepare_cached(FENCE).await.map_err(db_err)?;
        let fenced = tx.query(&stmt, &[&ids, &versions, &hb, &hu, &cb, &cu, &at]).await.map_err(db_err)?;
        let passed: HashSet<Uuid> = fenced.iter().map(|r| r.get::<_, Uuid>(0)).collect();
        for &i in &updates {
            if !passed.contains(&batches[i].resource_id.0) {
                // Fencing: someone else wrote since this actor loaded. Nothing of it is written.
                results[i] = Some(Err(StoreError::Conflict));
                stored[i] = None;
            }
        }
    }

    // Specifications (creates and owners' changes): rare, one by one.
    for (i, b) in batches.iter().enumerate() {
        let (Some(_), Some(spec)) = (&stored[i], last_spec(b)) else { continue };
        let rid = b.resource_id.0;
        if b.expected_version > 0 {
            tx.execute(
                "UPDATE resources SET name = $2, owner_id = $3, hold_ttl_secs = $4, offer_ttl_secs = $5, reference = $6
                 WHERE id = $1",
                &[
                    &rid,
                    &spec.name,
                    &spec.owner_id.0,
                    &i32::try_from(spec.hold_ttl_secs).map_err(corrupt)?,
                    &i32::try_from(spec.offer_ttl_secs).map_err(corrupt)?,
                    &spec.reference,
                ],
            )
            .await
            .map_err(db_err)?;
        }
        write_kind_spec(&tx, rid, &spec.kind).await?;
    }

    // 3. Every accepted batch's rows.
    let mut rows = Rows::default();
    for (i, b) in batches.iter().enumerate() {
        if let Some(s) = &stored[i] {
            rows.add(b, s);
        }
    }
    write_rows(&tx, &rows).await?;
    tx.commit().await.map_err(db_err)?;

    Ok(batches.iter().zip(results).map(|(b, r)| r.unwrap_or(Ok(b.expected_version + 1))).collect())
}
