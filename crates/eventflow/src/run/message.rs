//! The one message type of a run's mailbox: what steps, the handler and timers send to the
//! driver.

use tokio::sync::oneshot;

use crate::context::WaitRequest;
use crate::error::SnapshotError;
use crate::run::reducer::Tick;
use crate::run::snapshot::RunSnapshot;

/// A message to a run's driver.
pub(crate) enum Msg {
    Tick(Tick),
    /// A step begins waiting (boxed: waits are rare, and the mailbox holds every message).
    Wait(Box<WaitRequest>),
    Snapshot(oneshot::Sender<Result<RunSnapshot, SnapshotError>>),
}
