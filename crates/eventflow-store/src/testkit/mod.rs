//! The conformance suite (feature `testkit`): the checks every [`Store`] must pass, so that a
//! backend keeps the promises of the trait's documentation. The memory, SQLite and Postgres
//! stores run it in this crate's tests; a third-party backend runs the same checks in its own.
//!
//! A backend describes how to get a fresh store with a [`Fixture`]; then
//! [`conformance_tests!`](crate::conformance_tests) writes one `#[test]` per check, named after
//! it, so that a failure names the promise broken. Each test runs its check on its own tokio
//! runtime, against a store of its own, within a minute.
//!
//! ```
//! use std::sync::Arc;
//!
//! use eventflow_store::testkit::{BoxError, Fixture};
//! use eventflow_store::{MemoryStore, Store, StoreFuture};
//! use futures::future::BoxFuture;
//!
//! /// The backend under test: here the memory store stands in for yours.
//! struct MyBackend {
//!     store: Arc<dyn Store>,
//! }
//!
//! impl Fixture for MyBackend {
//!     fn fresh() -> BoxFuture<'static, Result<Self, BoxError>> {
//!         Box::pin(async {
//!             let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
//!             Ok(MyBackend { store })
//!         })
//!     }
//!
//!     fn store(&self) -> Arc<dyn Store> {
//!         self.store.clone()
//!     }
//!
//!     // A store kept in one process's memory has no other view of its data: it is its own.
//!     fn open_again(&self) -> StoreFuture<'_, Arc<dyn Store>> {
//!         Box::pin(async { Ok(self.store.clone()) })
//!     }
//!
//!     fn open_second_location(&self) -> StoreFuture<'_, Arc<dyn Store>> {
//!         Box::pin(async { Ok(self.store.clone()) })
//!     }
//!
//!     fn wakeups_cross_instances(&self) -> bool {
//!         true
//!     }
//! }
//!
//! // In the backend's tests (`tests/conformance.rs`): `my_backend::idempotent_create`, ….
//! mod my_backend {
//!     eventflow_store::conformance_tests!(super::MyBackend);
//! }
//!
//! // Or one check by name, as each generated test does.
//! fn main() -> Result<(), eventflow_store::testkit::Failure> {
//!     assert!(eventflow_store::testkit::names().any(|name| name == "idempotent_create"));
//!     eventflow_store::testkit::run::<MyBackend>("idempotent_create")
//! }
//! ```
//!
//! A backend that needs a server marks its tests, for instance
//! `conformance_tests!(PgFixture, #[ignore = "needs Postgres"])`, and runs them with
//! `--ignored`. Checks that depend on timing use leases of a few hundred milliseconds and sleep
//! well past them, and never assert an upper bound tighter than seconds, so that a loaded
//! machine does not make them fail.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::{Store, StoreFuture};

mod support;

mod claims;
mod commits;
mod creating;
mod errors;
mod fencing;
mod inbox;
mod instances;
mod json;
mod lifecycle;
mod races;
mod release;
mod reopen;
mod wakeups;

/// A whole check may not take longer than this (a deadlocked backend fails instead of hanging).
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// Any error, as a [`Fixture`] fails to set a store up.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A backend under test: a fresh store for each check, and how to open its data again.
pub trait Fixture: Send + Sync + 'static {
    /// A fresh, empty store at a location of its own (a new file, a new schema).
    fn fresh() -> BoxFuture<'static, Result<Self, BoxError>>
    where
        Self: Sized;

    /// The store under test.
    fn store(&self) -> Arc<dyn Store>;

    /// Another store on the same data, as a second process would open it (a new connection to
    /// the same file or schema). A store whose data only it can see returns itself.
    fn open_again(&self) -> StoreFuture<'_, Arc<dyn Store>>;

    /// A store at a second, new location next to this one, which opening sets up (migrations
    /// included); several may open it at once. A store whose data only it can see returns
    /// itself.
    fn open_second_location(&self) -> StoreFuture<'_, Arc<dyn Store>>;

    /// Whether the [`Store::wakeups`] of the stores [`Fixture::open_again`] returns hear of work
    /// found by this one (`false` for wake-ups that stay in their process: the checks of
    /// crossing wake-ups then pass without checking).
    fn wakeups_cross_instances(&self) -> bool;

    /// Removes what [`Fixture::fresh`] created, once the check is over (even when it failed).
    /// Dropping the fixture is enough for most backends.
    fn clean_up(self) -> BoxFuture<'static, ()>
    where
        Self: Sized,
    {
        Box::pin(async move { drop(self) })
    }
}

/// A check found a store breaking a promise, or could not run.
#[derive(thiserror::Error)]
#[error("{0:#}")]
pub struct Failure(anyhow::Error);

/// The failure with the context of every step, as a test that returns it prints it.
impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// The future of a check.
type CheckFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// One check of the suite: its name and how it runs on a fixture.
#[derive(Clone, Copy)]
struct Check {
    name: &'static str,
    run: fn(Arc<dyn Fixture>) -> CheckFuture,
}

/// Every check, in the order of [`conformance_tests!`](crate::conformance_tests)'s list.
static CHECKS: &[Check] = crate::conformance_tests!(@list table);

/// The names of the checks, as [`run`] takes them and the generated tests are named.
pub fn names() -> impl Iterator<Item = &'static str> {
    CHECKS.iter().map(|check| check.name)
}

