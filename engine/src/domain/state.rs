//! One resource's complete decision state: its inventory, its bookings, holds, waitlist and
//! idempotency records. `apply` is the only way in; every decision appends the `Change`s the
//! shell must persist before it may acknowledge the decision.
//!
//! All capacity moves go through `set_status`/`insert_booking`, so the inventory, the expiry
//! indexes and the counters cannot drift apart.

use super::booking::{Booking, BookingItem, BookingRequest, BookingStatus, Requester, Transition, Wish};
use super::command::{
    Change, Command, IdempotencyRecord, MAX_KEY_CHARS, MAX_REASON_CHARS, Notification, NotificationKind, Outcome,
};
use super::error::{DomainError, SpecError};
use super::event::{EventAvailability, EventInventory};
use super::hotel::{HotelInventory, RoomTypeAvailability};
use super::ids::{BookingId, ResourceId, UserId, WaitlistEntryId};
use super::ingest::{
    INGEST_KEY_PREFIX, INGEST_SCOPE, IngestAction, IngestEvent, IngestResult, MAX_INGEST_EVENTS, is_feed_booking,
};
use super::inventory::{Inventory, Placement};
use super::money::Money;
use super::provider::{ProviderInventory, Slot};
use super::spec::{KindSpec, ResourceKind, ResourceSpec};
use super::stats::{DayStats, share};
use super::waitlist::{MAX_ACTIVE_ENTRIES, WaitlistEntry, WaitlistStatus};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

/// Active bookings one resource may carry in memory (about 300 bytes each).
pub const MAX_ACTIVE_BOOKINGS: usize = 1_000_000;
/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_RETENTION_SECS: i64 = 24 * 3600;

pub enum Kind {
    Hotel(HotelInventory),
    Event(EventInventory),
    Provider(ProviderInventory),
}

impl Kind {
    fn build(spec: &KindSpec) -> Result<Kind, SpecError> {
        Ok(match spec {
            KindSpec::Hotel(s) => Kind::Hotel(HotelInventory::new(s.clone())?),
            KindSpec::Event(s) => Kind::Event(EventInventory::new(s.clone())?),
            KindSpec::Provider(s) => Kind::Provider(ProviderInventory::new(s.clone())?),
        })
    }
    fn inv(&self) -> &dyn Inventory {
        match self {
            Kind::Hotel(h) => h,
            Kind::Event(e) => e,
            Kind::Provider(p) => p,
        }
    }
    fn inv_mut(&mut self) -> &mut dyn Inventory {
        match self {
            Kind::Hotel(h) => h,
            Kind::Event(e) => e,
            Kind::Provider(p) => p,
        }
    }
    pub fn kind(&self) -> ResourceKind {
        match self {
            Kind::Hotel(_) => ResourceKind::Hotel,
            Kind::Event(_) => ResourceKind::Event,
            Kind::Provider(_) => ResourceKind::Provider,
        }
    }
    fn spec(&self) -> KindSpec {
        match self {
            Kind::Hotel(h) => KindSpec::Hotel(h.spec().clone()),
            Kind::Event(e) => KindSpec::Event(e.spec().clone()),
            Kind::Provider(p) => KindSpec::Provider(p.spec().clone()),
        }
    }
    fn respec(&mut self, spec: KindSpec) -> Result<(), DomainError> {
        match (self, spec) {
            (Kind::Hotel(h), KindSpec::Hotel(s)) => h.respec(s),
            (Kind::Event(e), KindSpec::Event(s)) => e.respec(s),
            (Kind::Provider(p), KindSpec::Provider(s)) => p.respec(s),
            (k, _) => Err(DomainError::validation(
                "kind.type",
                format!("a {} cannot become another kind of resource", k.kind().as_str()),
            )),
        }
    }
}

/// Held and confirmed totals, kept in step with the bookings (checked by `check_invariants`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Counters {
    pub held_bookings: u64,
    pub held_units: u64,
    pub confirmed_bookings: u64,
    pub confirmed_units: u64,
}

pub struct ResourceState {
    id: ResourceId,
    name: String,
    owner_id: UserId,
    reference: Option<String>,
    hold_ttl_secs: u32,
    offer_ttl_secs: u32,
    kind: Kind,
    bookings: HashMap<BookingId, Booking>,
    /// Held bookings by expiry: the next hold or offer to lapse is the first element.
    holds: BTreeSet<(Timestamp, BookingId)>,
    /// Confirmed bookings by the time they become completed.
    completions: BTreeSet<(Timestamp, BookingId)>,
    /// Active waitlist entries by id, and the FIFO queue of the waiting ones.
    entries: HashMap<WaitlistEntryId, WaitlistEntry>,
    queue: BTreeMap<i64, WaitlistEntryId>,
    next_position: i64,
    idempotency: HashMap<(String, String), IdempotencyRecord>,
    idempotency_order: VecDeque<(Timestamp, String, String)>,
    counters: Counters,
    changes: Vec<Change>,
    /// Feed bookings the store holds but memory does not (cancelled or finished, then
    /// evicted), complete for nights from `feed_known_from` on. A booking event naming none of
    /// them, for such a night, is new: the shell need not ask the store (see `feed_lookups`).
    feed_gone: HashSet<BookingId>,
    feed_known_from: Date,
    /// Bookings that became inactive since the last `evict_inactive`, so eviction visits them
    /// and not every booking in memory.
    finished: Vec<BookingId>,
}

/// Resource-level facts for listings and the admin overview.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResourceStats {
    pub counters: Counters,
    pub waitlist_waiting: u64,
    pub waitlist_offered: u64,
}

fn secs(n: u32) -> SignedDuration {
    SignedDuration::from_secs(i64::from(n))
}

/// FNV-1a over the command's JSON: a stable fingerprint for idempotency (not security).
fn fingerprint(cmd: &Command) -> String {
    let json = serde_json::to_string(cmd).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in json.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Confirmed and completed bookings are "booked" in the dashboard (see `stats.rs`).
fn counts_as_booked(s: BookingStatus) -> bool {
    matches!(s, BookingStatus::Confirmed | BookingStatus::Completed)
}

/// The payment reference recorded when a resource's owner confirms without naming one.
pub const ON_SITE_PAYMENT_REF: &str = "on_site";

/// Who may turn a booking of this price into a confirmed one. A client confirms only what is
/// free; a price is settled by a succeeded payment (the payment webhook confirms as `System`),
/// by an admin (force-confirm), or by the resource's owner recording a payment taken on site.
/// Every face (HTTP, Telegram, the feed) reaches confirmation through here, so none can skip it.
fn may_confirm(by: Requester, amount: &Money) -> Result<(), DomainError> {
    match by {
        Requester::Client(_) if amount.amount_minor > 0 => Err(DomainError::PaymentRequired),
        _ => Ok(()),
    }
}

/// What the history says about a confirmation, so a person reading it knows how it was settled.
fn confirm_reason(by: Requester, late: bool) -> &'static str {
    match (by, late) {
        (Requester::Owner(_), false) => "payment taken on site, confirmed by the owner",
        (Requester::Owner(_), true) => "late confirmation after the hold expired: payment taken on site by the owner",
        (Requester::Admin(_), false) => "force-confirmed by an admin",
        (Requester::Admin(_), true) => "late confirmation after the hold expired, forced by an admin",
        (_, false) => "confirmed",
        (_, true) => "late confirmation after the hold expired",
    }
}

