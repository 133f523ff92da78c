//! Retries as a step sees them: `ctx.retry_info()` in memory and across a worker restart on a
//! real SQLite file, custom and composed policies in real runs.
//!
//! The clock here is the real one (retry information is wall-clock time), so delays are tens of
//! milliseconds and the assertions leave room for a busy machine.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eventflow::durable::{CommitInfo, Engine};
use eventflow::prelude::*;
use eventflow::store::{SqliteStore, Store};
use eventflow::{Retry, RetryInfo};

/// What one attempt saw and when it ran.
#[derive(Clone, Debug)]
struct Attempt {
    info: RetryInfo,
    /// When the step's body began.
    entered_at: SystemTime,
    /// When it returned its error, if it failed.
    failed_at: Option<SystemTime>,
}

type Attempts = Arc<Mutex<Vec<Attempt>>>;

/// A step that fails with `"{what} #{attempt}"` until attempt `succeed_at`, recording what each
/// attempt saw.
fn flaky(name: &'static str, what: &'static str, succeed_at: u32, attempts: Attempts) -> Step {
    Step::new(name, move |ctx: Context, _: StartEvent| {
        let attempts = attempts.clone();
        async move {
            let entered_at = SystemTime::now();
            let info = ctx.retry_info();
            let attempt = info.attempt;
            let failed = attempt < succeed_at;
            attempts.lock().unwrap().push(Attempt {
                info,
                entered_at,
                failed_at: failed.then(SystemTime::now),
            });
            if failed {
                return Err::<StopEvent, BoxError>(format!("{what} #{attempt}").into());
            }
            Ok(StopEvent::new(attempt))
        }
    })
}

/// `time` cut to whole milliseconds, as failure times are recorded.
fn whole_millis(time: SystemTime) -> SystemTime {
    let millis = time.duration_since(UNIX_EPOCH).unwrap().as_millis();
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap())
}

/// Checks that each attempt was told the truth about the one before it: its number, its error,
/// when it failed, and the time since the first attempt began.
fn assert_told_the_truth(attempts: &[Attempt], what: &str) {
    let numbers: Vec<u32> = attempts.iter().map(|a| a.info.attempt).collect();
    let expected: Vec<u32> = (1..=u32::try_from(attempts.len()).unwrap()).collect();
    assert_eq!(numbers, expected);
    let errors: Vec<Option<&str>> = attempts
        .iter()
        .map(|a| a.info.last_error.as_deref())
        .collect();
    let expected: Vec<Option<String>> = (0..attempts.len())
        .map(|n| (n > 0).then(|| format!("{what} #{n}")))
        .collect();
    assert_eq!(
        errors,
        expected.iter().map(Option::as_deref).collect::<Vec<_>>()
    );
    let first = &attempts[0];
    assert_eq!(first.info.last_failed_at, None);
    assert!(
        first.info.since_first_attempt < Duration::from_secs(1),
        "{first:?}"
    );
    for pair in attempts.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        let failed_at = after
            .info
            .last_failed_at
            .expect("a retry knows the failure");
        // Stamped after the body returned, before the retry began.
        let returned = whole_millis(before.failed_at.unwrap());
        assert!(
            returned <= failed_at && failed_at <= after.entered_at,
            "failure stamped at {failed_at:?}, the body returned at {returned:?} and the retry began at {:?}",
            after.entered_at
        );
        // Counted from the first attempt's start (to the millisecond it was recorded with).
        let since_first = after.entered_at.duration_since(first.entered_at).unwrap();
        let told = after.info.since_first_attempt;
        assert!(
            told + Duration::from_millis(1) >= since_first
                && told < since_first + Duration::from_secs(1),
            "attempt {} was told {told:?} since the first, which began {since_first:?} before it",
            after.info.attempt
        );
    }
}