/// Runs the check named `check` against a fresh store of `F`, on a tokio runtime of its own
/// (so call it from a plain `#[test]`, outside any runtime), then cleans the store up. Fails
/// when the check fails, takes over a minute, or names no check; panics when one of its
/// assertions does.
pub fn run<F: Fixture>(check: &str) -> Result<(), Failure> {
    let found = CHECKS.iter().find(|known| known.name == check);
    let Some(check) = found.copied() else {
        return Err(Failure(anyhow::anyhow!(
            "no conformance check is named `{check}`"
        )));
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| Failure(anyhow::Error::new(error).context("starting a runtime")))?;
    runtime.block_on(run_check::<F>(check)).map_err(Failure)
}

/// Runs `check` on a fresh fixture with a timeout, then cleans up (even when the check
/// panics; the panic then goes on).
async fn run_check<F: Fixture>(check: Check) -> anyhow::Result<()> {
    let fixture = F::fresh()
        .await
        .map_err(|error| anyhow::anyhow!("setting up a store for `{}`: {error}", check.name))?;
    let fixture = Arc::new(fixture);
    let shared: Arc<dyn Fixture> = fixture.clone();
    let outcome = tokio::spawn(tokio::time::timeout(CHECK_TIMEOUT, (check.run)(shared))).await;
    // The check's task is over, and with it its share of the fixture.
    match Arc::into_inner(fixture) {
        Some(fixture) => fixture.clean_up().await,
        None => eprintln!("`{}` left its store in use: not cleaned up", check.name),
    }
    match outcome {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => anyhow::bail!("the check did not finish within {CHECK_TIMEOUT:?}"),
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => Err(error.into()),
        },
    }
}

/// Writes one `#[test]` per conformance check, named after it, each running the check against
/// a fresh store of the given [`Fixture`](crate::testkit::Fixture) type (feature `testkit`).
/// Attributes after the type mark every test, such as `#[ignore = "needs a server"]`.
///
/// See [`testkit`](crate::testkit) for an example. (Arms starting with `@` are the macro's
/// own.)
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:ty $(, #[$attr:meta])* $(,)?) => {
        $crate::conformance_tests!(@list tests [$fixture] [$(#[$attr])*]);
    };
    // The list of checks, by module: checks of a store, then checks that open it again. It is
    // the only one: the tests and the `testkit` table are both written from it.
    (@list $then:ident $($args:tt)*) => {
        $crate::conformance_tests! { @$then $($args)*
            store [
                creating::create_returns_lease_and_record,
                creating::idempotent_create,
                creating::duplicate_run_id,
                creating::load_after_create,
                commits::commit_appends_journal_and_events,
                commits::commit_out_of_sequence_is_corrupt,
                commits::commit_with_gaps_is_corrupt,
                commits::events_after_pages_exactly,
                commits::snapshot_replaces_and_trims_journal,
                fencing::stale_lease_is_fenced,
                fencing::released_lease_is_fenced,
                fencing::recovered_lease_is_fenced,
                claims::claim_only_served_workflows,
                claims::claim_skips_live_owner_and_recovers_expired,
                claims::claim_recovers_owner_without_heartbeat,
                claims::claim_respects_limit,
                claims::concurrent_claims_never_overlap,
                claims::claim_run_claims_one_run,
                claims::parking_after_max_recoveries,
                claims::cancel_message_resumes_parked_run,
                release::release_idle_waits_for_events,
                release::release_idle_with_unread_inbox_stays_running,
                release::release_not_idle_is_claimable_at_once,
                release::release_idle_wakes_after,
                inbox::inbox_send_and_dedup,
                inbox::inbox_consumed_by_commit,
                inbox::send_errors,
                inbox::events_sent_before_owned_are_kept,
                lifecycle::finish_records_outcome,
                lifecycle::list_runs_filters_oldest_first,
                lifecycle::purge_removes_everything,
                wakeups::wakeups_signal_work,
                errors::errors_are_sane,
                races::concurrent_sends_deduplicate,
                races::commit_races_claim,
                races::send_races_idle_release,
                json::json_values_round_trip,
                json::json_nul_characters_round_trip,
                json::large_commit,
                json::extreme_arguments,
                reopen::reopen_continues_a_finished_run,
                reopen::reopen_keeps_the_snapshot,
                reopen::reopen_without_owner_is_claimable,
                reopen::reopen_refused_unless_finished,
                reopen::reopen_keeps_message_dedup,
                reopen::reopen_wakes_workers,
            ]
            setup [
                instances::durable_across_reopen,
                claims::concurrent_claims_across_instances,
                races::concurrent_idempotent_create,
                wakeups::wakeups_across_instances,
                instances::concurrent_first_open,
                instances::reopen_across_instances,
            ]
        }
    };
    (@tests [$fixture:ty] $attrs:tt
        store [$($module:ident :: $check:ident),* $(,)?]
        setup [$($setup_module:ident :: $setup_check:ident),* $(,)?]) => {
        $($crate::conformance_tests! { @test [$fixture] $attrs $check })*
        $($crate::conformance_tests! { @test [$fixture] $attrs $setup_check })*
    };
    (@test [$fixture:ty] [$($attr:tt)*] $check:ident) => {
        #[test]
        $($attr)*
        fn $check() -> ::std::result::Result<(), $crate::testkit::Failure> {
            $crate::testkit::run::<$fixture>(::std::stringify!($check))
        }
    };
    // Only inside `testkit`, where the modules are.
    (@table
        store [$($module:ident :: $check:ident),* $(,)?]
        setup [$($setup_module:ident :: $setup_check:ident),* $(,)?]) => {
        &[
            $(Check {
                name: ::std::stringify!($check),
                run: |fixture| Box::pin($module::$check(fixture.store())),
            },)*
            $(Check {
                name: ::std::stringify!($setup_check),
                run: |fixture| Box::pin($setup_module::$setup_check(fixture)),
            },)*
        ]
    };
}