fn check_text(field: &str, s: &str, max: usize) -> Result<(), DomainError> {
    if s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(DomainError::validation(field, format!("at most {max} characters, no control characters")));
    }
    Ok(())
}

impl ResourceState {
    /// A new resource. The returned state carries the `Spec` change to persist.
    pub fn create(id: ResourceId, spec: ResourceSpec) -> Result<ResourceState, DomainError> {
        spec.validate_common()?;
        let kind = Kind::build(&spec.kind)?;
        let mut s = ResourceState::empty(id, &spec, kind);
        s.changes.push(Change::Spec(Box::new(spec)));
        Ok(s)
    }

    /// Rebuilds the state from what the store holds: the specification, the active bookings
    /// (plus any others it chose to load) and the active waitlist entries. Lapsed holds are
    /// expired by the first `apply` after this, with the clock of that moment.
    pub fn restore(
        id: ResourceId,
        spec: ResourceSpec,
        bookings: Vec<Booking>,
        waitlist: Vec<WaitlistEntry>,
        idempotency: Vec<IdempotencyRecord>,
    ) -> Result<ResourceState, SpecError> {
        let kind = Kind::build(&spec.kind)?;
        let mut s = ResourceState::empty(id, &spec, kind);
        // What the store holds beyond the active bookings is unknown until the shell passes
        // it (`remember_feed_gone`): until then every replay candidate is looked up.
        s.feed_known_from = Date::MAX;
        for b in bookings {
            s.index_in(&b);
            if b.status.is_active() {
                s.kind.inv_mut().take(b.id, &b.item);
            } else {
                s.finished.push(b.id);
            }
            s.bookings.insert(b.id, b);
        }
        // Positions are never reused (the store keeps them unique per resource), so the next one
        // follows every entry given, finished ones included: the store passes the newest one.
        s.next_position = waitlist.iter().map(|e| e.position + 1).max().unwrap_or(1).max(1);
        for e in waitlist.into_iter().filter(|e| e.status.is_active()) {
            if e.status == WaitlistStatus::Waiting {
                s.queue.insert(e.position, e.id);
            }
            s.entries.insert(e.id, e);
        }
        let mut idempotency = idempotency;
        idempotency.sort_by_key(|r| r.at);
        for r in idempotency {
            s.idempotency_order.push_back((r.at, r.scope.clone(), r.key.clone()));
            s.idempotency.insert((r.scope.clone(), r.key.clone()), r);
        }
        Ok(s)
    }

    fn empty(id: ResourceId, spec: &ResourceSpec, kind: Kind) -> ResourceState {
        ResourceState {
            id,
            name: spec.name.clone(),
            owner_id: spec.owner_id,
            reference: spec.reference.clone(),
            hold_ttl_secs: spec.hold_ttl_secs,
            offer_ttl_secs: spec.offer_ttl_secs,
            kind,
            bookings: HashMap::new(),
            holds: BTreeSet::new(),
            completions: BTreeSet::new(),
            entries: HashMap::new(),
            queue: BTreeMap::new(),
            next_position: 1,
            idempotency: HashMap::new(),
            idempotency_order: VecDeque::new(),
            counters: Counters::default(),
            changes: Vec::new(),
            feed_gone: HashSet::new(),
            // A new resource has no stored bookings: nothing to look up.
            feed_known_from: Date::MIN,
            finished: Vec::new(),
        }
    }

    // ---- reading ------------------------------------------------------------------------

    pub fn id(&self) -> ResourceId {
        self.id
    }
    pub fn kind(&self) -> &Kind {
        &self.kind
    }
    pub fn owner_id(&self) -> UserId {
        self.owner_id
    }
    pub fn spec(&self) -> ResourceSpec {
        ResourceSpec {
            name: self.name.clone(),
            owner_id: self.owner_id,
            reference: self.reference.clone(),
            hold_ttl_secs: self.hold_ttl_secs,
            offer_ttl_secs: self.offer_ttl_secs,
            kind: self.kind.spec(),
        }
    }
    pub fn booking(&self, id: BookingId) -> Option<&Booking> {
        self.bookings.get(&id)
    }
    pub fn bookings(&self) -> impl Iterator<Item = &Booking> {
        self.bookings.values()
    }
    pub fn waitlist_entry(&self, id: WaitlistEntryId) -> Option<&WaitlistEntry> {
        self.entries.get(&id)
    }
    /// Active entries in queue order (offered ones first, by position).
    pub fn waitlist(&self) -> Vec<&WaitlistEntry> {
        let mut v: Vec<&WaitlistEntry> = self.entries.values().collect();
        v.sort_by_key(|e| e.position);
        v
    }
    pub fn counters(&self) -> Counters {
        self.counters
    }
    pub fn stats(&self) -> ResourceStats {
        let offered = self.entries.values().filter(|e| e.status == WaitlistStatus::Offered).count() as u64;
        ResourceStats { counters: self.counters, waitlist_waiting: self.queue.len() as u64, waitlist_offered: offered }
    }
    pub fn event_availability(&self) -> Option<EventAvailability> {
        match &self.kind {
            Kind::Event(e) => Some(e.availability()),
            _ => None,
        }
    }
    pub fn hotel_availability(
        &self,
        check_in: Date,
        check_out: Date,
        guests: Option<u16>,
        now: Timestamp,
    ) -> Result<Vec<RoomTypeAvailability>, DomainError> {
        match &self.kind {
            Kind::Hotel(h) => h.availability(check_in, check_out, guests, now),
            k => Err(DomainError::WrongResourceKind { kind: k.kind().as_str().into() }),
        }
    }
    pub fn provider_free_slots(&self, date: Date, now: Timestamp) -> Result<Vec<Slot>, DomainError> {
        match &self.kind {
            Kind::Provider(p) => Ok(p.free_slots(date, now)),
            k => Err(DomainError::WrongResourceKind { kind: k.kind().as_str().into() }),
        }
    }

