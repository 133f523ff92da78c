//! `num_concurrent_runs`: runs over a workflow's bound wait for a slot, queued, not refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use eventflow::prelude::*;
use tokio::sync::Semaphore;

/// Counts the runs inside its step at once (`inside`, peak in `peak`); each run leaves when the
/// gate gives it a permit.
fn gated(gate: Arc<Semaphore>, inside: Arc<AtomicUsize>, peak: Arc<AtomicUsize>) -> Workflow {
    Workflow::builder("gated")
        .add_step("work", move |ctx: Context, _: StartEvent| {
            let (gate, inside, peak) = (gate.clone(), inside.clone(), peak.clone());
            async move {
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                gate.acquire().await?.forget();
                inside.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, BoxError>(StopEvent::new(ctx.run_id().to_owned()))
            }
        })
        .build()
        .unwrap()
}

/// Waits (2 s at most) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_over_the_bound_are_queued_then_run_as_slots_free() {
    let gate = Arc::new(Semaphore::new(0));
    let (inside, peak) = (Arc::default(), Arc::default());
    let workflow =
        gated(gate.clone(), Arc::clone(&inside), Arc::clone(&peak)).num_concurrent_runs(2);
    assert_eq!(workflow.concurrent_runs_limit(), Some(2));
    let handlers: Vec<WorkflowHandler> = (0..5).map(|_| workflow.run(json!({}))).collect();
    until("two runs inside", || inside.load(Ordering::SeqCst) == 2).await;
    until("three runs queued", || {
        handlers.iter().filter(|h| h.is_queued()).count() == 3
    })
    .await;
    // Nothing more starts while both slots are taken.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(inside.load(Ordering::SeqCst), 2);
    gate.add_permits(5);
    for handler in handlers {
        let run_id = handler.run_id().to_owned();
        assert_eq!(handler.await.unwrap().result::<String>().unwrap(), run_id);
    }
    assert_eq!(
        peak.load(Ordering::SeqCst),
        2,
        "never more than the bound at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_run_can_be_cancelled_and_takes_no_slot() {
    let gate = Arc::new(Semaphore::new(0));
    let (inside, peak) = (Arc::default(), Arc::default());
    let workflow =
        gated(gate.clone(), Arc::clone(&inside), Arc::clone(&peak)).num_concurrent_runs(1);
    let running = workflow.run(json!({}));
    until("one run inside", || inside.load(Ordering::SeqCst) == 1).await;
    let queued = workflow.run(json!({}));
    let after = workflow.run(json!({}));
    until("two queued", || queued.is_queued() && after.is_queued()).await;
    queued.cancel();
    assert!(matches!(queued.await, Err(WorkflowError::Cancelled)));
    gate.add_permits(2);
    running.await.unwrap();
    after.await.unwrap();
    assert_eq!(peak.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_sent_to_a_queued_run_is_kept_for_it() {
    let workflow = Workflow::builder("ask")
        .add_step("ask", |ctx: Context, _: StartEvent| async move {
            let answer = ctx.wait_for_event::<HumanResponseEvent>().await?;
            Ok::<_, BoxError>(StopEvent::new(answer.response))
        })
        .build()
        .unwrap()
        .num_concurrent_runs(1);
    let first = workflow.run(json!({}));
    let second = workflow.run(json!({}));
    until("the second run queued", || second.is_queued()).await;
    second.send_event(HumanResponseEvent::new("early")).unwrap();
    first.send_event(HumanResponseEvent::new("first")).unwrap();
    assert_eq!(first.await.unwrap().result::<String>().unwrap(), "first");
    assert_eq!(second.await.unwrap().result::<String>().unwrap(), "early");
}
