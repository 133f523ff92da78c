//! Running: the handler's result, streams, outside events, cancel, timeouts, stalls, children,
//! snapshot and resume.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use eventflow::prelude::*;
use eventflow::{RunCancelledEvent, RunSnapshot, RunTimedOutEvent};
use futures::StreamExt;

#[derive(Event, Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Tick {
    i: u32,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Branch {
    slow: bool,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Review {
    draft: String,
}

fn ticker(count: u32) -> Workflow {
    Workflow::builder("ticker")
        .add_step("tick", move |ctx: Context, _: StartEvent| async move {
            for i in 0..count {
                ctx.write_event_to_stream(Tick { i });
                tokio::task::yield_now().await;
            }
            StopEvent::new(count)
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_subscriber_gets_every_event_in_order_then_one_terminal() -> anyhow::Result<()> {
    let handler = ticker(100).run(json!({}));
    let early = handler.stream_events();
    let early_task = tokio::spawn(early.collect::<Vec<AnyEvent>>());
    let output = {
        let mut middle = handler.stream_events();
        let first = middle.next().await.unwrap();
        assert_eq!(first.downcast_ref::<Tick>(), Some(&Tick { i: 0 }));
        let rest: Vec<AnyEvent> = middle.collect().await;
        assert_eq!(rest.len(), 100);
        handler.stream_events()
    };
    // A subscriber arriving after the end still gets the whole history.
    let late: Vec<AnyEvent> = output.collect().await;
    let early: Vec<AnyEvent> = early_task.await?;
    for events in [&early, &late] {
        assert_eq!(events.len(), 101);
        for (i, event) in events[..100].iter().enumerate() {
            assert_eq!(event.downcast_ref::<Tick>().unwrap().i, i as u32);
        }
        assert!(events[100].is::<StopEvent>());
        assert_eq!(events.iter().filter(|e| e.is_terminal()).count(), 1);
    }
    assert_eq!(handler.await?.result::<u32>()?, 100);
    Ok(())
}

/// The reference's human-in-the-loop workflow: a step asks, the answer comes from outside.
fn review_workflow() -> Workflow {
    #[derive(EventUnion)]
    enum Next {
        Ask(InputRequiredEvent),
        Done(StopEvent),
    }
    Workflow::builder("review")
        .add_step("generate", |ev: StartEvent| async move {
            Ok::<_, BoxError>(Review {
                draft: ev.get("topic")?,
            })
        })
        .add_step("request_review", |ctx: Context, ev: Review| async move {
            ctx.set("draft", &ev.draft)?;
            if ev.draft.len() < 5 {
                return Ok::<_, BoxError>(Next::Done(StopEvent::new(ev.draft)));
            }
            Ok(Next::Ask(InputRequiredEvent::new(format!(
                "Publish '{}'?",
                ev.draft
            ))))
        })
        .add_step(
            "process_review",
            |ctx: Context, ev: HumanResponseEvent| async move {
                let draft: String = ctx.get("draft")?;
                let verdict = if ev.response.eq_ignore_ascii_case("yes") {
                    "published"
                } else {
                    "rejected"
                };
                Ok::<_, BoxError>(StopEvent::new(format!("{draft}: {verdict}")))
            },
        )
        .build()
        .unwrap()
}

/// Reads the run's stream until it asks a question.
async fn wait_for_question(handler: &WorkflowHandler) -> InputRequiredEvent {
    let mut events = handler.stream_events();
    while let Some(event) = events.next().await {
        if let Ok(question) = event.downcast::<InputRequiredEvent>() {
            return question;
        }
    }
    panic!("the run ended without asking");
}

#[tokio::test]
async fn a_human_answers_through_the_handler() -> anyhow::Result<()> {
    let handler = review_workflow().run(json!({"topic": "eventflow"}));
    let mut events = handler.stream_events();
    while let Some(event) = events.next().await {
        if let Some(question) = event.downcast_ref::<InputRequiredEvent>() {
            assert_eq!(question.prefix, "Publish 'eventflow'?");
            handler.send_event(HumanResponseEvent::new("yes"))?;
        }
    }
    assert_eq!(handler.await?.result::<String>()?, "eventflow: published");
    Ok(())
}

#[tokio::test]
async fn cancel_stops_running_steps_and_publishes_the_terminal_event() -> anyhow::Result<()> {
    let finished = Arc::new(AtomicUsize::new(0));
    let flag = finished.clone();
    let workflow = Workflow::builder("long")
        .add_step("long", move |_: StartEvent| {
            let flag = flag.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                flag.fetch_add(1, Ordering::SeqCst);
                StopEvent::new(())
            }
        })
        .build()?;
    let handler = workflow.run(json!({}));
    let events = handler.stream_events();
    tokio::time::sleep(Duration::from_millis(20)).await;
    handler.cancel();
    handler.cancel(); // idempotent
    let events: Vec<AnyEvent> = events.collect().await;
    assert_eq!(events.len(), 1);
    assert!(events[0].is::<RunCancelledEvent>());
    assert!(matches!(handler.await, Err(WorkflowError::Cancelled)));
    assert_eq!(finished.load(Ordering::SeqCst), 0);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_run_timeout_names_the_active_steps() -> anyhow::Result<()> {
    let workflow = Workflow::builder("slow")
        .add_step("start", |_: StartEvent| async { Branch { slow: true } })
        .add_step("crawl", |_: Branch| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StopEvent::new(())
        })
        .build()?
        .timeout(Duration::from_secs(10));
    let handler = workflow.run(json!({}));
    let events = handler.stream_events();
    let error = handler.await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "run timed out after 10s; active steps: crawl"
    );
    let events: Vec<AnyEvent> = events.collect().await;
    let timed_out = events
        .last()
        .unwrap()
        .downcast_ref::<RunTimedOutEvent>()
        .unwrap();
    assert_eq!(timed_out.active_steps, ["crawl"]);
    assert_eq!(timed_out.timeout_ms, 10_000);
    Ok(())
}

#[tokio::test]
async fn a_run_that_can_never_progress_fails_at_once() -> anyhow::Result<()> {
    // The collector waits for 3 events but only 2 are ever produced.
    let workflow = Workflow::builder("short")
        .add_step("split", |_: StartEvent| async {
            vec![Tick { i: 1 }, Tick { i: 2 }]
        })
        .add_step("gather", |ctx: Context, ev: Tick| async move {
            ctx.collect_events(ev, 3).map(|_| StopEvent::new(()))
        })
        .build()?
        .timeout(Duration::from_secs(60));
    let started = std::time::Instant::now();
    let error = workflow.run(json!({})).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "it did not wait for the timeout"
    );
    let message = error.to_string();
    assert!(
        message.starts_with("run stalled: no step is running or queued"),
        "{message}"
    );
    assert!(
        message.contains("step `gather` collected 2 of 3 events (Tick)"),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn a_stop_event_cancels_the_other_steps_and_closes_the_stream() -> anyhow::Result<()> {
    let late_writes = Arc::new(AtomicUsize::new(0));
    let counter = late_writes.clone();
    let workflow = Workflow::builder("race")
        .add_step("start", |_: StartEvent| async {
            vec![Branch { slow: false }, Branch { slow: true }]
        })
        .add_step("branch", move |ctx: Context, ev: Branch| {
            let counter = counter.clone();
            async move {
                if ev.slow {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    counter.fetch_add(1, Ordering::SeqCst);
                    ctx.write_event_to_stream(Tick { i: 99 });
                    return None;
                }
                Some(StopEvent::new("fast"))
            }
        })
        .build()?;
    let handler = workflow.run(json!({}));
    let events = handler.stream_events();
    assert_eq!(handler.await?.result::<String>()?, "fast");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        late_writes.load(Ordering::SeqCst),
        0,
        "the slow branch was cancelled"
    );
    let events: Vec<AnyEvent> = events.collect().await;
    assert_eq!(events.len(), 1);
    assert!(events[0].is::<StopEvent>());
    Ok(())
}

#[tokio::test]
async fn stream_writes_after_the_end_never_reach_the_stream() -> anyhow::Result<()> {
    // A step that outlives the run (it keeps a context clone in a detached task) writes late.
    let workflow = Workflow::builder("leak")
        .add_step("start", |ctx: Context, _: StartEvent| async move {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                ctx.write_event_to_stream(Tick { i: 7 });
            });
            StopEvent::new(())
        })
        .build()?;
    let handler = workflow.run(json!({}));
    handler.stream_events().count().await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    let events: Vec<AnyEvent> = handler.stream_events().collect().await;
    assert_eq!(events.len(), 1);
    handler.await?;
    Ok(())
}

