//! What the SQL backends share: the columns of a run record and how rows decode, how numbers
//! and statuses are stored, and which database errors mean corrupt data.

use serde_json::{Value, json};
// Only the Postgres backend reads rows through sqlx; the SQLite one reads them with rusqlite.
#[cfg(feature = "postgres")]
use sqlx::{ColumnIndex, Decode, Row, Type};

#[cfg(feature = "postgres")]
use crate::RunRecord;
use crate::{RunStatus, StoreError, WorkflowKey};

/// The columns [`run_record`] reads.
macro_rules! run_columns {
    () => {
        "run_id, workflow, fingerprint, status, owner, epoch, recoveries, idempotency_key, \
         result, error, last_event_seq, created_at_ms, updated_at_ms"
    };
}

/// A column of `row`; a value that does not decode is data this version did not write.
#[cfg(feature = "postgres")]
pub(crate) fn column<'r, T, R>(row: &'r R, name: &str) -> Result<T, StoreError>
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(name).map_err(db)
}

/// A non-negative integer column: a sequence, an epoch.
#[cfg(feature = "postgres")]
pub(crate) fn unsigned<R>(row: &R, name: &str) -> Result<u64, StoreError>
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    non_negative(column(row, name)?, name)
}

/// A stored integer that must not be negative.
pub(crate) fn non_negative(n: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("`{what}` is negative: {n}")))
}

/// Sequences, epochs and limits beyond `i64::MAX` cannot be stored; saturating makes them fail
/// the fencing and contiguity checks (or ask for everything) instead of wrapping into
/// valid-looking numbers.
pub(crate) fn saturating_i64(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// Reads a status written by [`RunStatus::as_str`].
pub(crate) fn parse_status(text: &str) -> Result<RunStatus, StoreError> {
    RunStatus::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown run status `{text}`")))
}

/// The JSON array of workflow keys a worker serves, as both backends bind it.
pub(crate) fn workflows_json(workflows: &[WorkflowKey]) -> String {
    Value::from_iter(
        workflows
            .iter()
            .map(|key| json!({ "name": key.name, "fingerprint": key.fingerprint })),
    )
    .to_string()
}

/// Reads a [`RunRecord`] from a row of [`run_columns!`]; `result` is the `result` column, which
/// each backend decodes its own way.
#[cfg(feature = "postgres")]
pub(crate) fn run_record<R>(row: &R, result: Option<Value>) -> Result<RunRecord, StoreError>
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let recoveries: i64 = column(row, "recoveries")?;
    Ok(RunRecord {
        run_id: column(row, "run_id")?,
        workflow: WorkflowKey {
            name: column(row, "workflow")?,
            fingerprint: column(row, "fingerprint")?,
        },
        status: parse_status(&column::<String, _>(row, "status")?)?,
        owner: column(row, "owner")?,
        epoch: unsigned(row, "epoch")?,
        recoveries: u32::try_from(recoveries)
            .map_err(|_| StoreError::Corrupt(format!("`recoveries` out of range: {recoveries}")))?,
        idempotency_key: column(row, "idempotency_key")?,
        result,
        error: column(row, "error")?,
        last_event_seq: unsigned(row, "last_event_seq")?,
        created_at_ms: column(row, "created_at_ms")?,
        updated_at_ms: column(row, "updated_at_ms")?,
    })
}

/// `(seq, value)` rows, the value read by `value`.
#[cfg(feature = "postgres")]
pub(crate) fn sequenced<R>(
    rows: &[R],
    value: impl Fn(&R) -> Result<Value, StoreError>,
) -> Result<Vec<(u64, Value)>, StoreError>
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    rows.iter()
        .map(|row| Ok((unsigned(row, "seq")?, value(row)?)))
        .collect()
}

/// Values that do not decode are data this version did not write; a database that cannot be
/// reached, is busy or is short of a resource (an I/O error, a pool that timed out or closed, a
/// connection lost mid-protocol) may recover, so the operation may be retried; anything else
/// the database refuses — and a value the driver cannot encode, an invalid argument, a bad
/// configuration, migrations that do not match — will be refused again.
pub(crate) fn db(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(error.to_string()),
        sqlx::Error::Database(ref refused) if !may_pass(refused.code().as_deref()) => {
            StoreError::Refused(Box::new(error))
        }
        sqlx::Error::Configuration(_)
        | sqlx::Error::Encode(_)
        | sqlx::Error::InvalidArgument(_)
        | sqlx::Error::InvalidSavePointStatement => StoreError::Refused(Box::new(error)),
        sqlx::Error::Migrate(migrate) => migrate_error(*migrate),
        error => StoreError::Database(Box::new(error)),
    }
}

