//! Durable runs in one process: journal, release while waiting, inbox, idempotency, events.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use eventflow::durable::{Engine, StartOptions};
use eventflow::prelude::*;
use eventflow::store::{MemoryStore, RunStatus, Sent, Store};
use futures::StreamExt;

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Count {
    n: u32,
}

fn counter() -> Workflow {
    Workflow::builder("counter")
        .add_step("begin", |ev: StartEvent| async move {
            let to: u32 = ev.get("to")?;
            Ok::<_, BoxError>(Count { n: to })
        })
        .add_step("count", |ctx: Context, ev: Count| async move {
            ctx.set("last", ev.n)?;
            ctx.write_event_to_stream(Count { n: ev.n });
            if ev.n == 0 {
                Ok::<_, BoxError>(Next::Done(StopEvent::new("done")))
            } else {
                Ok(Next::Again(Count { n: ev.n - 1 }))
            }
        })
        .build()
        .unwrap()
}

#[derive(EventUnion)]
enum Next {
    Again(Count),
    Done(StopEvent),
}

fn approval() -> Workflow {
    Workflow::builder("approval")
        .add_step("ask", |ctx: Context, _: StartEvent| async move {
            let answer = ctx
                .wait_for_event::<HumanResponseEvent>()
                .prompt(InputRequiredEvent::new("approve?"))
                .await?;
            Ok::<_, BoxError>(StopEvent::new(format!("answer: {}", answer.response)))
        })
        .build()
        .unwrap()
}

async fn engine(store: Arc<dyn Store>, workflows: Vec<Workflow>) -> Engine {
    let mut builder = Engine::builder(store).poll_interval(Duration::from_millis(50));
    for workflow in workflows {
        builder = builder.workflow(workflow);
    }
    builder.start().await.unwrap()
}

#[tokio::test]
async fn a_run_finishes_with_its_events_in_sequence() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let engine = engine(store, vec![counter()]).await;
    let run_id = engine.start("counter", json!({"to": 3})).await.unwrap();
    let record = engine
        .wait(&run_id, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(record.result.unwrap()["value"]["result"], json!("done"));
    let events = events_after(&engine, &run_id, 0).await;
    let seqs: Vec<u64> = events.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    let names: Vec<&str> = events.iter().map(|(_, name)| name.as_str()).collect();
    assert_eq!(names, ["Count", "Count", "Count", "Count", "StopEvent"]);
    // Resuming after any sequence gives the rest.
    let rest: Vec<u64> = events_after(&engine, &run_id, 3)
        .await
        .into_iter()
        .map(|(seq, _)| seq)
        .collect();
    assert_eq!(rest, [4, 5]);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_waiting_run_is_released_and_the_answer_completes_it() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("eventflow=debug")
        .try_init();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let engine = engine(store.clone(), vec![approval()]).await;
    let run_id = engine.start("approval", StartEvent::new()).await.unwrap();
    // The run asks, then holds no memory and no lease.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let record = engine.record(&run_id).await.unwrap();
        if record.status == RunStatus::Waiting {
            assert_eq!(record.owner, None);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never released");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(engine.active_runs().is_empty());
    let sent = engine
        .send_event(&run_id, "answer-1", HumanResponseEvent::new("yes"))
        .await
        .unwrap();
    assert_eq!(sent, Sent::Accepted);
    let again = engine
        .send_event(&run_id, "answer-1", HumanResponseEvent::new("no"))
        .await
        .unwrap();
    assert_eq!(again, Sent::Duplicate);
    let record = engine
        .wait(&run_id, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(
        record.result.unwrap()["value"]["result"],
        json!("answer: yes")
    );
    // The question was asked once: the re-run after the release found its answer waiting.
    let names = event_names(&engine, &run_id).await;
    assert_eq!(names, ["InputRequiredEvent", "StopEvent"]);
    engine.shutdown().await;
}

/// Promise 5: an event sent to a released run wakes it through the store's signal, not at the
/// worker's next poll (here a minute away).
#[tokio::test]
async fn a_sent_answer_wakes_a_released_run_without_a_poll() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let engine = Engine::builder(store)
        .poll_interval(Duration::from_secs(60))
        .workflow(approval())
        .start()
        .await
        .unwrap();
    let run_id = engine.start("approval", StartEvent::new()).await.unwrap();
    until_waiting(&engine, &run_id).await;
    engine
        .send_event(&run_id, "answer-1", HumanResponseEvent::new("yes"))
        .await
        .unwrap();
    let record = engine
        .wait(&run_id, Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(record.status, RunStatus::Completed);
    engine.shutdown().await;
}

#[tokio::test]
async fn an_answer_sent_before_the_wait_is_kept() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let slow = Workflow::builder("slow")
        .add_step("ask", |ctx: Context, _: StartEvent| async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let answer = ctx
                .wait_for_event::<HumanResponseEvent>()
                .prompt(InputRequiredEvent::new("approve?"))
                .await?;
            Ok::<_, BoxError>(StopEvent::new(answer.response))
        })
        .build()
        .unwrap();
    let engine = engine(store, vec![slow]).await;
    let run_id = engine.start("slow", StartEvent::new()).await.unwrap();
    engine
        .send_event(&run_id, "early", HumanResponseEvent::new("early"))
        .await
        .unwrap();
    let record = engine
        .wait(&run_id, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(record.result.unwrap()["value"]["result"], json!("early"));
    let names = event_names(&engine, &run_id).await;
    assert_eq!(
        names,
        ["StopEvent"],
        "the answer was there: no question asked"
    );
    engine.shutdown().await;
}

/// Published by `tally` each time it takes an answer: how many it holds.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Tallied {
    answers: usize,
}

