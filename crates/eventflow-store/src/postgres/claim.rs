//! Claiming runs: one statement per round locks claimable candidates with `FOR UPDATE SKIP
//! LOCKED` and takes (or parks) them, judging liveness by the database's clock.

use sqlx::postgres::PgRow;

use super::{PostgresStore, db};
use crate::sql::{column, parse_status, saturating_i64, unsigned};
use crate::{Claim, ClaimOptions, Lease, RunStatus, StoreError, millis};

/// Claims (or parks) up to `$3` claimable runs matching `$filter`, oldest first, locking them
/// with `$lock`. Parameters: `$1` worker, `$2` lease TTL (ms), `$3` limit, `$4` max recoveries,
/// `$5` parking error, then the filter's.
///
/// The owner's liveness is a subquery, not an outer join: when a candidate was claimed by a
/// concurrent transaction that committed meanwhile, Postgres re-checks the conditions on the new
/// row version before locking it, and re-runs subqueries with the new owner, whereas it would
/// reuse the old null-extended `workers` row of a join and claim the run a second time.
macro_rules! claim_sql {
    ($filter:literal, $lock:literal) => {
        concat!(
            "WITH clock AS MATERIALIZED (SELECT ",
            now_ms!(),
            " AS now),
            candidates AS (
                SELECT r.run_id, (r.status = 'running' AND r.owner IS NOT NULL) AS recovered
                FROM runs r
                CROSS JOIN clock
                WHERE ",
            $filter,
            "   AND ((r.status = 'running'
                      AND (r.owner IS NULL
                           OR NOT EXISTS (SELECT 1 FROM workers w
                               WHERE w.worker_id = r.owner
                                 AND clock.now - w.heartbeat_at_ms <= $2)))
                     OR (r.status = 'waiting' AND r.wake_at_ms <= clock.now))
                ORDER BY r.created_order
                LIMIT $3
                FOR UPDATE OF r ",
            $lock,
            "
            )
            UPDATE runs r SET
                epoch = r.epoch + 1,
                updated_at_ms = clock.now,
                recoveries = r.recoveries + c.recovered::int,
                status = CASE WHEN c.recovered AND r.recoveries >= $4
                    THEN 'parked' ELSE 'running' END,
                owner = CASE WHEN c.recovered AND r.recoveries >= $4
                    THEN NULL ELSE $1::text END,
                error = CASE WHEN c.recovered AND r.recoveries >= $4
                    THEN $5::text ELSE r.error END,
                wake_at_ms = CASE WHEN c.recovered AND r.recoveries >= $4
                    THEN r.wake_at_ms ELSE NULL END
            FROM candidates c, clock
            WHERE r.run_id = c.run_id
            RETURNING r.run_id, r.status, r.epoch, c.recovered, r.created_order"
        )
    };
}

impl PostgresStore {
    pub(super) async fn claim_runs(
        &self,
        worker: &str,
        options: &ClaimOptions,
    ) -> Result<Vec<Claim>, StoreError> {
        let mut claims = Vec::new();
        if options.workflows.is_empty() {
            return Ok(claims);
        }
        let names: Vec<&str> = options.workflows.iter().map(|w| w.name.as_str()).collect();
        let fingerprints: Vec<&str> = options
            .workflows
            .iter()
            .map(|w| w.fingerprint.as_str())
            .collect();
        // Parked runs do not count towards the limit: claim again until it is reached or no
        // claimable run is left. Each round starts after the runs judged before, as the memory
        // store judges each run once: a run just claimed by a worker without a heartbeat yet
        // would look orphaned.
        let mut after = i64::MIN;
        while claims.len() < options.limit {
            let want = options.limit - claims.len();
            let rows = claim_query(
                claim_sql!(
                    "EXISTS (SELECT 1 FROM unnest($6::text[], $7::text[]) AS k(name, fingerprint)
                        WHERE k.name = r.workflow AND k.fingerprint = r.fingerprint)
                    AND r.created_order > $8",
                    "SKIP LOCKED"
                ),
                worker,
                options,
                want,
            )
            .bind(&names)
            .bind(&fingerprints)
            .bind(after)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
            let found = rows.len();
            let (taken, last) = claimed(worker, rows)?;
            let all_taken = taken.len() == found;
            claims.extend(taken);
            after = last.unwrap_or(after);
            if found < want || all_taken {
                break;
            }
        }
        Ok(claims)
    }

    pub(super) async fn claim_one(
        &self,
        worker: &str,
        run_id: &str,
        options: &ClaimOptions,
    ) -> Result<Option<Claim>, StoreError> {
        // Waits for a transaction holding the run (its owner committing, a send) rather than
        // skipping it: the run asked for may well be claimable once it ends.
        let rows = claim_query(claim_sql!("r.run_id = $6", ""), worker, options, 1)
            .bind(run_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(claimed(worker, rows)?.0.into_iter().next())
    }
}

/// Binds the parameters common to both claim queries.
fn claim_query<'q>(
    sql: &'q str,
    worker: &'q str,
    options: &ClaimOptions,
    limit: usize,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sql)
        .bind(worker)
        .bind(millis(options.lease_ttl))
        .bind(saturating_i64(limit))
        .bind(i64::from(options.max_recoveries))
        .bind(options.parking_reason())
}

/// The claims among rows returned by a claim query (the others were parked), oldest first, and
/// the creation order of the newest row.
fn claimed(worker: &str, rows: Vec<PgRow>) -> Result<(Vec<Claim>, Option<i64>), StoreError> {
    let mut claims = Vec::with_capacity(rows.len());
    let mut last = None;
    for row in rows {
        let order: i64 = column(&row, "created_order")?;
        last = last.max(Some(order));
        let status: String = column(&row, "status")?;
        if parse_status(&status)? != RunStatus::Running {
            continue;
        }
        let claim = Claim {
            lease: Lease {
                run_id: column(&row, "run_id")?,
                owner: worker.to_owned(),
                epoch: unsigned(&row, "epoch")?,
            },
            recovered: column(&row, "recovered")?,
        };
        claims.push((order, claim));
    }
    claims.sort_by_key(|(order, _)| *order);
    Ok((claims.into_iter().map(|(_, claim)| claim).collect(), last))
}
