//! Claiming runs: judging candidates by the file's clock and taking (or parking) them, all under
//! the write lock (each claim is one write of the writer's batch), so processes sharing the file
//! never claim the same run.

use rusqlite::{Connection, Row, params};

use super::query::{all, exec, one};
use crate::sql::{non_negative, workflows_json};
use crate::{Claim, ClaimOptions, Lease, StoreError, millis};

/// Runs a worker may claim, as [`Candidate`] rows: `Running` without a live owner, or `Waiting`
/// past their wake-up time. `?1` is now, `?2` the lease TTL in milliseconds.
macro_rules! claimable {
    () => {
        "SELECT r.run_id, (r.status = 'running' AND r.owner IS NOT NULL) AS recovered, \
                r.recoveries, r.created_at_ms, r.rowid AS rid \
         FROM runs r LEFT JOIN workers w ON w.worker_id = r.owner \
         WHERE ((r.status = 'running' AND (r.owner IS NULL OR w.heartbeat_at_ms IS NULL \
                                           OR ?1 - w.heartbeat_at_ms > ?2)) \
             OR (r.status = 'waiting' AND r.wake_at_ms <= ?1))"
    };
}

/// The file's clock now.
fn now(conn: &Connection) -> Result<i64, StoreError> {
    Ok(one(conn, concat!("SELECT ", now_ms!()), [], |row| row.get(0))?.unwrap_or_default())
}

/// Claims up to `options.limit` runs for `worker` (see [`Store::claim`](crate::Store::claim)).
pub(super) fn claim_many(
    conn: &Connection,
    worker: &str,
    options: &ClaimOptions,
) -> Result<Vec<Claim>, StoreError> {
    let mut claims = Vec::new();
    let workflows = workflows_json(&options.workflows);
    let now = now(conn)?;
    // Candidates come in pages after a cursor so that each is judged once, as the memory store
    // does, even when a run this worker just claimed still looks claimable (no heartbeat yet).
    let mut cursor = (i64::MIN, i64::MIN);
    while claims.len() < options.limit {
        let page = options.limit - claims.len();
        let candidates = all(
            conn,
            concat!(
                claimable!(),
                // The status term repeats the index's condition, so `runs_claim` can be used.
                " AND r.status IN ('running', 'waiting') \
                  AND (r.workflow, r.fingerprint) IN \
                    (SELECT json_extract(value, '$.name'), json_extract(value, '$.fingerprint') \
                     FROM json_each(?3)) \
                  AND (r.created_at_ms, r.rowid) > (?4, ?5) \
                  ORDER BY r.created_at_ms, r.rowid LIMIT ?6"
            ),
            params![
                now,
                millis(options.lease_ttl),
                workflows,
                cursor.0,
                cursor.1,
                i64::try_from(page).unwrap_or(i64::MAX)
            ],
            Candidate::read,
        )?;
        let found = candidates.len();
        for candidate in candidates {
            cursor = (candidate.created_at_ms, candidate.rowid);
            if let Some(claim) = take(conn, candidate, worker, options, now)? {
                claims.push(claim);
            }
        }
        if found < page {
            break;
        }
    }
    Ok(claims)
}

/// Claims the run `run_id` for `worker` if it is claimable.
pub(super) fn claim_one(
    conn: &Connection,
    worker: &str,
    run_id: &str,
    options: &ClaimOptions,
) -> Result<Option<Claim>, StoreError> {
    let now = now(conn)?;
    let candidate = one(
        conn,
        concat!(claimable!(), " AND r.run_id = ?3"),
        params![now, millis(options.lease_ttl), run_id],
        Candidate::read,
    )?;
    match candidate {
        Some(candidate) => take(conn, candidate, worker, options, now),
        None => Ok(None),
    }
}

/// A claimable run, as [`claimable!`] selects it.
struct Candidate {
    run_id: String,
    recovered: bool,
    recoveries: i64,
    created_at_ms: i64,
    rowid: i64,
}

impl Candidate {
    fn read(row: &Row<'_>) -> rusqlite::Result<Candidate> {
        Ok(Candidate {
            run_id: row.get("run_id")?,
            recovered: row.get::<_, i64>("recovered")? != 0,
            recoveries: row.get("recoveries")?,
            created_at_ms: row.get("created_at_ms")?,
            rowid: row.get("rid")?,
        })
    }
}

/// Claims a candidate for `worker`, or parks it when it has been recovered too often.
fn take(
    conn: &Connection,
    candidate: Candidate,
    worker: &str,
    options: &ClaimOptions,
    now: i64,
) -> Result<Option<Claim>, StoreError> {
    let recovered = candidate.recovered;
    if recovered && candidate.recoveries + 1 > i64::from(options.max_recoveries) {
        exec(
            conn,
            "UPDATE runs SET status = 'parked', owner = NULL, epoch = epoch + 1, \
                             recoveries = recoveries + 1, error = ?2, updated_at_ms = ?3 \
             WHERE run_id = ?1",
            params![candidate.run_id, options.parking_reason(), now],
        )?;
        return Ok(None);
    }
    let epoch = one(
        conn,
        "UPDATE runs SET status = 'running', owner = ?2, epoch = epoch + 1, \
                         recoveries = recoveries + ?3, wake_at_ms = NULL, updated_at_ms = ?4 \
         WHERE run_id = ?1 RETURNING epoch",
        params![candidate.run_id, worker, i64::from(recovered), now],
        |row| row.get::<_, i64>(0),
    )?
    .ok_or_else(|| StoreError::unknown_run(&candidate.run_id))?;
    Ok(Some(Claim {
        lease: Lease {
            run_id: candidate.run_id,
            owner: worker.to_owned(),
            epoch: non_negative(epoch, "epoch")?,
        },
        recovered,
    }))
}