#[tokio::test]
async fn a_flaky_step_sees_its_attempt_and_the_previous_error() -> anyhow::Result<()> {
    let attempts = Attempts::default();
    let workflow = Workflow::builder("flaky")
        .step(
            flaky("call", "failure", 3, attempts.clone())
                .retry(RetryPolicy::fixed(Duration::from_millis(30)).max_attempts(3)),
        )
        .build()?;
    let output = workflow.run(json!({})).await?;
    assert_eq!(output.result::<u32>()?, 3);
    let attempts = attempts.lock().unwrap().clone();
    assert_told_the_truth(&attempts, "failure");
    // Two waits of 30 ms lie between the first attempt and the third.
    assert!(attempts[2].info.since_first_attempt >= Duration::from_millis(60));
    Ok(())
}

/// The error a throttled service returns, saying how long to wait.
#[derive(Debug)]
struct Throttled {
    wait: Duration,
}

impl std::fmt::Display for Throttled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "throttled for {} ms", self.wait.as_millis())
    }
}

impl std::error::Error for Throttled {}

/// Waits as long as a throttled service asks; gives up on any other error.
struct HonourThrottling;

impl Retry for HonourThrottling {
    fn next(&self, _attempt: u32, _elapsed: Duration, error: &StepError) -> Option<Duration> {
        match error {
            StepError::Failed(error) => error.downcast_ref::<Throttled>().map(|t| t.wait),
            _ => None,
        }
    }
}

/// A custom policy is asked in the run with the step's own error, whole: it can read its type.
#[tokio::test]
async fn a_custom_policy_decides_on_the_steps_own_error() -> anyhow::Result<()> {
    let seen = Attempts::default();
    let record = seen.clone();
    let workflow = Workflow::builder("throttled")
        .step(
            Step::new("call", move |ctx: Context, _: StartEvent| {
                let record = record.clone();
                async move {
                    let info = ctx.retry_info();
                    let attempt = info.attempt;
                    record.lock().unwrap().push(Attempt {
                        info,
                        entered_at: SystemTime::now(),
                        failed_at: None,
                    });
                    if attempt == 1 {
                        let wait = Duration::from_millis(40);
                        return Err::<StopEvent, BoxError>(Box::new(Throttled { wait }));
                    }
                    Err("the service is gone".into())
                }
            })
            .retry(RetryPolicy::custom(HonourThrottling).max_attempts(10)),
        )
        .build()?;
    let error = workflow.run(json!({})).await.unwrap_err();
    match &error {
        WorkflowError::StepFailed {
            attempts, source, ..
        } => {
            assert_eq!(*attempts, 2, "an error that is not throttling is final");
            assert_eq!(source.to_string(), "the service is gone");
        }
        other => panic!("unexpected error: {other}"),
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[1].info.last_error.as_deref(),
        Some("throttled for 40 ms")
    );
    let waited = seen[1].entered_at.duration_since(seen[0].entered_at)?;
    assert!(waited >= Duration::from_millis(40), "waited {waited:?}");
    Ok(())
}

/// `max_total_delay` counts wall-clock time from the first attempt, the attempts' own included:
/// a slow first attempt uses the budget up, a quick one leaves room for a retry.
#[tokio::test]
async fn max_total_delay_counts_the_attempts_own_time() -> anyhow::Result<()> {
    let run = |first_takes: Duration| async move {
        let seen = Attempts::default();
        let record = seen.clone();
        let workflow = Workflow::builder("budget")
            .step(
                Step::new("call", move |ctx: Context, _: StartEvent| {
                    let record = record.clone();
                    async move {
                        let info = ctx.retry_info();
                        let attempt = info.attempt;
                        record.lock().unwrap().push(Attempt {
                            info,
                            entered_at: SystemTime::now(),
                            failed_at: None,
                        });
                        if attempt == 1 {
                            tokio::time::sleep(first_takes).await;
                            return Err::<StopEvent, BoxError>("slow and wrong".into());
                        }
                        Ok(StopEvent::new(attempt))
                    }
                })
                .retry(
                    RetryPolicy::fixed(Duration::from_millis(10))
                        .max_attempts(5)
                        .max_total_delay(Duration::from_millis(300)),
                ),
            )
            .build()
            .unwrap();
        let result = workflow.run(json!({})).await;
        let attempts = seen.lock().unwrap().len();
        (result, attempts)
    };
    let (result, attempts) = run(Duration::from_millis(400)).await;
    assert!(
        matches!(result, Err(WorkflowError::StepFailed { attempts: 1, .. })),
        "{result:?}"
    );
    assert_eq!(attempts, 1);
    let (result, attempts) = run(Duration::ZERO).await;
    assert_eq!(result?.result::<u32>()?, 2);
    assert_eq!(attempts, 2);
    Ok(())
}