fn child_workflow(started: Arc<AtomicUsize>) -> Workflow {
    Workflow::builder("child")
        .add_step("child_step", move |ctx: Context, ev: StartEvent| {
            let started = started.clone();
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                let n: u32 = ev.get("n")?;
                for i in 0..n {
                    ctx.write_event_to_stream(Tick { i });
                }
                if n > 100 {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                Ok::<_, BoxError>(StopEvent::new(n * 10))
            }
        })
        .build()
        .unwrap()
}

fn parent_workflow(child: Workflow) -> Workflow {
    Workflow::builder("parent")
        .add_step("delegate", move |ctx: Context, ev: StartEvent| {
            let child = child.clone();
            async move {
                let n: u32 = ev.get("n")?;
                let handler = ctx.run_child(&child, json!({ "n": n }));
                ctx.forward_stream(&handler);
                let result: u32 = handler.await?.result()?;
                Ok::<_, BoxError>(StopEvent::new(result + 1))
            }
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_child_run_forwards_its_stream_into_the_parent() -> anyhow::Result<()> {
    let started = Arc::new(AtomicUsize::new(0));
    let parent = parent_workflow(child_workflow(started.clone()));
    let handler = parent.run(json!({"n": 3}));
    let events = handler.stream_events();
    assert_eq!(handler.await?.result::<u32>()?, 31);
    let events: Vec<AnyEvent> = events.collect().await;
    let ticks: Vec<u32> = events
        .iter()
        .filter_map(|e| e.downcast_ref::<Tick>())
        .map(|t| t.i)
        .collect();
    assert_eq!(ticks, [0, 1, 2]);
    assert!(events.last().unwrap().is::<StopEvent>());
    Ok(())
}

#[tokio::test]
async fn cancelling_the_parent_cancels_the_child() -> anyhow::Result<()> {
    let started = Arc::new(AtomicUsize::new(0));
    let child = child_workflow(started.clone());
    let (child_id_sender, child_id) = tokio::sync::oneshot::channel::<eventflow::EventStream>();
    let child_id_sender = Arc::new(std::sync::Mutex::new(Some(child_id_sender)));
    let parent = Workflow::builder("parent")
        .add_step("delegate", move |ctx: Context, _: StartEvent| {
            let (child, sender) = (child.clone(), child_id_sender.clone());
            async move {
                let handler = ctx.run_child(&child, json!({ "n": 1000 }));
                if let Some(sender) = sender.lock().unwrap().take() {
                    let _ = sender.send(handler.stream_events());
                }
                let result: u32 = handler.await?.result()?;
                Ok::<_, BoxError>(StopEvent::new(result))
            }
        })
        .build()?;
    let handler = parent.run(json!({}));
    let child_events = child_id.await?;
    handler.cancel();
    assert!(matches!(handler.await, Err(WorkflowError::Cancelled)));
    let child_events: Vec<AnyEvent> =
        tokio::time::timeout(Duration::from_secs(5), child_events.collect()).await?;
    assert!(
        child_events.last().unwrap().is::<RunCancelledEvent>(),
        "{child_events:?}"
    );
    assert_eq!(started.load(Ordering::SeqCst), 1);
    Ok(())
}

#[tokio::test]
async fn snapshot_while_waiting_for_a_human_then_resume_elsewhere() -> anyhow::Result<()> {
    // Uninterrupted run, for comparison.
    let handler = review_workflow().run(json!({"topic": "durability"}));
    let mut events = handler.stream_events();
    while let Some(event) = events.next().await {
        if event.is::<InputRequiredEvent>() {
            handler.send_event(HumanResponseEvent::new("yes"))?;
        }
    }
    let uninterrupted: String = handler.await?.result()?;

    // Interrupted: snapshot once the question is out, drop everything, resume from JSON.
    let json = {
        let handler = review_workflow().run(json!({"topic": "durability"}));
        wait_for_question(&handler).await;
        let snapshot = handler.snapshot().await?;
        assert_eq!(snapshot.run_id(), handler.run_id());
        handler.cancel();
        snapshot.to_json()
    };
    let resumed = review_workflow().resume(RunSnapshot::from_json(&json)?)?;
    // The resumed run's stream replays its history, so a client that resumes sees the question.
    let mut events = resumed.stream_events();
    let question = events.next().await.unwrap();
    assert_eq!(
        question
            .downcast_ref::<InputRequiredEvent>()
            .unwrap()
            .prefix,
        "Publish 'durability'?"
    );
    resumed.send_event(HumanResponseEvent::new("yes"))?;
    assert!(events.next().await.unwrap().is::<StopEvent>());
    let result: String = resumed.await?.result()?;
    assert_eq!(result, uninterrupted);
    assert_eq!(result, "durability: published");
    Ok(())
}

#[tokio::test]
async fn snapshot_keeps_collect_buffers_and_reruns_in_flight_steps() -> anyhow::Result<()> {
    let runs = Arc::new(AtomicUsize::new(0));
    let make = |runs: Arc<AtomicUsize>| {
        Workflow::builder("partial")
            .add_step("split", |_: StartEvent| async {
                (0..4).map(|i| Tick { i }).collect::<Vec<_>>()
            })
            .step(
                Step::new("work", move |ev: Tick| {
                    let runs = runs.clone();
                    async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        if ev.i == 3 {
                            // The last item is slow: the snapshot catches it in flight.
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Branch { slow: ev.i == 3 }
                    }
                })
                .num_workers(4),
            )
            .add_step("gather", |ctx: Context, ev: Branch| async move {
                ctx.collect_events(ev, 4)
                    .map(|all| StopEvent::new(all.len()))
            })
            .build()
            .unwrap()
    };
    let handler = make(runs.clone()).run(json!({}));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let snapshot = handler.snapshot().await?;
    handler.cancel();
    let json = snapshot.to_json();
    assert!(
        json.contains("\"Branch\""),
        "three results wait in the collect buffer: {json}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 4);

    let resumed_runs = Arc::new(AtomicUsize::new(0));
    let resumed = make(resumed_runs.clone()).resume(RunSnapshot::from_json(&json)?)?;
    assert_eq!(resumed.await?.result::<usize>()?, 4);
    assert_eq!(
        resumed_runs.load(Ordering::SeqCst),
        1,
        "only the in-flight step ran again"
    );
    Ok(())
}

#[tokio::test]
async fn stream_events_of_unknown_types_survive_a_snapshot_as_json() -> anyhow::Result<()> {
    let workflow = |register: bool| {
        let builder = Workflow::builder("progress").add_step(
            "work",
            |ctx: Context, _: StartEvent| async move {
                ctx.write_event_to_stream(Tick { i: 5 });
                let answer = ctx.wait_for_event::<HumanResponseEvent>().await?;
                Ok::<_, WaitError>(StopEvent::new(answer.response))
            },
        );
        if register {
            builder.event::<Tick>()
        } else {
            builder
        }
        .build()
        .unwrap()
    };
    let handler = workflow(false).run(json!({}));
    handler.stream_events().next().await.unwrap();
    let json = handler.snapshot().await?.to_json();
    handler.cancel();
    for register in [false, true] {
        let resumed = workflow(register).resume(RunSnapshot::from_json(&json)?)?;
        let first = resumed.stream_events().next().await.unwrap();
        assert_eq!(first.name(), "Tick");
        assert_eq!(first.to_json()?, json!({"i": 5}));
        // Typed again only when the workflow registered the type.
        assert_eq!(first.downcast_ref::<Tick>().is_some(), register);
        resumed.send_event(HumanResponseEvent::new("ok"))?;
        assert_eq!(resumed.await?.result::<String>()?, "ok");
    }
    Ok(())
}

#[tokio::test]
async fn a_snapshot_does_not_resume_on_another_workflow() -> anyhow::Result<()> {
    let handler = review_workflow().run(json!({"topic": "durability"}));
    wait_for_question(&handler).await;
    let snapshot = handler.snapshot().await?;
    let error = ticker(1).resume(snapshot).unwrap_err();
    assert!(
        matches!(error, SnapshotError::OtherWorkflow { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("the snapshot is of workflow `review`"),
        "{error}"
    );
    assert!(RunSnapshot::from_json("{ not json").is_err());
    Ok(())
}

#[tokio::test]
async fn events_sent_to_a_finished_run_are_handed_back() -> anyhow::Result<()> {
    let handler = review_workflow().run(json!({"topic": "tiny"}));
    let events: Vec<AnyEvent> = handler.stream_events().collect().await;
    assert!(events.last().unwrap().is::<StopEvent>());
    tokio::time::sleep(Duration::from_millis(10)).await;
    let error = handler
        .send_event(HumanResponseEvent::new("late"))
        .unwrap_err();
    assert!(
        error.to_string().contains("the run has finished"),
        "{error}"
    );
    assert_eq!(
        error
            .into_event()
            .downcast_ref::<HumanResponseEvent>()
            .unwrap()
            .response,
        "late"
    );
    assert!(handler.snapshot().await.is_err());
    assert_eq!(handler.await?.result::<String>()?, "tiny");
    Ok(())
}

#[tokio::test]
async fn many_runs_of_one_workflow_run_concurrently() -> anyhow::Result<()> {
    let workflow = review_workflow();
    let handlers: Vec<WorkflowHandler> = (0..200)
        .map(|i| workflow.run(json!({"topic": format!("t{i}")})))
        .collect();
    let results = futures::future::join_all(handlers).await;
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result?.result::<String>()?, format!("t{i}"));
    }
    Ok(())
}

#[test]
fn public_futures_and_handles_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Workflow>();
    assert_send_sync::<Context>();
    assert_send_sync::<AnyEvent>();
    assert_send_sync::<RunSnapshot>();
    assert_send_sync::<WorkflowError>();
    assert_send_sync::<eventflow::RunOutput>();
    assert_send_sync::<eventflow::Step>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let workflow = ticker(1);
        let handler = workflow.run(json!({}));
        assert_send(&handler);
        assert_send(&handler.stream_events());
        assert_send(&handler.snapshot());
        let wait = async {
            let _ = handler.await;
        };
        assert_send(&wait);
        wait.await;
    });
    fn wait_is_send(ctx: &Context) {
        assert_send(&ctx.wait_for_event::<HumanResponseEvent>());
        assert_send(&std::future::IntoFuture::into_future(
            ctx.wait_for_event::<HumanResponseEvent>(),
        ));
    }
    let _ = wait_is_send;
}