    /// The next moment something lapses by itself (a hold, an offer, a completion).
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let h = self.holds.first().map(|(t, _)| *t);
        let c = self.completions.first().map(|(t, _)| *t);
        match (h, c) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Changes decided since the last call, in the order they must be written.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    /// Drops finished bookings from memory once their last change is durable: they no longer
    /// constrain capacity, and the shell reloads one from the store if a command names it.
    pub fn evict_inactive(&mut self) {
        for id in std::mem::take(&mut self.finished) {
            // Still inactive (a late confirmation may have revived it)?
            if self.bookings.get(&id).is_some_and(|b| !b.status.is_active())
                && let Some(b) = self.bookings.remove(&id)
                && is_feed_booking(&b)
            {
                self.feed_gone.insert(id);
            }
        }
    }

    /// What the store said at load: the ids of this resource's feed bookings that are not
    /// active, complete for nights from `known_from` on.
    pub fn remember_feed_gone(&mut self, known_from: Date, ids: impl IntoIterator<Item = BookingId>) {
        self.feed_gone.extend(ids);
        self.feed_known_from = known_from;
    }

    /// The bookings an `Ingest` names that the shell must fetch from the store before deciding
    /// it, so that a replayed event finds its booking instead of creating it again: those not
    /// in memory that the store holds or may hold.
    pub fn feed_lookups(&self, cmd: &Command) -> Vec<BookingId> {
        let Command::Ingest { events, .. } = cmd else { return Vec::new() };
        events
            .iter()
            .filter(|e| e.action == IngestAction::Book && !self.bookings.contains_key(&e.booking_id))
            .filter(|e| e.night < self.feed_known_from || self.feed_gone.contains(&e.booking_id))
            .map(|e| e.booking_id)
            .collect()
    }

    /// Puts back a finished booking the shell loaded from the store for a command about it.
    pub fn admit_inactive(&mut self, b: Booking) {
        if !b.status.is_active() && b.resource_id == self.id && !self.bookings.contains_key(&b.id) {
            self.finished.push(b.id);
            self.bookings.insert(b.id, b);
        }
    }

    // ---- deciding -----------------------------------------------------------------------

    /// Decides one command at `now`. With an idempotency key, a repeated command returns its
    /// first result without deciding again; the same key with another command is refused.
    pub fn apply(
        &mut self,
        cmd: Command,
        idempotency_key: Option<&str>,
        now: Timestamp,
    ) -> Result<Outcome, DomainError> {
        let expired_completed = self.expire_due(now);
        if let Command::Tick = cmd {
            self.prune_idempotency(now);
            return Ok(Outcome::Ticked { expired: expired_completed.0, completed: expired_completed.1 });
        }
        let Some(key) = idempotency_key else {
            return self.decide(cmd, None, now);
        };
        check_text("idempotency_key", key, MAX_KEY_CHARS)?;
        let scope = cmd.requester().as_label();
        let print = fingerprint(&cmd);
        if let Some(rec) = self.idempotency.get(&(scope.clone(), key.to_owned())) {
            return if rec.fingerprint == print { rec.result.clone() } else { Err(DomainError::IdempotencyKeyReused) };
        }
        let result = self.decide(cmd, Some(key), now);
        let rec = IdempotencyRecord {
            scope: scope.clone(),
            key: key.to_owned(),
            fingerprint: print,
            result: result.clone(),
            at: now,
        };
        self.idempotency_order.push_back((now, scope.clone(), key.to_owned()));
        self.idempotency.insert((scope, key.to_owned()), rec.clone());
        self.changes.push(Change::Idempotency(Box::new(rec)));
        result
    }

    fn decide(&mut self, cmd: Command, key: Option<&str>, now: Timestamp) -> Result<Outcome, DomainError> {
        // The role rule, before anything about the request: whatever face sent it.
        if let Some(action) = cmd.customer_action()
            && !cmd.requester().may_book()
        {
            return Err(DomainError::Forbidden { detail: format!("an owner cannot {action}") });
        }
        match cmd {
            Command::Hold { booking_id, user_id, request, confirm, by } => {
                self.hold(booking_id, user_id, request, confirm, by, key, now)
            }
            Command::Confirm { booking_id, payment_ref, by } => self.confirm(booking_id, payment_ref, by, now),
            Command::Release { booking_id, by } => self.release(booking_id, by, now),
            Command::Cancel { booking_id, reason, by } => self.cancel(booking_id, reason, by, now),
            Command::RecordRefund { booking_id, amount_minor, by } => self.refund(booking_id, amount_minor, by, now),
            Command::Reschedule { booking_id, request, by } => self.reschedule(booking_id, request, by, now),
            Command::JoinWaitlist { entry_id, user_id, wish, by } => self.join(entry_id, user_id, wish, by, now),
            Command::LeaveWaitlist { entry_id, by } => self.leave(entry_id, by, now),
            Command::AcceptOffer { entry_id, payment_ref, by } => self.accept(entry_id, payment_ref, by, now),
            Command::DeclineOffer { entry_id, by } => self.decline(entry_id, by, now),
            Command::UpdateSpec { spec, by } => self.update_spec(spec, by, now),
            Command::Ingest { events, by } => self.ingest(events, by, now),
            Command::Tick => Ok(Outcome::Ticked { expired: 0, completed: 0 }),
        }
    }

    // The command's own fields plus the key and the clock: bundling them would only rename them.
    #[allow(clippy::too_many_arguments)]
    fn hold(
        &mut self,
        booking_id: BookingId,
        user_id: UserId,
        request: BookingRequest,
        confirm: bool,
        by: Requester,
        key: Option<&str>,
        now: Timestamp,
    ) -> Result<Outcome, DomainError> {
        if !by.may_act_for(user_id) {
            return Err(DomainError::validation("user_id", "a client can only book for themselves"));
        }
        // An offer's booking takes its entry's id, so a waiting entry's id is taken too.
        if self.bookings.contains_key(&booking_id) || self.entries.contains_key(&WaitlistEntryId(booking_id.0)) {
            return Err(DomainError::validation("booking_id", "already used"));
        }
        if self.active_bookings() >= MAX_ACTIVE_BOOKINGS as u64 {
            return Err(DomainError::TooManyActiveBookings);
        }
        let Placement { item, amount } = self.kind.inv().place(&request, now)?;
        if confirm {
            may_confirm(by, &amount)?;
        }
        let (status, expires) = if confirm {
            (BookingStatus::Confirmed, None)
        } else {
            (BookingStatus::Held, Some(now + secs(self.hold_ttl_secs)))
        };
        let booking = Booking {
            id: booking_id,
            resource_id: self.id,
            user_id,
            item,
            status,
            amount,
            hold_expires_at: expires,
            payment_ref: None,
            refunded_minor: 0,
            waitlist_entry_id: None,
            idempotency_key: key.map(str::to_owned),
            created_at: now,
            updated_at: now,
        };
        let reason = if confirm { "booked" } else { "held" };
        self.insert_booking(booking, by, reason, now);
        let kind = if confirm { NotificationKind::Confirmed } else { NotificationKind::HoldCreated };
        self.notify(kind, user_id, Some(booking_id), None, now);
        Ok(self.booking_outcome(booking_id))
    }