/// A workflow written with the macros, its policy a chain: `retry = ...` takes any expression
/// that makes a `RetryPolicy`.
struct Chained {
    attempts: Attempts,
}

#[workflow]
impl Chained {
    #[step(retry = RetryPolicy::fixed(Duration::ZERO)
        .max_attempts(2)
        .then(RetryPolicy::fixed(Duration::from_millis(20)).max_attempts(3)))]
    async fn call(&self, ctx: &Context, _ev: StartEvent) -> Result<StopEvent> {
        let info = ctx.retry_info();
        let attempt = info.attempt;
        self.attempts.lock().unwrap().push(Attempt {
            info,
            entered_at: SystemTime::now(),
            failed_at: (attempt < 4).then(SystemTime::now),
        });
        if attempt < 4 {
            return Err(format!("chained #{attempt}").into());
        }
        Ok(StopEvent::new(attempt))
    }
}

#[tokio::test]
async fn a_chained_policy_in_a_macro_step_retries_through_both_parts() -> anyhow::Result<()> {
    let attempts = Attempts::default();
    let workflow = Chained {
        attempts: attempts.clone(),
    }
    .into_workflow()?;
    let output = workflow.run(json!({})).await?;
    // 2 + 3 - 1 attempts in all: the fourth succeeds.
    assert_eq!(output.result::<u32>()?, 4);
    let attempts = attempts.lock().unwrap().clone();
    assert_told_the_truth(&attempts, "chained");
    // The first part retries at once, the second after 20 ms.
    let gap = |n: usize| {
        attempts[n]
            .entered_at
            .duration_since(attempts[n - 1].entered_at)
    };
    assert!(gap(2)? >= Duration::from_millis(20), "{:?}", gap(2));
    assert!(gap(3)? >= Duration::from_millis(20), "{:?}", gap(3));
    Ok(())
}

/// The lease of the durable tests' workers: a crashed worker's run is claimed this long after
/// its last heartbeat.
const LEASE_TTL: Duration = Duration::from_millis(600);

/// How the first worker stops while its run's retry waits.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// `Engine::shutdown`: the run is handed back, with a snapshot of its state.
    HandBack,
    /// Its runtime is dropped mid-wait, as a killed process stops: nothing more is written, and
    /// the next worker rebuilds the run from the journal alone once the lease expires.
    Crash,
}

/// The workflow of the durable tests: `call` fails twice, its retries 300 ms apart.
fn upstream(attempts: &Attempts) -> Workflow {
    Workflow::builder("upstream")
        .step(
            flaky("call", "upstream down", 3, attempts.clone())
                .retry(RetryPolicy::fixed(Duration::from_millis(300)).max_attempts(3)),
        )
        .build()
        .unwrap()
}

