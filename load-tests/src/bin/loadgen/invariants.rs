//! The promises, checked in PostgreSQL itself after a run: nothing oversold, no overlapping
//! stays or appointments, counters equal to the rows, every acknowledged booking present in
//! the state its response gave (or a state it may legally have moved on to since).

use std::collections::HashMap;
use tokio_postgres::Client;
use uuid::Uuid;

pub struct Check {
    pub name: &'static str,
    /// What broke, empty when the check passed.
    pub violations: Vec<String>,
}

/// Where a booking acknowledged in `acked` may be by now: a hold may have been confirmed,
/// released or expired; a confirmed booking cancelled or completed.
fn may_have_become(acked: &str, now: &str) -> bool {
    acked == now
        || matches!(
            (acked, now),
            ("held", "confirmed" | "released" | "expired" | "cancelled" | "completed")
                | ("confirmed", "cancelled" | "completed")
        )
}

pub async fn check_all(db: &Client, acked: &[(Uuid, String)]) -> Result<Vec<Check>, tokio_postgres::Error> {
    let mut out = Vec::new();
    let rows = db
        .query("SELECT resource_id::text, taken, capacity::bigint FROM events WHERE taken > capacity LIMIT 20", &[])
        .await?;
    out.push(Check {
        name: "no event oversold (events.taken <= capacity)",
        violations: rows
            .iter()
            .map(|r| {
                format!(
                    "event {}: taken {} > capacity {}",
                    r.get::<_, String>(0),
                    r.get::<_, i64>(1),
                    r.get::<_, i64>(2)
                )
            })
            .collect(),
    });
    let rows = db
        .query(
            "SELECT e.resource_id::text, e.taken, coalesce(sum(b.quantity), 0)::bigint
             FROM events e LEFT JOIN bookings b
               ON b.resource_id = e.resource_id AND b.status IN ('held', 'confirmed')
             GROUP BY e.resource_id, e.taken
             HAVING e.taken <> coalesce(sum(b.quantity), 0) LIMIT 20",
            &[],
        )
        .await?;
    out.push(Check {
        name: "events.taken equals the tickets of active bookings",
        violations: rows
            .iter()
            .map(|r| {
                format!(
                    "event {}: taken {} but active tickets {}",
                    r.get::<_, String>(0),
                    r.get::<_, i64>(1),
                    r.get::<_, i64>(2)
                )
            })
            .collect(),
    });
    out.push(overlaps(db, "no overlapping active stays on a room", "stay", "room_id", "check_in", "check_out").await?);
    out.push(
        overlaps(
            db,
            "no overlapping active appointments of a provider",
            "appointment",
            "resource_id",
            "starts_at",
            "ends_at",
        )
        .await?,
    );
    let rows = db
        .query(
            "SELECT r.id::text, r.held_bookings, coalesce(b.held, 0), r.confirmed_bookings, coalesce(b.confirmed, 0)
             FROM resources r LEFT JOIN (
                 SELECT resource_id, count(*) FILTER (WHERE status = 'held') AS held,
                        count(*) FILTER (WHERE status = 'confirmed') AS confirmed
                 FROM bookings GROUP BY resource_id) b ON b.resource_id = r.id
             WHERE r.held_bookings <> coalesce(b.held, 0) OR r.confirmed_bookings <> coalesce(b.confirmed, 0)
             LIMIT 20",
            &[],
        )
        .await?;
    out.push(Check {
        name: "held and confirmed counters equal the rows",
        violations: rows
            .iter()
            .map(|r| {
                format!(
                    "resource {}: held {} vs {} rows, confirmed {} vs {} rows",
                    r.get::<_, String>(0),
                    r.get::<_, i64>(1),
                    r.get::<_, i64>(2),
                    r.get::<_, i64>(3),
                    r.get::<_, i64>(4)
                )
            })
            .collect(),
    });
    let mut missing = Vec::new();
    for chunk in acked.chunks(10_000) {
        let ids: Vec<Uuid> = chunk.iter().map(|(id, _)| *id).collect();
        let rows = db.query("SELECT id, status FROM bookings WHERE id = ANY($1)", &[&ids]).await?;
        let found: HashMap<Uuid, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        for (id, said) in chunk {
            match found.get(id) {
                None => missing.push(format!("booking {id} was acknowledged ({said}) but is not in the database")),
                Some(now) if !may_have_become(said, now) => {
                    missing.push(format!("booking {id} was acknowledged as {said} but is {now}"))
                }
                Some(_) => {}
            }
        }
        if missing.len() > 20 {
            break;
        }
    }
    out.push(Check {
        name: "every acknowledged booking is present, in the state it was acknowledged in",
        violations: missing,
    });
    Ok(out)
}

/// Active bookings of `kind` that overlap an earlier one of the same `owner` (room or provider).
///
/// One sort instead of a self-join: in `owner`'s bookings ordered by start, one overlaps an
/// earlier one exactly when it starts before the latest end among those before it. The
/// self-join this replaces took minutes on 50,000 stays (it compared each stay with every
/// other of its room), which left a finished run waiting for its verdict.
async fn overlaps(
    db: &Client,
    name: &'static str,
    kind: &str,
    owner: &str,
    start: &str,
    end: &str,
) -> Result<Check, tokio_postgres::Error> {
    let sql = format!(
        "SELECT id::text, prev_id::text FROM (
             SELECT id, {start} AS s,
                    max({end}) OVER (PARTITION BY {owner} ORDER BY {start}, id
                                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS latest_end,
                    lag(id) OVER (PARTITION BY {owner} ORDER BY {start}, id) AS prev_id
             FROM bookings WHERE item_kind = $1 AND status IN ('held', 'confirmed')) t
         WHERE s < latest_end LIMIT 20"
    );
    let rows = db.query(&sql, &[&kind]).await?;
    Ok(Check {
        name,
        violations: rows
            .iter()
            .map(|r| {
                format!(
                    "{kind} {} overlaps an earlier one (the one before it: {})",
                    r.get::<_, String>(0),
                    r.get::<_, String>(1)
                )
            })
            .collect(),
    })
}

/// Prints each check and PASS or FAIL; true when all passed.
pub fn print(checks: &[Check], acked: usize) -> bool {
    println!("invariants (PostgreSQL, {acked} acknowledged bookings):");
    for c in checks {
        if c.violations.is_empty() {
            println!("  ok    {}", c.name);
        } else {
            println!("  FAIL  {}", c.name);
            for v in c.violations.iter().take(10) {
                println!("          {v}");
            }
        }
    }
    let pass = checks.iter().all(|c| c.violations.is_empty());
    println!("{}", if pass { "PASS" } else { "FAIL" });
    pass
}

#[cfg(test)]
mod tests {
    use super::may_have_become;

    #[test]
    fn acknowledged_states_move_only_forward() {
        assert!(may_have_become("confirmed", "confirmed"));
        assert!(may_have_become("held", "expired"));
        assert!(may_have_become("confirmed", "cancelled"));
        assert!(!may_have_become("confirmed", "held"));
        assert!(!may_have_become("confirmed", "expired"));
        assert!(!may_have_become("cancelled", "confirmed"));
    }
}