    /// The booking named by a command, if the requester may see it (else "not found", so
    /// that other people's bookings do not leak their existence).
    fn visible(&self, id: BookingId, by: Requester) -> Result<&Booking, DomainError> {
        match self.bookings.get(&id) {
            Some(b) if by.may_act_for(b.user_id) => Ok(b),
            _ => Err(DomainError::BookingNotFound),
        }
    }

    fn confirm(
        &mut self,
        id: BookingId,
        payment_ref: Option<String>,
        by: Requester,
        now: Timestamp,
    ) -> Result<Outcome, DomainError> {
        if let Some(p) = &payment_ref {
            check_text("payment_ref", p, MAX_KEY_CHARS)?;
        }
        let b = self.visible(id, by)?;
        if matches!(b.status, BookingStatus::Held | BookingStatus::Expired) {
            may_confirm(by, &b.amount)?;
        }
        // The owner confirming records a payment taken on site, whatever reference is given.
        let payment_ref = match by {
            Requester::Owner(_) => Some(payment_ref.unwrap_or_else(|| ON_SITE_PAYMENT_REF.to_owned())),
            _ => payment_ref,
        };
        match b.status {
            BookingStatus::Held => {
                let entry = b.waitlist_entry_id;
                self.set_payment(id, payment_ref);
                self.set_status(id, BookingStatus::Confirmed, by, confirm_reason(by, false), now);
                if let Some(e) = entry {
                    self.finish_entry(e, WaitlistStatus::Accepted, now);
                }
            }
            // An offer that lapsed was passed on: accepting it late is not a late payment.
            BookingStatus::Expired if b.waitlist_entry_id.is_some() => return Err(DomainError::OfferExpired),
            BookingStatus::Expired => {
                // Late payment: re-take the same capacity only if nobody holds it now.
                let Some(item) = self.kind.inv().retake(&b.item) else {
                    return Err(DomainError::HoldExpiredCapacityGone);
                };
                if let Some(bm) = self.bookings.get_mut(&id) {
                    bm.item = item;
                }
                self.set_payment(id, payment_ref);
                self.set_status(id, BookingStatus::Confirmed, by, confirm_reason(by, true), now);
            }
            BookingStatus::Confirmed => return Err(DomainError::AlreadyConfirmed),
            BookingStatus::Cancelled => return Err(DomainError::AlreadyCancelled),
            s => return Err(DomainError::InvalidTransition { status: s, action: "confirmed".into() }),
        }
        let user = self.bookings.get(&id).map(|b| b.user_id);
        if let Some(u) = user {
            self.notify(NotificationKind::Confirmed, u, Some(id), None, now);
        }
        Ok(self.booking_outcome(id))
    }

    fn release(&mut self, id: BookingId, by: Requester, now: Timestamp) -> Result<Outcome, DomainError> {
        let b = self.visible(id, by)?;
        match b.status {
            BookingStatus::Held => {}
            BookingStatus::Expired => return Err(DomainError::HoldExpired),
            BookingStatus::Confirmed => {
                return Err(DomainError::InvalidTransition {
                    status: b.status,
                    action: "released (cancel it instead)".into(),
                });
            }
            BookingStatus::Cancelled => return Err(DomainError::AlreadyCancelled),
            s => return Err(DomainError::InvalidTransition { status: s, action: "released".into() }),
        }
        let (user, entry) = (b.user_id, b.waitlist_entry_id);
        self.set_status(id, BookingStatus::Released, by, "released by request", now);
        if let Some(e) = entry {
            self.finish_entry(e, WaitlistStatus::Declined, now);
        }
        self.notify(NotificationKind::Released, user, Some(id), None, now);
        self.offer_freed(now);
        Ok(self.booking_outcome(id))
    }

    fn cancel(&mut self, id: BookingId, reason: String, by: Requester, now: Timestamp) -> Result<Outcome, DomainError> {
        check_text("reason", &reason, MAX_REASON_CHARS)?;
        let b = self.visible(id, by)?;
        let to = match b.status {
            BookingStatus::Confirmed => BookingStatus::Cancelled,
            // Cancelling a hold is letting it go.
            BookingStatus::Held => BookingStatus::Released,
            BookingStatus::Cancelled => return Err(DomainError::AlreadyCancelled),
            BookingStatus::Expired => return Err(DomainError::HoldExpired),
            s => return Err(DomainError::InvalidTransition { status: s, action: "cancelled".into() }),
        };
        let (user, entry) = (b.user_id, b.waitlist_entry_id);
        let why = if reason.trim().is_empty() { "cancelled".to_owned() } else { reason };
        self.set_status(id, to, by, &why, now);
        if let Some(e) = entry {
            self.finish_entry(e, WaitlistStatus::Declined, now);
        }
        let kind =
            if to == BookingStatus::Cancelled { NotificationKind::Cancelled } else { NotificationKind::Released };
        self.notify(kind, user, Some(id), None, now);
        self.offer_freed(now);
        Ok(self.booking_outcome(id))
    }

    fn refund(
        &mut self,
        id: BookingId,
        amount_minor: i64,
        by: Requester,
        now: Timestamp,
    ) -> Result<Outcome, DomainError> {
        if matches!(by, Requester::Client(_)) {
            return Err(DomainError::validation("by", "refunds are recorded by the payment system or an admin"));
        }
        if amount_minor <= 0 {
            return Err(DomainError::validation("amount_minor", "must be positive"));
        }
        let b = self.visible(id, by)?;
        if b.status != BookingStatus::Cancelled || b.payment_ref.is_none() {
            return Err(DomainError::NotRefundable);
        }
        if amount_minor > b.amount.amount_minor - b.refunded_minor {
            return Err(DomainError::RefundTooLarge);
        }
        let user = b.user_id;
        if let Some(bm) = self.bookings.get_mut(&id) {
            bm.refunded_minor += amount_minor;
            bm.updated_at = now;
            self.changes.push(Change::Booking(bm.clone()));
        }
        self.changes.push(Change::History(Transition {
            booking_id: id,
            from: Some(BookingStatus::Cancelled),
            to: BookingStatus::Cancelled,
            at: now,
            by,
            reason: format!("refund of {amount_minor} recorded"),
        }));
        self.notify(NotificationKind::Refunded, user, Some(id), None, now);
        Ok(self.booking_outcome(id))
    }