/// Asks once, then collects two answers before it stops with both, in arrival order.
fn two_answers() -> Workflow {
    Workflow::builder("two_answers")
        .add_step("ask", |_: StartEvent| async {
            Ok::<_, BoxError>(InputRequiredEvent::new("two answers, please"))
        })
        .add_step("tally", |ctx: Context, ev: HumanResponseEvent| async move {
            let answers = ctx.collect_events(ev, 2);
            let held = answers.as_ref().map_or(1, Vec::len);
            ctx.write_event_to_stream(Tallied { answers: held });
            Ok::<_, BoxError>(answers.map(|all| {
                let texts: Vec<String> = all.into_iter().map(|a| a.response).collect();
                StopEvent::new(texts.join(","))
            }))
        })
        .build()
        .unwrap()
}

/// The sequence and name of every event `run_id` published after `after`, read until the run
/// finishes (10 s at most: a reader that never ends fails here instead of hanging the suite).
async fn events_after(engine: &Engine, run_id: &str, after: u64) -> Vec<(u64, String)> {
    let events = engine
        .events(run_id, after)
        .map(|e| e.unwrap())
        .map(|e| (e.seq, e.event.name))
        .collect();
    tokio::time::timeout(Duration::from_secs(10), events)
        .await
        .expect("the run's event stream did not end")
}

/// The names of every event `run_id` published, once it has finished.
async fn event_names(engine: &Engine, run_id: &str) -> Vec<String> {
    let events = events_after(engine, run_id, 0).await;
    events.into_iter().map(|(_, name)| name).collect()
}

/// The names of the events `run_id` published, as far as `count` of them (10 s at most).
async fn first_events(engine: &Engine, run_id: &str, count: usize) -> Vec<String> {
    let events = engine
        .events(run_id, 0)
        .take(count)
        .map(|e| e.unwrap().event.name)
        .collect();
    tokio::time::timeout(Duration::from_secs(10), events)
        .await
        .expect("the run published its events")
}