/// A migration failed: as [`db`] classifies the statement's error when one failed to execute;
/// otherwise the database's migrations do not match this version's (one missing, modified,
/// newer, left dirty), which retrying cannot change.
pub(crate) fn migrate_error(error: sqlx::migrate::MigrateError) -> StoreError {
    use sqlx::migrate::MigrateError;
    match error {
        MigrateError::Execute(error) | MigrateError::ExecuteMigration(error, _) => db(error),
        other => StoreError::Refused(Box::new(other)),
    }
}

/// Whether a database error with this code may not happen again. Postgres SQLSTATEs (always
/// five characters) by class: 08 connection exception, 40 transaction rollback (serialization
/// failure, deadlock), 53 insufficient resources, 57 operator intervention (shutdown, a
/// statement timeout), 58 system error (I/O); and 55P03, a lock not available (in time). SQLite result codes (numbers below 10,000; the primary code is the low
/// byte): 5 busy, 6 locked, 10 I/O error, 13 full, 14 cannot open. A database error without a
/// code is taken as passing.
pub(crate) fn may_pass(code: Option<&str>) -> bool {
    let Some(code) = code else { return true };
    if code.len() == 5 {
        return code == "55P03"
            || ["08", "40", "53", "57", "58"]
                .iter()
                .any(|class| code.starts_with(class));
    }
    code.parse::<u32>()
        .is_ok_and(|sqlite| matches!(sqlite & 0xff, 5 | 6 | 10 | 13 | 14))
}

#[cfg(test)]
mod tests {
    use super::{db, may_pass, migrate_error};
    use crate::StoreError;
    use sqlx::migrate::MigrateError;

    /// The driver's own failures, as sqlx reports them: those of the connection may pass,
    /// those of the request or the schema will not.
    #[test]
    fn driver_errors_are_classified() {
        let transient = [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::Error::other("connection reset")),
            sqlx::Error::Protocol("unexpected message".into()),
            sqlx::Error::WorkerCrashed,
            sqlx::Error::BeginFailed,
            sqlx::Error::Migrate(Box::new(MigrateError::Execute(sqlx::Error::PoolTimedOut))),
        ];
        for error in transient {
            let text = error.to_string();
            assert!(db(error).is_transient(), "{text}");
        }
        let refused = [
            sqlx::Error::Encode("a value the driver cannot send".into()),
            sqlx::Error::InvalidArgument("x".into()),
            sqlx::Error::Configuration("bad url".into()),
            sqlx::Error::Migrate(Box::new(MigrateError::VersionMismatch(1))),
        ];
        for error in refused {
            let text = error.to_string();
            let classified = db(error);
            assert!(
                matches!(classified, StoreError::Refused(_)),
                "{text}: {classified:?}"
            );
        }
        assert!(matches!(
            migrate_error(MigrateError::VersionMissing(3)),
            StoreError::Refused(_)
        ));
    }

    #[test]
    fn database_errors_that_may_pass_are_told_from_refusals() {
        // Postgres: connection lost, serialization failure, deadlock, too many connections,
        // shutting down, I/O; then a B-tree row too large, a unique violation, an undefined
        // table, a value too long.
        for code in [
            "08006", "40001", "40P01", "53300", "57P01", "57014", "58030", "55P03",
        ] {
            assert!(may_pass(Some(code)), "{code}");
        }
        for code in [
            "54000", "23505", "23514", "42P01", "22001", "22021", "55000",
        ] {
            assert!(!may_pass(Some(code)), "{code}");
        }
        // SQLite: busy, busy snapshot (517), locked, I/O error, disk full, cannot open; then
        // SQL error, constraint, unique constraint (2067), too big.
        for code in ["5", "517", "6", "10", "13", "14"] {
            assert!(may_pass(Some(code)), "{code}");
        }
        for code in ["1", "19", "2067", "18"] {
            assert!(!may_pass(Some(code)), "{code}");
        }
        assert!(may_pass(None));
    }
}