    fn reschedule(
        &mut self,
        id: BookingId,
        request: BookingRequest,
        by: Requester,
        now: Timestamp,
    ) -> Result<Outcome, DomainError> {
        let b = self.visible(id, by)?;
        if !b.status.is_active() {
            return Err(match b.status {
                BookingStatus::Cancelled => DomainError::AlreadyCancelled,
                BookingStatus::Expired => DomainError::HoldExpired,
                s => DomainError::InvalidTransition { status: s, action: "rescheduled".into() },
            });
        }
        let (old_item, status, user) = (b.item.clone(), b.status, b.user_id);
        // Free the old place only tentatively, so the new one may overlap it (moving by one slot).
        self.kind.inv_mut().free(id, &old_item);
        let placed = self.kind.inv().place(&request, now);
        let Placement { item, amount } = match placed {
            Ok(p) => p,
            Err(e) => {
                self.kind.inv_mut().take(id, &old_item);
                return Err(e);
            }
        };
        self.kind.inv_mut().take(id, &item);
        let old_units = self.kind.inv().units(&old_item);
        let new_units = self.kind.inv().units(&item);
        let before = self.bookings.get(&id).cloned().filter(|_| status == BookingStatus::Confirmed);
        if let Some(bm) = self.bookings.get_mut(&id) {
            // Re-index under the new item: completion time and unit counts may change.
            self.completions.remove(&(self.kind.inv().ends_at(&old_item), id));
            bm.item = item;
            bm.amount = amount;
            bm.updated_at = now;
            if status == BookingStatus::Confirmed {
                self.completions.insert((self.kind.inv().ends_at(&bm.item), id));
                self.counters.confirmed_units = self.counters.confirmed_units - old_units + new_units;
            } else {
                self.counters.held_units = self.counters.held_units - old_units + new_units;
            }
            self.changes.push(Change::Booking(bm.clone()));
        }
        self.changes.push(Change::History(Transition {
            booking_id: id,
            from: Some(status),
            to: status,
            at: now,
            by,
            reason: "rescheduled".into(),
        }));
        if let (Some(old), Some(new)) = (before, self.bookings.get(&id).cloned()) {
            // The dashboard moves the booking from its old days to its new ones.
            self.tally(&old, -1, false);
            self.tally(&new, 1, false);
        }
        self.notify(NotificationKind::Rescheduled, user, Some(id), None, now);
        self.offer_freed(now);
        Ok(self.booking_outcome(id))
    }

    fn join(
        &mut self,
        entry_id: WaitlistEntryId,
        user_id: UserId,
        wish: Wish,
        by: Requester,
        now: Timestamp,
    ) -> Result<Outcome, DomainError> {
        if !by.may_act_for(user_id) {
            return Err(DomainError::validation("user_id", "a client can only join a waitlist for themselves"));
        }
        if self.entries.contains_key(&entry_id) || self.bookings.contains_key(&BookingId(entry_id.0)) {
            return Err(DomainError::validation("entry_id", "already used"));
        }
        self.kind.inv().check_wish(&wish, now)?;
        if self.entries.values().any(|e| e.user_id == user_id && e.wish == wish) {
            return Err(DomainError::AlreadyOnWaitlist);
        }
        if self.kind.inv().place_wish(&wish, now).is_ok() {
            return Err(DomainError::AvailableNow);
        }
        if self.entries.len() >= MAX_ACTIVE_ENTRIES {
            return Err(DomainError::WaitlistFull);
        }
        let entry = WaitlistEntry {
            id: entry_id,
            resource_id: self.id,
            user_id,
            wish,
            status: WaitlistStatus::Waiting,
            position: self.next_position,
            offer_booking_id: None,
            offer_expires_at: None,
            joined_at: now,
            updated_at: now,
        };
        self.next_position += 1;
        self.queue.insert(entry.position, entry.id);
        self.changes.push(Change::Waitlist(entry.clone()));
        self.entries.insert(entry_id, entry.clone());
        Ok(Outcome::WaitlistEntry { entry })
    }

    fn visible_entry(&self, id: WaitlistEntryId, by: Requester) -> Result<&WaitlistEntry, DomainError> {
        match self.entries.get(&id) {
            Some(e) if by.may_act_for(e.user_id) => Ok(e),
            _ => Err(DomainError::WaitlistEntryNotFound),
        }
    }

    fn leave(&mut self, entry_id: WaitlistEntryId, by: Requester, now: Timestamp) -> Result<Outcome, DomainError> {
        let e = self.visible_entry(entry_id, by)?;
        if e.status == WaitlistStatus::Offered {
            // Leaving with an open offer is declining it.
            return self.decline(entry_id, by, now);
        }
        let entry = self.finish_entry(entry_id, WaitlistStatus::Left, now);
        entry.map(|entry| Outcome::WaitlistEntry { entry }).ok_or(DomainError::WaitlistEntryNotFound)
    }

    /// Why an entry that is no longer active cannot take an offer command: its offer booking
    /// (same id as the entry) tells what happened to it.
    fn finished_offer_error(&self, entry_id: WaitlistEntryId, by: Requester) -> DomainError {
        match self.bookings.get(&BookingId(entry_id.0)) {
            Some(b) if by.may_act_for(b.user_id) && b.waitlist_entry_id == Some(entry_id) => match b.status {
                BookingStatus::Expired => DomainError::OfferExpired,
                BookingStatus::Confirmed | BookingStatus::Completed => DomainError::AlreadyConfirmed,
                BookingStatus::Cancelled => DomainError::AlreadyCancelled,
                _ => DomainError::NoActiveOffer,
            },
            _ => DomainError::WaitlistEntryNotFound,
        }
    }

    fn accept(
        &mut self,
        entry_id: WaitlistEntryId,
        payment_ref: Option<String>,
        by: Requester,
        now: Timestamp,
    ) -> Result<Outcome, DomainError> {
        if !self.entries.contains_key(&entry_id) {
            return Err(self.finished_offer_error(entry_id, by));
        }
        let e = self.visible_entry(entry_id, by)?;
        let Some(booking_id) = e.offer_booking_id.filter(|_| e.status == WaitlistStatus::Offered) else {
            return Err(DomainError::NoActiveOffer);
        };
        let entry_before = e.clone();
        self.confirm(booking_id, payment_ref, by, now)?;
        let entry = WaitlistEntry { status: WaitlistStatus::Accepted, updated_at: now, ..entry_before };
        let booking = self.bookings.get(&booking_id).cloned().ok_or(DomainError::BookingNotFound)?;
        Ok(Outcome::OfferAccepted { entry, booking })
    }

