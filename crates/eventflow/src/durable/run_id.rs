//! Run ids and idempotency keys chosen by callers are input: checked before they reach a store
//! or a log.
//!
//! Without a bound, a 900,000-character id creates a run no URL can name again, Postgres
//! refuses a 2,800-character key with its own error text, and an id holding a newline forges
//! log lines. One rule, applied by the engine, holds on every backend.

use super::EngineError;

/// The longest run id accepted, in bytes (a UUID takes 36).
pub const MAX_RUN_ID_BYTES: usize = 256;

/// Checks a run id given from outside: 1 to [`MAX_RUN_ID_BYTES`] bytes, no control characters
/// (no newline, tab or NUL). The error describes the id without repeating it.
pub fn check_run_id(id: &str) -> Result<(), EngineError> {
    check_id(id).map_err(|reason| EngineError::InvalidRunId { reason })
}

/// Checks an idempotency key by the same rule as [`check_run_id`]: it is stored and indexed
/// like one.
pub fn check_idempotency_key(key: &str) -> Result<(), EngineError> {
    check_id(key).map_err(|reason| EngineError::InvalidIdempotencyKey { reason })
}

/// What is wrong with an id from outside, if anything.
fn check_id(id: &str) -> Result<(), String> {
    let invalid = |reason: String| Err(reason);
    if id.is_empty() {
        return invalid("it is empty".into());
    }
    if id.len() > MAX_RUN_ID_BYTES {
        return invalid(format!(
            "it is {} bytes long; at most {MAX_RUN_ID_BYTES} are allowed",
            id.len()
        ));
    }
    if let Some((at, control)) = id.char_indices().find(|(_, c)| c.is_control()) {
        return invalid(format!(
            "it holds the control character U+{:04X} at byte {at}",
            u32::from(control)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(id: &str) -> String {
        match check_run_id(id) {
            Err(EngineError::InvalidRunId { reason }) => reason,
            other => panic!("{id:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn ids_people_use_pass() {
        for id in [
            "6f1c2a1e-1b9f-4e57-9d6b-0c8f0d1f2b3a",
            "order-42/refund",
            "Rückerstattung №7",
            &"x".repeat(MAX_RUN_ID_BYTES),
        ] {
            assert!(check_run_id(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn idempotency_keys_follow_the_same_rule() {
        assert!(check_idempotency_key("order-42").is_ok());
        assert!(matches!(
            check_idempotency_key(&"k".repeat(10_000)),
            Err(EngineError::InvalidIdempotencyKey { reason }) if reason.contains("at most 256")
        ));
    }

    #[test]
    fn hostile_ids_are_refused_without_being_repeated() {
        assert_eq!(reason(""), "it is empty");
        let long = "y".repeat(900_000);
        assert_eq!(
            reason(&long),
            "it is 900000 bytes long; at most 256 are allowed"
        );
        assert_eq!(
            reason("run\nINFO forged line"),
            "it holds the control character U+000A at byte 3"
        );
        assert_eq!(
            reason("nul\0"),
            "it holds the control character U+0000 at byte 3"
        );
        assert_eq!(
            reason("tab\there"),
            "it holds the control character U+0009 at byte 3"
        );
    }
}
