//! What can go wrong reading a recorded run back: a snapshot, or a journal and its events.
//!
//! Recorded runs outlive the code that wrote them, so the errors are typed: a caller (and a
//! test) can tell data from a newer eventflow ([`FormatError::UnsupportedVersion`]) from data
//! that names a step or event this workflow lacks, or a journal with entries missing.

use serde::Deserialize;
use serde_json::Value;

/// Why stored run data (a journal entry, a snapshot) cannot be read as this build's format.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The data carries a format version this build does not read (a newer eventflow wrote it).
    #[error(
        "{what} has format version {version}, but this build of eventflow reads {}{}",
        versions(*oldest, *newest),
        written_by(*version, *oldest, *newest)
    )]
    UnsupportedVersion {
        /// What was read: `journal entry`, `durable snapshot`, ...
        what: &'static str,
        /// The version found.
        version: u64,
        /// The oldest version this build reads.
        oldest: u32,
        /// The newest version this build reads (the one it writes).
        newest: u32,
    },
    /// The data is of a known version but does not decode.
    #[error("invalid {what}: {source}")]
    Invalid {
        /// What was read.
        what: &'static str,
        /// Why it does not decode.
        #[source]
        source: serde_json::Error,
    },
}

/// Why a recorded run does not replay on this workflow.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The data is not in a format this build reads.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The recording names a step the workflow does not have.
    #[error("the workflow has no step named `{0}`")]
    UnknownStep(String),
    /// The recording names an event type the workflow does not know.
    #[error("the workflow has no event type named `{0}`")]
    UnknownEvent(String),
    /// A recorded event does not decode as the workflow's type of that name.
    #[error("cannot decode {name}: {source}")]
    Decode {
        /// The event's name.
        name: String,
        /// Why it does not decode.
        #[source]
        source: serde_json::Error,
    },
    /// The journal skips entries: replaying it would give a run that never happened.
    #[error("the journal jumps from {after} to {next}: entries are missing")]
    Gap {
        /// The last sequence replayed.
        after: u64,
        /// The sequence found next.
        next: u64,
    },
}

/// The versions a build reads, in words, for [`FormatError`]'s message.
fn versions(oldest: u32, newest: u32) -> String {
    if oldest == newest {
        format!("version {newest} only")
    } else {
        format!("versions {oldest} to {newest}")
    }
}

/// Which eventflow wrote data of `version`, when this build does not read it.
fn written_by(version: u64, oldest: u32, newest: u32) -> &'static str {
    if version > u64::from(newest) {
        ": it was written by a newer eventflow"
    } else if version < u64::from(oldest) {
        ": it was written by an older eventflow"
    } else {
        ""
    }
}

/// Checks the format version in `json`'s `field` (`absent` when it has none) against the
/// versions this build reads, `oldest..=newest`; returns the version.
pub(crate) fn check_format(
    what: &'static str,
    json: &Value,
    field: &str,
    absent: u32,
    oldest: u32,
    newest: u32,
) -> Result<u32, FormatError> {
    let version = match json.get(field) {
        None => u64::from(absent),
        Some(value) => {
            u64::deserialize(value).map_err(|source| FormatError::Invalid { what, source })?
        }
    };
    check_version(what, version, oldest, newest)
}

/// Checks a format `version` read from data against the versions this build reads,
/// `oldest..=newest`.
pub(crate) fn check_version(
    what: &'static str,
    version: u64,
    oldest: u32,
    newest: u32,
) -> Result<u32, FormatError> {
    match u32::try_from(version) {
        Ok(known) if (oldest..=newest).contains(&known) => Ok(known),
        _ => Err(FormatError::UnsupportedVersion {
            what,
            version,
            oldest,
            newest,
        }),
    }
}