    fn decline(&mut self, entry_id: WaitlistEntryId, by: Requester, now: Timestamp) -> Result<Outcome, DomainError> {
        if !self.entries.contains_key(&entry_id) {
            return Err(self.finished_offer_error(entry_id, by));
        }
        let e = self.visible_entry(entry_id, by)?;
        let Some(booking_id) = e.offer_booking_id.filter(|_| e.status == WaitlistStatus::Offered) else {
            return Err(DomainError::NoActiveOffer);
        };
        self.set_status(booking_id, BookingStatus::Released, by, "waitlist offer declined", now);
        let entry = self.finish_entry(entry_id, WaitlistStatus::Declined, now);
        self.offer_freed(now);
        entry.map(|entry| Outcome::WaitlistEntry { entry }).ok_or(DomainError::WaitlistEntryNotFound)
    }

    fn ingest(&mut self, events: Vec<IngestEvent>, by: Requester, now: Timestamp) -> Result<Outcome, DomainError> {
        if matches!(by, Requester::Client(_)) {
            return Err(DomainError::validation("by", "only the hotel's owner or an admin sends its feed"));
        }
        if !matches!(self.kind, Kind::Hotel(_)) {
            return Err(DomainError::WrongResourceKind { kind: self.kind.kind().as_str().into() });
        }
        if events.len() > MAX_INGEST_EVENTS {
            return Err(DomainError::validation("events", format!("at most {MAX_INGEST_EVENTS} events at once")));
        }
        for (i, e) in events.iter().enumerate() {
            if e.key.is_empty() || e.key.len() > 100 || !e.key.chars().all(|c| c.is_ascii_graphic()) {
                return Err(DomainError::validation(format!("events[{i}].key"), "1 to 100 visible ASCII characters"));
            }
        }
        let results = events.into_iter().map(|e| self.ingest_one(e, by, now)).collect();
        Ok(Outcome::Ingested { results })
    }

    /// One feed event. Refusals and cancellations are remembered under the event's key; a
    /// booking is found again by its id.
    fn ingest_one(&mut self, e: IngestEvent, by: Requester, now: Timestamp) -> IngestResult {
        let rec_key = (INGEST_SCOPE.to_owned(), e.key.clone());
        if let Some(rec) = self.idempotency.get(&rec_key) {
            return match (&rec.result, e.action) {
                (Ok(Outcome::Ingested { results }), _) if results.len() == 1 => results[0].clone(),
                // Records written before they held the event's own result (kept 24 hours).
                (Ok(Outcome::Booking { booking }), IngestAction::Cancel) => IngestResult::cancelled(booking.id),
                (Ok(Outcome::Booking { booking }), IngestAction::Book) => IngestResult::booked(booking.id),
                (Err(err), _) => IngestResult::rejected(err),
                (Ok(_), _) => IngestResult::rejected(&DomainError::BookingNotFound),
            };
        }
        if e.action == IngestAction::Book && self.bookings.contains_key(&e.booking_id) {
            return IngestResult::booked(e.booking_id);
        }
        let result = match e.action {
            IngestAction::Book => self.ingest_book(&e, now).or_else(|err| self.booked_by_key(&e).ok_or(err)),
            IngestAction::Cancel => self.ingest_cancel(&e, by, now),
        };
        let booked = result.is_ok() && e.action == IngestAction::Book;
        let item = match (result, e.action) {
            (Ok(Outcome::Booking { booking }), IngestAction::Book) => IngestResult::booked(booking.id),
            (Ok(Outcome::Booking { booking }), IngestAction::Cancel) => IngestResult::cancelled(booking.id),
            (Err(err), _) => IngestResult::rejected(&err),
            (Ok(_), _) => IngestResult::rejected(&DomainError::BookingNotFound),
        };
        // A booking is its own record (found again by id). Anything else keeps just the
        // event's result: a cancellation's record is written for every cancelled night, so
        // it holds an id, not the whole booking (a quarter of the bytes the store parses).
        if !booked {
            let rec = IdempotencyRecord {
                scope: INGEST_SCOPE.to_owned(),
                key: e.key.clone(),
                fingerprint: INGEST_SCOPE.to_owned(),
                result: Ok(Outcome::Ingested { results: vec![item.clone()] }),
                at: now,
            };
            self.idempotency_order.push_back((now, rec_key.0.clone(), rec_key.1.clone()));
            self.idempotency.insert(rec_key, rec.clone());
            self.changes.push(Change::Idempotency(Box::new(rec)));
        }
        item
    }

    /// A one-night stay in the named room, confirmed at once, for the hotel's owner (the
    /// guest is the channel's customer, not one of our users: no notification is written).
    fn ingest_book(&mut self, e: &IngestEvent, now: Timestamp) -> Result<Outcome, DomainError> {
        let Kind::Hotel(h) = &self.kind else { return Err(DomainError::WrongResourceKind { kind: "hotel".into() }) };
        let (room_id, room_type_id) = h
            .resolve_room(&e.room)
            .map(|r| (r.id, r.room_type_id))
            .ok_or_else(|| DomainError::validation("room_id", "no such room in this hotel"))?;
        if self.active_bookings() >= MAX_ACTIVE_BOOKINGS as u64 {
            return Err(DomainError::TooManyActiveBookings);
        }
        let check_out = e.night.tomorrow().map_err(|_| DomainError::validation("night_of_stay", "out of range"))?;
        let request =
            BookingRequest::Stay { room_type_id, room_id: Some(room_id), check_in: e.night, check_out, guests: 1 };
        let Placement { item, amount } = self.kind.inv().place(&request, now)?;
        let booking = Booking {
            id: e.booking_id,
            resource_id: self.id,
            user_id: self.owner_id,
            item,
            status: BookingStatus::Confirmed,
            amount,
            hold_expires_at: None,
            payment_ref: None,
            refunded_minor: 0,
            waitlist_entry_id: None,
            idempotency_key: Some(format!("{INGEST_KEY_PREFIX}{}", e.key)),
            created_at: now,
            updated_at: now,
        };
        self.insert_booking(booking, Requester::Owner(self.owner_id), "booked by the channel feed", now);
        Ok(self.booking_outcome(e.booking_id))
    }

    /// The stay on the event's room and night, if the feed made it from this very event (its
    /// key): a replay whose booking id was derived differently (before ids carried the event's
    /// instant) still answers the first result instead of "taken".
    fn booked_by_key(&self, e: &IngestEvent) -> Option<Outcome> {
        let Kind::Hotel(h) = &self.kind else { return None };
        let id = h.stay_on(h.resolve_room(&e.room)?.id, e.night)?;
        let b = self.bookings.get(&id)?;
        let key = b.idempotency_key.as_deref()?.strip_prefix(INGEST_KEY_PREFIX)?;
        (key == e.key && b.status.is_active()).then(|| self.booking_outcome(id))
    }

