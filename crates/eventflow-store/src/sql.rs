//! What the SQL backends share: the columns of a run record and how rows decode, how numbers
//! and statuses are stored, and which database errors mean corrupt data.

use serde_json::{Value, json};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::{RunRecord, RunStatus, StoreError, WorkflowKey};

/// The columns [`run_record`] reads.
macro_rules! run_columns {
    () => {
        "run_id, workflow, fingerprint, status, owner, epoch, recoveries, idempotency_key, \
         result, error, last_event_seq, created_at_ms, updated_at_ms"
    };
}

/// A column of `row`; a value that does not decode is data this version did not write.
pub(crate) fn column<'r, T, R>(row: &'r R, name: &str) -> Result<T, StoreError>
where
    R: Row,
    for<'n> &'n str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(name).map_err(db)
}

/// A non-negative integer column: a sequence, an epoch.
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

/// Values that do not decode are data this version did not write; anything else is the
/// database failing, which may pass.
pub(crate) fn db(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(error.to_string()),
        error => StoreError::Database(Box::new(error)),
    }
}