/// Starts a run on a worker over the SQLite file at `path` and stops that worker as `stop` says
/// once the first attempt's failure is committed (its retry waits 300 ms). Returns the run's id.
fn start_and_stop_mid_retry(path: &std::path::Path, attempts: &Attempts, stop: Stop) -> String {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (failed_tx, failed_rx) = std::sync::mpsc::channel();
    let failed_tx = Mutex::new(failed_tx);
    let run_id = runtime.block_on(async {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(path).await.unwrap());
        let engine = Engine::builder(store)
            .poll_interval(Duration::from_millis(50))
            .lease_ttl(LEASE_TTL)
            .workflow(upstream(attempts))
            .on_commit(move |commit: &CommitInfo| {
                if commit.completed.iter().any(|c| c.failed && c.attempt == 1) {
                    let _ = failed_tx.lock().unwrap().send(());
                }
            })
            .start()
            .await
            .unwrap();
        let run_id = engine.start("upstream", StartEvent::new()).await.unwrap();
        let committed =
            tokio::task::spawn_blocking(move || failed_rx.recv_timeout(Duration::from_secs(10)));
        committed
            .await
            .unwrap()
            .expect("the first failure is committed");
        if let Stop::HandBack = stop {
            engine.shutdown().await;
        }
        run_id
    });
    // Dropping the runtime drops every task of the engine where it stands.
    drop(runtime);
    assert_eq!(attempts.lock().unwrap().len(), 1, "stopped mid-retry");
    run_id
}

/// A durable run on a SQLite file: the first attempt fails and its worker stops while the retry
/// waits; a new worker (a new engine on the same file, as after a restart) rebuilds the run, and
/// the retry it runs knows its number, the first attempt's error and when it failed. The later
/// retry, decided by the new worker, knows the second's.
async fn a_durable_retry_resumed_by_a_new_worker(stop: Stop) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("runs.db");
    let attempts = Attempts::default();
    let first = {
        let (path, attempts) = (path.clone(), attempts.clone());
        std::thread::spawn(move || start_and_stop_mid_retry(&path, &attempts, stop))
    };
    let run_id = tokio::task::spawn_blocking(move || first.join().unwrap()).await?;

    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).await?);
    // The same lease TTL: a claimer judges the first worker's heartbeat by its own TTL.
    let second = Engine::builder(store)
        .poll_interval(Duration::from_millis(50))
        .lease_ttl(LEASE_TTL)
        .workflow(upstream(&attempts))
        .start()
        .await?;
    let record = second.wait(&run_id, Some(Duration::from_secs(10))).await?;
    assert_eq!(record.result.unwrap()["value"]["result"], json!(3));
    let attempts = attempts.lock().unwrap().clone();
    assert_told_the_truth(&attempts, "upstream down");
    second.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_durable_retry_handed_to_a_new_worker_knows_the_attempts_before_it() -> anyhow::Result<()>
{
    a_durable_retry_resumed_by_a_new_worker(Stop::HandBack).await
}

#[tokio::test]
async fn a_durable_retry_recovered_after_a_crash_knows_the_attempts_before_it() -> anyhow::Result<()>
{
    a_durable_retry_resumed_by_a_new_worker(Stop::Crash).await
}

/// A policy that panics.
struct Broken;

impl Retry for Broken {
    fn next(&self, _attempt: u32, _elapsed: Duration, _error: &StepError) -> Option<Duration> {
        panic!("the policy has a bug")
    }
}

/// A panicking policy ends the retries and the run fails with the step's error, instead of the
/// run waiting forever for a completion its step's task never sent.
#[tokio::test]
async fn a_panicking_policy_fails_the_run_with_the_steps_error() -> anyhow::Result<()> {
    let workflow = Workflow::builder("broken")
        .step(
            Step::new("call", |_: StartEvent| async {
                Err::<StopEvent, BoxError>("down".into())
            })
            .retry(RetryPolicy::custom(Broken)),
        )
        .build()?;
    let result = tokio::time::timeout(Duration::from_secs(5), workflow.run(json!({}))).await?;
    match result {
        Err(WorkflowError::StepFailed {
            attempts, source, ..
        }) => {
            assert_eq!(attempts, 1);
            assert_eq!(source.to_string(), "down");
        }
        other => panic!("unexpected: {other:?}"),
    }
    Ok(())
}