    /// Cancels the feed's one-night stay on that room and night; a stay booked any other way
    /// (a client's, a longer one) is not the feed's to cancel: "not found".
    fn ingest_cancel(&mut self, e: &IngestEvent, by: Requester, now: Timestamp) -> Result<Outcome, DomainError> {
        let Kind::Hotel(h) = &self.kind else { return Err(DomainError::WrongResourceKind { kind: "hotel".into() }) };
        let room_id = h
            .resolve_room(&e.room)
            .map(|r| r.id)
            .ok_or_else(|| DomainError::validation("room_id", "no such room in this hotel"))?;
        let id = h.stay_on(room_id, e.night).ok_or(DomainError::BookingNotFound)?;
        let b = self.bookings.get(&id).ok_or(DomainError::BookingNotFound)?;
        let from_feed = b.user_id == self.owner_id
            && is_feed_booking(b)
            && matches!(b.item, BookingItem::Stay { check_in, .. } if check_in == e.night)
            && b.status == BookingStatus::Confirmed;
        if !from_feed {
            return Err(DomainError::BookingNotFound);
        }
        self.set_status(id, BookingStatus::Cancelled, by, "cancelled by the channel feed", now);
        self.offer_freed(now);
        Ok(self.booking_outcome(id))
    }

    fn update_spec(&mut self, spec: ResourceSpec, by: Requester, now: Timestamp) -> Result<Outcome, DomainError> {
        if matches!(by, Requester::Client(_)) {
            return Err(DomainError::validation("by", "clients cannot change resources"));
        }
        spec.validate_common()?;
        if spec.owner_id != self.owner_id && !matches!(by, Requester::Admin(_) | Requester::System) {
            return Err(DomainError::validation("owner_id", "only an admin can hand a resource to another owner"));
        }
        self.kind.respec(spec.kind.clone())?;
        self.name = spec.name.clone();
        self.owner_id = spec.owner_id;
        self.reference = spec.reference.clone();
        self.hold_ttl_secs = spec.hold_ttl_secs;
        self.offer_ttl_secs = spec.offer_ttl_secs;
        self.changes.push(Change::Spec(Box::new(spec)));
        // More capacity may now fit waiting clients.
        self.offer_freed(now);
        Ok(Outcome::SpecUpdated)
    }

    /// Lapses what is due at `now`: holds and offers expire (capacity freed, then offered to
    /// the waitlist), confirmed bookings whose end passed complete.
    fn expire_due(&mut self, now: Timestamp) -> (u32, u32) {
        let mut expired = 0u32;
        while let Some(&(at, id)) = self.holds.first() {
            if at > now {
                break;
            }
            let entry = self.bookings.get(&id).and_then(|b| b.waitlist_entry_id);
            let user = self.bookings.get(&id).map(|b| b.user_id);
            self.set_status(id, BookingStatus::Expired, Requester::System, "hold expired", at);
            expired += 1;
            match (entry, user) {
                (Some(e), Some(u)) => {
                    self.finish_entry(e, WaitlistStatus::OfferExpired, now);
                    self.notify(NotificationKind::OfferExpired, u, Some(id), Some(e), now);
                }
                (None, Some(u)) => self.notify(NotificationKind::Expired, u, Some(id), None, now),
                _ => {}
            }
        }
        let mut completed = 0u32;
        while let Some(&(at, id)) = self.completions.first() {
            if at > now {
                break;
            }
            self.set_status(id, BookingStatus::Completed, Requester::System, "ended", at);
            completed += 1;
        }
        if expired > 0 || completed > 0 {
            // A completion can free capacity too (an appointment's buffer, say).
            self.offer_freed(now);
        }
        (expired, completed)
    }

    /// Offers freed capacity to waiting entries in FIFO order: each entry whose wish fits now
    /// gets a hold (the offer) for the offer TTL. Offers are ordinary holds placed through the
    /// inventory, so they can never promise more than is free.
    fn offer_freed(&mut self, now: Timestamp) {
        let waiting: Vec<(i64, WaitlistEntryId)> = self.queue.iter().map(|(p, e)| (*p, *e)).collect();
        for (pos, entry_id) in waiting {
            let Some(entry) = self.entries.get(&entry_id) else {
                self.queue.remove(&pos);
                continue;
            };
            let Ok(Placement { item, amount }) = self.kind.inv().place_wish(&entry.wish, now) else {
                continue;
            };
            let booking_id = BookingId(entry_id.0);
            if self.bookings.contains_key(&booking_id) {
                // Cannot happen (an entry is offered once); skip rather than reuse an id.
                continue;
            }
            let user = entry.user_id;
            let expires = now + secs(self.offer_ttl_secs);
            let booking = Booking {
                id: booking_id,
                resource_id: self.id,
                user_id: user,
                item,
                status: BookingStatus::Held,
                amount,
                hold_expires_at: Some(expires),
                payment_ref: None,
                refunded_minor: 0,
                waitlist_entry_id: Some(entry_id),
                idempotency_key: None,
                created_at: now,
                updated_at: now,
            };
            self.insert_booking(booking, Requester::System, "waitlist offer", now);
            self.queue.remove(&pos);
            if let Some(e) = self.entries.get_mut(&entry_id) {
                e.status = WaitlistStatus::Offered;
                e.offer_booking_id = Some(booking_id);
                e.offer_expires_at = Some(expires);
                e.updated_at = now;
                self.changes.push(Change::Waitlist(e.clone()));
            }
            self.notify(NotificationKind::OfferMade, user, Some(booking_id), Some(entry_id), now);
        }
    }

    /// Ends an entry's life (accepted, declined, offer expired, left): out of memory, one
    /// last row for the store.
    fn finish_entry(&mut self, id: WaitlistEntryId, status: WaitlistStatus, now: Timestamp) -> Option<WaitlistEntry> {
        let mut e = self.entries.remove(&id)?;
        self.queue.remove(&e.position);
        e.status = status;
        e.updated_at = now;
        self.changes.push(Change::Waitlist(e.clone()));
        Some(e)
    }

    fn prune_idempotency(&mut self, now: Timestamp) {
        let horizon = now - SignedDuration::from_secs(IDEMPOTENCY_RETENTION_SECS);
        while let Some((at, _, _)) = self.idempotency_order.front() {
            if *at > horizon {
                break;
            }
            if let Some((_, scope, key)) = self.idempotency_order.pop_front() {
                self.idempotency.remove(&(scope, key));
            }
        }
    }

    // ---- the only places where capacity moves --------------------------------------------