/// Waits (5 s at most) until the run is released to `Waiting` with no owner.
async fn until_waiting(engine: &Engine, run_id: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let record = engine.record(run_id).await.unwrap();
        if record.status == RunStatus::Waiting && record.owner.is_none() {
            return;
        }
        assert!(
            !record.status.is_terminal() && tokio::time::Instant::now() < deadline,
            "not released to waiting: {record:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Promise 4: an answer sent once is consumed once, although the run goes on reading its inbox
/// (released, woken, claimed again) while it waits for a second one.
#[tokio::test]
async fn an_answer_is_consumed_at_most_once() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let engine = engine(store, vec![two_answers()]).await;
    let run_id = engine
        .start("two_answers", StartEvent::new())
        .await
        .unwrap();
    until_waiting(&engine, &run_id).await;
    let sent = engine
        .send_event(&run_id, "answer-a", HumanResponseEvent::new("a"))
        .await
        .unwrap();
    assert_eq!(sent, Sent::Accepted);
    assert_eq!(
        first_events(&engine, &run_id, 2).await,
        ["InputRequiredEvent", "Tallied"]
    );
    // Taken once, the run is released again; polls and wake-ups go on for ten intervals and
    // find nothing new to read.
    until_waiting(&engine, &run_id).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let record = engine.record(&run_id).await.unwrap();
    assert_eq!(record.status, RunStatus::Waiting, "{record:?}");
    engine
        .send_event(&run_id, "answer-b", HumanResponseEvent::new("b"))
        .await
        .unwrap();
    let record = engine
        .wait(&run_id, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(record.result.unwrap()["value"]["result"], json!("a,b"));
    let names = event_names(&engine, &run_id).await;
    assert_eq!(
        names,
        ["InputRequiredEvent", "Tallied", "Tallied", "StopEvent"]
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_run() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let engine = engine(store, vec![counter()]).await;
    let options = || StartOptions {
        idempotency_key: Some("order-17".into()),
        ..StartOptions::default()
    };
    let first = engine
        .start_with("counter", json!({"to": 1}), options())
        .await
        .unwrap();
    let second = engine
        .start_with("counter", json!({"to": 1}), options())
        .await
        .unwrap();
    assert!(!first.existing);
    assert!(second.existing);
    assert_eq!(first.run_id, second.run_id);
    engine.shutdown().await;
}

#[tokio::test]
async fn cancel_reaches_a_waiting_run_and_is_idempotent() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let engine = engine(store, vec![approval()]).await;
    let run_id = engine.start("approval", StartEvent::new()).await.unwrap();
    // The run asked its question and was released: it waits, in the store only.
    until_waiting(&engine, &run_id).await;
    assert_eq!(
        first_events(&engine, &run_id, 1).await,
        ["InputRequiredEvent"]
    );
    assert!(engine.active_runs().is_empty());
    engine.cancel(&run_id).await.unwrap();
    let record = engine
        .wait(&run_id, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(record.status, RunStatus::Cancelled);
    assert_eq!(engine.cancel(&run_id).await.unwrap(), RunStatus::Cancelled);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_failing_step_fails_the_run_with_its_name() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let attempts = Arc::new(AtomicU32::new(0));
    let seen = attempts.clone();
    let failing = Workflow::builder("failing")
        .step(
            Step::new("flaky", move |_: StartEvent| {
                let seen = seen.clone();
                async move {
                    seen.fetch_add(1, Ordering::SeqCst);
                    Err::<StopEvent, BoxError>("no luck".into())
                }
            })
            .retry(RetryPolicy::fixed(Duration::from_millis(10)).max_attempts(3)),
        )
        .build()
        .unwrap();
    let engine = engine(store, vec![failing]).await;
    let run_id = engine.start("failing", StartEvent::new()).await.unwrap();
    let record = engine
        .wait(&run_id, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.unwrap();
    assert!(
        error.contains("flaky") && error.contains("no luck"),
        "{error}"
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    engine.shutdown().await;
}

/// Runs `test` on a runtime of its own in another thread, and fails if it takes longer than
/// `limit`: a run loop that spins (instead of handing its run back, say) can starve every timer
/// of its runtime, so only a watchdog outside it turns the hang into a failure.
fn within<F>(limit: Duration, test: impl FnOnce() -> F + Send + 'static)
where
    F: std::future::Future<Output = ()>,
{
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(test());
        let _ = done.send(());
    });
    match finished.recv_timeout(limit) {
        Ok(()) => {}
        // The thread panicked: the test failed, and its message is printed above.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("the test failed"),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("the test did not finish within {limit:?}")
        }
    }
}

#[test]
fn a_shut_down_worker_hands_its_runs_to_another() {
    within(
        Duration::from_secs(60),
        shut_down_worker_hands_its_runs_to_another,
    );
}

async fn shut_down_worker_hands_its_runs_to_another() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let runs = Arc::new(AtomicU32::new(0));
    let make = |gate: Arc<tokio::sync::Semaphore>, runs: Arc<AtomicU32>| {
        Workflow::builder("gated")
            .add_step("wait", move |ctx: Context, _: StartEvent| {
                let gate = gate.clone();
                let runs = runs.clone();
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    ctx.set("key", ctx.step_key())?;
                    let _permit = gate.acquire().await?;
                    Ok::<_, BoxError>(StopEvent::new(ctx.step_key()))
                }
            })
            .build()
            .unwrap()
    };
    let first = engine(
        store.clone(),
        vec![make(Arc::new(tokio::sync::Semaphore::new(0)), runs.clone())],
    )
    .await;
    let run_id = first.start("gated", StartEvent::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    first.shutdown().await;
    let record = store.get_run(&run_id).await.unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Running);
    assert_eq!(record.owner, None);
    gate.add_permits(1);
    let second = engine(store, vec![make(gate, runs.clone())]).await;
    let record = second
        .wait(&run_id, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "the interrupted step ran again"
    );
    assert_eq!(record.recoveries, 0, "a hand-back is not a recovery");
    second.shutdown().await;
}

#[tokio::test]
async fn a_run_waiting_for_a_distant_retry_holds_no_lease_until_it_is_due() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let attempts = Arc::new(AtomicU32::new(0));
    let seen = attempts.clone();
    let flaky = Workflow::builder("flaky")
        .step(
            Step::new("call", move |ctx: Context, _: StartEvent| {
                let seen = seen.clone();
                async move {
                    seen.fetch_add(1, Ordering::SeqCst);
                    if ctx.attempt() == 1 {
                        return Err::<StopEvent, BoxError>("rate limited".into());
                    }
                    Ok(StopEvent::new(ctx.attempt()))
                }
            })
            .retry(RetryPolicy::fixed(Duration::from_millis(2500)).max_attempts(2)),
        )
        .build()
        .unwrap();
    let engine = engine(store, vec![flaky]).await;
    let started = tokio::time::Instant::now();
    let run_id = engine.start("flaky", StartEvent::new()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let record = engine.record(&run_id).await.unwrap();
    assert_eq!(record.status, RunStatus::Waiting);
    assert_eq!(record.owner, None);
    assert!(engine.active_runs().is_empty());
    let record = engine
        .wait(&run_id, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(record.result.unwrap()["value"]["result"], json!(2));
    assert!(started.elapsed() >= Duration::from_millis(2500));
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    engine.shutdown().await;
}

/// JSON cannot hold a map with non-string keys: such an event cannot be journaled.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Unjournalable {
    map: std::collections::HashMap<Vec<u8>, u32>,
}

#[tokio::test]
async fn an_event_that_cannot_be_journaled_fails_the_run_naming_it() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let workflow = Workflow::builder("unjournalable")
        .add_step("make", |_: StartEvent| async {
            Ok::<_, BoxError>(Unjournalable {
                map: [(vec![1u8], 1)].into_iter().collect(),
            })
        })
        .add_step("take", |_: Unjournalable| async {
            Ok::<_, BoxError>(StopEvent::new("unreachable"))
        })
        .build()
        .unwrap();
    let engine = engine(store, vec![workflow]).await;
    let run_id = engine
        .start("unjournalable", StartEvent::new())
        .await
        .unwrap();
    let record = engine
        .wait(&run_id, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.unwrap();
    assert!(error.contains("cannot be journaled"), "{error}");
    assert!(error.contains("step `make`"), "{error}");
    engine.shutdown().await;
}

/// Writes along a dotted path and `clear` are journaled like any state write: a continued run
/// (rebuilt from the journal) reads what the earlier runs left.
#[tokio::test]
async fn state_paths_and_clear_survive_a_rebuild() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let profile = Workflow::builder("profile")
        .add_step("visit", |ctx: Context, ev: StartEvent| async move {
            // The typed state counts the runs since the last clear; a clearing run leaves it
            // cleared (journaled as such, not as a value).
            let runs = if ev.get::<bool>("clear").unwrap_or(false) {
                ctx.clear()?;
                0
            } else {
                ctx.edit_state(|runs: &mut u32| {
                    *runs += 1;
                    *runs
                })?
            };
            let visits: u32 = ctx.get_or("user.visits", 0)? + 1;
            ctx.set("user.visits", visits)?;
            if visits == 1 {
                ctx.set("user.name", ev.get::<String>("who")?)?;
            }
            let name: Option<String> = ctx.get("user.name").ok();
            Ok::<_, BoxError>(StopEvent::new(
                json!({"visits": visits, "name": name, "runs": runs}),
            ))
        })
        .build()
        .unwrap();
    let engine = engine(store, vec![profile]).await;
    let mut run_id = None;
    let mut results = Vec::new();
    for start in [
        json!({"who": "ada"}),
        json!({"who": "bob"}),
        json!({"who": "cy", "clear": true}),
        json!({"who": "dee"}),
    ] {
        let options = StartOptions {
            run_id: run_id.clone(),
            continue_finished: run_id.is_some(),
            ..StartOptions::default()
        };
        let started = engine.start_with("profile", start, options).await.unwrap();
        let record = engine
            .wait(&started.run_id, Some(Duration::from_secs(10)))
            .await
            .unwrap();
        results.push(record.result.unwrap()["value"]["result"].clone());
        run_id = Some(started.run_id);
    }
    assert_eq!(
        results,
        [
            json!({"visits": 1, "name": "ada", "runs": 1}),
            json!({"visits": 2, "name": "ada", "runs": 2}),
            json!({"visits": 1, "name": "cy", "runs": 0}),
            // Rebuilt from the journal: the clear of the run before holds for both states.
            json!({"visits": 2, "name": "cy", "runs": 1}),
        ]
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_finished_run_continues_under_its_id_with_its_state() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let visits = Workflow::builder("visits")
        .add_step("visit", |ctx: Context, ev: StartEvent| async move {
            let who: String = ev.get("who")?;
            let count: u32 = ctx.get_or("visits", 0)? + 1;
            ctx.set("visits", count)?;
            ctx.write_event_to_stream(Count { n: count });
            Ok::<_, BoxError>(StopEvent::new(format!("{who}: visit {count}")))
        })
        .build()
        .unwrap();
    let engine = engine(store, vec![visits]).await;
    let first = engine
        .start_with("visits", json!({"who": "ada"}), StartOptions::default())
        .await
        .unwrap();
    engine
        .wait(&first.run_id, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    let again = StartOptions {
        run_id: Some(first.run_id.clone()),
        continue_finished: true,
        ..StartOptions::default()
    };
    let second = engine
        .start_with("visits", json!({"who": "ada"}), again.clone())
        .await
        .unwrap();
    assert_eq!(second.run_id, first.run_id);
    assert_eq!(
        second.after_seq, 2,
        "the first run published Count and StopEvent"
    );
    let record = engine
        .wait(&first.run_id, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(
        record.result.unwrap()["value"]["result"],
        json!("ada: visit 2")
    );
    let new_events = events_after(&engine, &first.run_id, second.after_seq).await;
    assert_eq!(
        new_events,
        [(3, "Count".to_owned()), (4, "StopEvent".to_owned())]
    );
    // Without `continue_finished`, the id is taken.
    let refused = engine
        .start_with(
            "visits",
            json!({"who": "ada"}),
            StartOptions {
                run_id: Some(first.run_id.clone()),
                ..StartOptions::default()
            },
        )
        .await;
    assert!(refused.is_err());
    engine.shutdown().await;
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Work {
    n: u64,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Done {
    n: u64,
}

/// Scatters `items` `Work` events to four workers and gathers their `Done` events; each
/// finished `work` invocation counts in `done`.
fn fan_out(items: u64, done: Arc<AtomicU32>) -> Workflow {
    Workflow::builder("fan_out")
        .step(
            Step::new("scatter", move |ctx: Context, _: StartEvent| async move {
                for n in 1..=items {
                    ctx.send_event(Work { n })?;
                }
                Ok::<_, BoxError>(())
            })
            .emits::<Work>(),
        )
        .step(
            Step::new("work", move |w: Work| {
                let done = done.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(15)).await;
                    done.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, BoxError>(Done { n: w.n })
                }
            })
            .num_workers(4),
        )
        .add_step("gather", move |ctx: Context, done: Done| async move {
            let Some(all) = ctx.collect_events(done, items as usize) else {
                return Ok::<_, BoxError>(None);
            };
            let sum: u64 = all.iter().map(|d| d.n).sum();
            Ok(Some(StopEvent::new(
                json!({"sum": sum, "count": all.len()}),
            )))
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_in_handed_over_mid_way_collects_every_event_once() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let items: u64 = 40;
    let workers = 4;
    let done_first = Arc::new(AtomicU32::new(0));
    let first = Engine::builder(store.clone())
        .workflow(fan_out(items, done_first.clone()))
        .poll_interval(Duration::from_millis(50))
        .snapshot_every(7)
        .start()
        .await
        .unwrap();
    let run_id = first.start("fan_out", StartEvent::new()).await.unwrap();
    // Hand over once the first worker has finished a fifth of the work.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while done_first.load(Ordering::SeqCst) < 8 {
        assert!(tokio::time::Instant::now() < deadline, "no work was done");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    first.shutdown().await;
    let done_before = u64::from(done_first.load(Ordering::SeqCst));
    let record = store.get_run(&run_id).await.unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Running, "handed back mid-way");
    assert!(done_before < items, "handed back before the end");
    let done_second = Arc::new(AtomicU32::new(0));
    let second = Engine::builder(store)
        .workflow(fan_out(items, done_second.clone()))
        .poll_interval(Duration::from_millis(50))
        .snapshot_every(7)
        .start()
        .await
        .unwrap();
    let record = second
        .wait(&run_id, Some(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(record.status, RunStatus::Completed, "{record:?}");
    let result = &record.result.unwrap()["value"]["result"];
    assert_eq!(result["count"], json!(items));
    assert_eq!(result["sum"], json!(items * (items + 1) / 2));
    // The work finished before the hand-over is not done again; at most the invocations in
    // flight at the hand-over (one per worker) finished without their completion committed.
    let done_after = u64::from(done_second.load(Ordering::SeqCst));
    assert!(
        done_after <= items - done_before + workers,
        "{done_before} done before the hand-over, {done_after} after, of {items}"
    );
    second.shutdown().await;
}

/// The attempts and keys a step saw, in order.
type Seen = Arc<std::sync::Mutex<Vec<(u32, String)>>>;

/// Promise 3: a step interrupted by a hand-over runs again with the attempt number and the key it
/// had. Its first attempt fails; its second is handed over mid-way and runs again on the next
/// worker, still as the second attempt, under the key of the first.
#[tokio::test]
async fn a_step_run_again_after_a_hand_over_keeps_its_attempt_and_key() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let seen: Seen = Arc::default();
    let make = |gate: Arc<tokio::sync::Semaphore>, seen: Seen| {
        Workflow::builder("retried")
            .step(
                Step::new("call", move |ctx: Context, _: StartEvent| {
                    let gate = gate.clone();
                    let seen = seen.clone();
                    async move {
                        seen.lock().unwrap().push((ctx.attempt(), ctx.step_key()));
                        if ctx.attempt() == 1 {
                            return Err::<StopEvent, BoxError>("try again".into());
                        }
                        let _permit = gate.acquire().await?;
                        Ok(StopEvent::new(ctx.attempt()))
                    }
                })
                .retry(RetryPolicy::fixed(Duration::from_millis(10)).max_attempts(3)),
            )
            .build()
            .unwrap()
    };
    let shut = Arc::new(tokio::sync::Semaphore::new(0));
    let first = engine(store.clone(), vec![make(shut, seen.clone())]).await;
    let run_id = first.start("retried", StartEvent::new()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no second attempt");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.shutdown().await;
    let open = Arc::new(tokio::sync::Semaphore::new(1));
    let second = engine(store, vec![make(open, seen.clone())]).await;
    let record = second
        .wait(&run_id, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(record.result.unwrap()["value"]["result"], json!(2));
    let seen = seen.lock().unwrap().clone();
    let attempts: Vec<u32> = seen.iter().map(|(attempt, _)| *attempt).collect();
    assert_eq!(
        attempts,
        [1, 2, 2],
        "the second attempt ran again as the second"
    );
    assert!(
        seen.iter().all(|(_, key)| *key == seen[0].1),
        "one key for every attempt and re-run: {seen:?}"
    );
    second.shutdown().await;
}

/// Promise 3: a step's key names its input event: two inputs of one step have two keys.
#[tokio::test]
async fn a_step_key_names_the_input() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let keys = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = keys.clone();
    let workflow = Workflow::builder("keys")
        .step(
            Step::new("scatter", |ctx: Context, _: StartEvent| async move {
                ctx.send_event(Work { n: 1 })?;
                ctx.send_event(Work { n: 2 })?;
                Ok::<_, BoxError>(())
            })
            .emits::<Work>(),
        )
        .add_step("work", move |ctx: Context, w: Work| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(ctx.step_key());
                Ok::<_, BoxError>(Done { n: w.n })
            }
        })
        .add_step("gather", |ctx: Context, done: Done| async move {
            Ok::<_, BoxError>(ctx.collect_events(done, 2).map(|_| StopEvent::new("done")))
        })
        .build()
        .unwrap();
    let engine = engine(store, vec![workflow]).await;
    let run_id = engine.start("keys", StartEvent::new()).await.unwrap();
    let record = engine
        .wait(&run_id, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(record.status, RunStatus::Completed, "{record:?}");
    let keys = keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_ne!(keys[0], keys[1], "two inputs, two keys");
    engine.shutdown().await;
}

/// Promise 4: an answer a step had taken when its run was handed over is not lost: the step runs
/// again on the next worker and its wait receives the same answer.
#[tokio::test]
async fn an_answer_taken_before_a_hand_over_is_received_again() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let received = Arc::new(AtomicU32::new(0));
    let make = |gate: Arc<tokio::sync::Semaphore>, received: Arc<AtomicU32>| {
        Workflow::builder("approve_then_work")
            .add_step("ask", move |ctx: Context, _: StartEvent| {
                let gate = gate.clone();
                let received = received.clone();
                async move {
                    let answer = ctx.wait_for_event::<HumanResponseEvent>().await?;
                    received.fetch_add(1, Ordering::SeqCst);
                    let _permit = gate.acquire().await?;
                    Ok::<_, BoxError>(StopEvent::new(format!("answer: {}", answer.response)))
                }
            })
            .build()
            .unwrap()
    };
    let shut = Arc::new(tokio::sync::Semaphore::new(0));
    let first = engine(store.clone(), vec![make(shut, received.clone())]).await;
    let run_id = first
        .start("approve_then_work", StartEvent::new())
        .await
        .unwrap();
    first
        .send_event(&run_id, "answer-1", HumanResponseEvent::new("yes"))
        .await
        .unwrap();
    // The step has taken the answer and works on (its gate stays shut): hand the run over.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while received.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the answer was never taken"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.shutdown().await;
    let open = Arc::new(tokio::sync::Semaphore::new(1));
    let second = engine(store, vec![make(open, received.clone())]).await;
    let record = second
        .wait(&run_id, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(record.status, RunStatus::Completed, "{record:?}");
    assert_eq!(
        record.result.unwrap()["value"]["result"],
        json!("answer: yes")
    );
    assert_eq!(
        received.load(Ordering::SeqCst),
        2,
        "the step ran again and received the answer again"
    );
    second.shutdown().await;
}

/// `num_concurrent_runs` on a durable engine: the worker drives at most the bound; the other
/// runs stay in the store with no owner (queued) until a slot frees, and then all finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_workflow_runs_its_bound_at_once_and_queues_the_rest_in_the_store() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let inside = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let workflow = {
        let (gate, inside, peak) = (gate.clone(), inside.clone(), peak.clone());
        Workflow::builder("bounded")
            .add_step("work", move |_: StartEvent| {
                let (gate, inside, peak) = (gate.clone(), inside.clone(), peak.clone());
                async move {
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    gate.acquire().await?.forget();
                    inside.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, BoxError>(StopEvent::new("done"))
                }
            })
            .build()
            .unwrap()
            .num_concurrent_runs(2)
    };
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let engine = engine(store.clone(), vec![workflow]).await;
    let mut runs = Vec::new();
    for _ in 0..5 {
        runs.push(engine.start("bounded", StartEvent::new()).await.unwrap());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while inside.load(Ordering::SeqCst) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "two runs never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A few claim rounds later, still two: the others wait in the store, owned by no worker.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(inside.load(Ordering::SeqCst), 2);
    let mut queued = 0;
    for run_id in &runs {
        let record = store.get_run(run_id).await.unwrap().unwrap();
        assert_eq!(record.status, RunStatus::Running);
        queued += usize::from(record.owner.is_none());
    }
    assert_eq!(queued, 3);
    gate.add_permits(5);
    for run_id in &runs {
        let record = engine
            .wait(run_id, Some(Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(record.status, RunStatus::Completed, "{record:?}");
    }
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    engine.shutdown().await;
}
