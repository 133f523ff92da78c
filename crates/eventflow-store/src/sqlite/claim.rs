//! Claiming runs: judging candidates by the file's clock and taking (or parking) them, all under
//! the write lock, so processes sharing the file never claim the same run.

use sqlx::sqlite::SqliteRow;
use sqlx::{Sqlite, Transaction};

use super::{SqliteStore, exec, now};
use crate::sql::{column, db, non_negative, workflows_json};
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

impl SqliteStore {
    pub(super) async fn claim_many(
        &self,
        worker: &str,
        options: &ClaimOptions,
    ) -> Result<Vec<Claim>, StoreError> {
        let mut claims = Vec::new();
        if options.limit == 0 || options.workflows.is_empty() {
            return Ok(claims);
        }
        let workflows = workflows_json(&options.workflows);
        let mut w = self.write().await?;
        let now = now(&mut w.tx).await?;
        // Candidates come in pages after a cursor so that each is judged once, as the memory store
        // does, even when a run this worker just claimed still looks claimable (no heartbeat yet).
        let mut cursor = (i64::MIN, i64::MIN);
        while claims.len() < options.limit {
            let page = options.limit - claims.len();
            let rows = sqlx::query(concat!(
                claimable!(),
                // The status term repeats the index's condition, so `runs_claim` can be used.
                " AND r.status IN ('running', 'waiting') \
                  AND (r.workflow, r.fingerprint) IN \
                    (SELECT json_extract(value, '$.name'), json_extract(value, '$.fingerprint') \
                     FROM json_each(?3)) \
                  AND (r.created_at_ms, r.rowid) > (?4, ?5) \
                  ORDER BY r.created_at_ms, r.rowid LIMIT ?6"
            ))
            .bind(now)
            .bind(millis(options.lease_ttl))
            .bind(&workflows)
            .bind(cursor.0)
            .bind(cursor.1)
            .bind(i64::try_from(page).unwrap_or(i64::MAX))
            .fetch_all(&mut *w.tx)
            .await
            .map_err(db)?;
            for row in &rows {
                let candidate = Candidate::read(row)?;
                cursor = (candidate.created_at_ms, candidate.rowid);
                if let Some(claim) = take(&mut w.tx, candidate, worker, options, now).await? {
                    claims.push(claim);
                }
            }
            if rows.len() < page {
                break;
            }
        }
        w.tx.commit().await.map_err(db)?;
        Ok(claims)
    }

    pub(super) async fn claim_one(
        &self,
        worker: &str,
        run_id: &str,
        options: &ClaimOptions,
    ) -> Result<Option<Claim>, StoreError> {
        let mut w = self.write().await?;
        let now = now(&mut w.tx).await?;
        let row = sqlx::query(concat!(claimable!(), " AND r.run_id = ?3"))
            .bind(now)
            .bind(millis(options.lease_ttl))
            .bind(run_id)
            .fetch_optional(&mut *w.tx)
            .await
            .map_err(db)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let claim = take(&mut w.tx, Candidate::read(&row)?, worker, options, now).await?;
        w.tx.commit().await.map_err(db)?;
        Ok(claim)
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
    fn read(row: &SqliteRow) -> Result<Candidate, StoreError> {
        Ok(Candidate {
            run_id: column(row, "run_id")?,
            recovered: column::<i64, _>(row, "recovered")? != 0,
            recoveries: column(row, "recoveries")?,
            created_at_ms: column(row, "created_at_ms")?,
            rowid: column(row, "rid")?,
        })
    }
}

/// Claims a candidate for `worker`, or parks it when it has been recovered too often.
async fn take(
    tx: &mut Transaction<'static, Sqlite>,
    candidate: Candidate,
    worker: &str,
    options: &ClaimOptions,
    now: i64,
) -> Result<Option<Claim>, StoreError> {
    let recovered = candidate.recovered;
    if recovered && candidate.recoveries + 1 > i64::from(options.max_recoveries) {
        exec(
            tx,
            sqlx::query(
                "UPDATE runs SET status = 'parked', owner = NULL, epoch = epoch + 1, \
                                 recoveries = recoveries + 1, error = ?2, updated_at_ms = ?3 \
                 WHERE run_id = ?1",
            )
            .bind(&candidate.run_id)
            .bind(options.parking_reason())
            .bind(now),
        )
        .await?;
        return Ok(None);
    }
    let epoch: i64 = sqlx::query_scalar(
        "UPDATE runs SET status = 'running', owner = ?2, epoch = epoch + 1, \
                         recoveries = recoveries + ?3, wake_at_ms = NULL, updated_at_ms = ?4 \
         WHERE run_id = ?1 RETURNING epoch",
    )
    .bind(&candidate.run_id)
    .bind(worker)
    .bind(i64::from(recovered))
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .map_err(db)?;
    Ok(Some(Claim {
        lease: Lease {
            run_id: candidate.run_id,
            owner: worker.to_owned(),
            epoch: non_negative(epoch, "epoch")?,
        },
        recovered,
    }))
}