    fn insert_booking(&mut self, b: Booking, by: Requester, reason: &str, now: Timestamp) {
        if b.status.is_active() {
            self.kind.inv_mut().take(b.id, &b.item);
        }
        self.index_in(&b);
        self.changes.push(Change::Booking(b.clone()));
        self.changes.push(Change::History(Transition {
            booking_id: b.id,
            from: None,
            to: b.status,
            at: now,
            by,
            reason: reason.to_owned(),
        }));
        if counts_as_booked(b.status) {
            self.tally(&b, 1, false);
        }
        if !b.status.is_active() {
            self.finished.push(b.id);
        }
        self.bookings.insert(b.id, b);
    }

    fn set_status(&mut self, id: BookingId, to: BookingStatus, by: Requester, reason: &str, now: Timestamp) {
        let Some(mut b) = self.bookings.remove(&id) else { return };
        let from = b.status;
        self.index_out(&b);
        if from.is_active() && !to.is_active() {
            self.kind.inv_mut().free(id, &b.item);
        } else if !from.is_active() && to.is_active() {
            self.kind.inv_mut().take(id, &b.item);
        }
        b.status = to;
        if !to.is_active() {
            self.finished.push(id);
        }
        if to == BookingStatus::Confirmed {
            b.hold_expires_at = None;
        }
        b.updated_at = now;
        self.index_in(&b);
        self.changes.push(Change::Booking(b.clone()));
        self.changes.push(Change::History(Transition {
            booking_id: id,
            from: Some(from),
            to,
            at: now,
            by,
            reason: reason.to_owned(),
        }));
        // Dashboard counters follow, after the row and its history.
        match (counts_as_booked(from), counts_as_booked(to)) {
            (false, true) => self.tally(&b, 1, false),
            (true, false) => self.tally(&b, -1, to == BookingStatus::Cancelled),
            _ => {}
        }
        self.bookings.insert(id, b);
    }

    /// Dashboard counters for `b` entering (`sign` 1) or leaving (-1) "booked", and, with
    /// `cancelled`, entering the cancelled figures. The amount is spread over the days.
    fn tally(&mut self, b: &Booking, sign: i64, cancelled: bool) {
        let days = self.kind.inv().tally_days(&b.item, b.created_at);
        let n = days.len();
        for (i, d) in days.into_iter().enumerate() {
            let minor = share(b.amount.amount_minor, n, i);
            let mut t = DayStats::zero(d.day);
            t.booked_units = sign * d.units;
            t.booked_minutes = sign * d.minutes;
            t.booked_minor = sign * minor;
            if cancelled {
                t.cancelled_units = d.units;
                t.cancelled_minor = minor;
            }
            self.changes.push(Change::Tally(t));
        }
    }

    fn set_payment(&mut self, id: BookingId, payment_ref: Option<String>) {
        if let (Some(b), Some(p)) = (self.bookings.get_mut(&id), payment_ref) {
            b.payment_ref = Some(p);
        }
    }

    fn index_in(&mut self, b: &Booking) {
        let units = self.kind.inv().units(&b.item);
        match b.status {
            BookingStatus::Held => {
                // A held booking always has an expiry; a missing one (bad data) lapses at once.
                self.holds.insert((b.hold_expires_at.unwrap_or(b.updated_at), b.id));
                self.counters.held_bookings += 1;
                self.counters.held_units += units;
            }
            BookingStatus::Confirmed => {
                self.completions.insert((self.kind.inv().ends_at(&b.item), b.id));
                self.counters.confirmed_bookings += 1;
                self.counters.confirmed_units += units;
            }
            _ => {}
        }
    }

    fn index_out(&mut self, b: &Booking) {
        let units = self.kind.inv().units(&b.item);
        match b.status {
            BookingStatus::Held => {
                self.holds.remove(&(b.hold_expires_at.unwrap_or(b.updated_at), b.id));
                self.counters.held_bookings -= 1;
                self.counters.held_units -= units;
            }
            BookingStatus::Confirmed => {
                self.completions.remove(&(self.kind.inv().ends_at(&b.item), b.id));
                self.counters.confirmed_bookings -= 1;
                self.counters.confirmed_units -= units;
            }
            _ => {}
        }
    }

    fn notify(
        &mut self,
        kind: NotificationKind,
        user_id: UserId,
        booking_id: Option<BookingId>,
        entry_id: Option<WaitlistEntryId>,
        at: Timestamp,
    ) {
        self.changes.push(Change::Notify(Notification { kind, user_id, booking_id, entry_id, at }));
    }

    fn booking_outcome(&self, id: BookingId) -> Outcome {
        match self.bookings.get(&id) {
            Some(b) => Outcome::Booking { booking: b.clone() },
            None => Outcome::Ticked { expired: 0, completed: 0 },
        }
    }

    fn active_bookings(&self) -> u64 {
        self.counters.held_bookings + self.counters.confirmed_bookings
    }

    /// Every invariant the domain promises, checked from scratch. Used by the property tests
    /// and the simulation; returns the first violation found.
    pub fn check_invariants(&self) -> Result<(), String> {
        let active: Vec<(BookingId, &BookingItem)> =
            self.bookings.values().filter(|b| b.status.is_active()).map(|b| (b.id, &b.item)).collect();
        self.kind.inv().check_invariants(&active)?;
        let mut c = Counters::default();
        for b in self.bookings.values() {
            let u = self.kind.inv().units(&b.item);
            match b.status {
                BookingStatus::Held => {
                    c.held_bookings += 1;
                    c.held_units += u;
                    let exp = b.hold_expires_at.ok_or_else(|| format!("held booking {} has no expiry", b.id))?;
                    if !self.holds.contains(&(exp, b.id)) {
                        return Err(format!("held booking {} missing from the expiry index", b.id));
                    }
                }
                BookingStatus::Confirmed => {
                    c.confirmed_bookings += 1;
                    c.confirmed_units += u;
                }
                _ => {}
            }
        }
        if c != self.counters {
            return Err(format!("counters {:?} but bookings add up to {c:?}", self.counters));
        }
        if self.holds.len() as u64 != c.held_bookings {
            return Err("expiry index has entries for bookings that are not held".into());
        }
        for e in self.entries.values() {
            match e.status {
                WaitlistStatus::Waiting => {
                    if self.queue.get(&e.position) != Some(&e.id) {
                        return Err(format!("waiting entry {} not in the queue", e.id));
                    }
                }
                WaitlistStatus::Offered => {
                    let b = e.offer_booking_id.and_then(|id| self.bookings.get(&id));
                    match b {
                        Some(b) if b.status == BookingStatus::Held && b.waitlist_entry_id == Some(e.id) => {}
                        _ => return Err(format!("offered entry {} has no held offer booking", e.id)),
                    }
                }
                s => return Err(format!("entry {} is {s:?} but still active in memory", e.id)),
            }
        }
        if self.queue.len() != self.entries.values().filter(|e| e.status == WaitlistStatus::Waiting).count() {
            return Err("queue holds entries that are not waiting".into());
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
