//! Steps: outputs of every shape, fan-out and fan-in, workers, retries, timeouts, failures.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use eventflow::prelude::*;

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Work {
    x: u64,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Product {
    y: u64,
}

/// Fan-out by returning a `Vec`, fan-in with `collect_events` and an `Option` output.
struct VecFanOut {
    items: u64,
}

#[workflow]
impl VecFanOut {
    #[step]
    async fn split(&self, _ev: StartEvent) -> Vec<Work> {
        (0..self.items).map(|x| Work { x }).collect()
    }

    #[step(num_workers = 8)]
    async fn double(&self, ev: Work) -> Product {
        Product { y: ev.x * 2 }
    }

    #[step]
    async fn gather(&self, ctx: &Context, ev: Product) -> Option<StopEvent> {
        let all = ctx.collect_events(ev, self.items as usize)?;
        Some(StopEvent::new(all.iter().map(|p| p.y).sum::<u64>()))
    }
}

#[tokio::test]
async fn vec_fan_out_and_collect() -> anyhow::Result<()> {
    let workflow = VecFanOut { items: 500 }.into_workflow()?;
    let output = workflow.run(json!({})).await?;
    assert_eq!(output.result::<u64>()?, 500 * 499);
    assert_eq!(output.path().step_runs("double"), 500);
    assert_eq!(output.path().step_runs("gather"), 500);
    Ok(())
}

/// Fan-out through `ctx.send_event`, declared with `emits`.
struct SendFanOut;

#[workflow]
impl SendFanOut {
    #[step(emits(Work))]
    async fn split(&self, ctx: &Context, _ev: StartEvent) -> Result<()> {
        for x in 0..100 {
            ctx.send_event(Work { x })?;
        }
        Ok(())
    }

    #[step(num_workers = 3)]
    async fn double(&self, ev: Work) -> Product {
        Product { y: ev.x * 2 }
    }

    #[step]
    async fn gather(&self, ctx: &Context, ev: Product) -> Option<StopEvent> {
        let all = ctx.collect_events(ev, 100)?;
        Some(StopEvent::new(all.len()))
    }
}

#[tokio::test]
async fn send_event_fan_out() -> anyhow::Result<()> {
    let workflow = SendFanOut.into_workflow()?;
    let graph = workflow.graph();
    assert!(
        graph
            .edges
            .iter()
            .any(|e| e.from.name() == "split" && e.to.name() == "Work")
    );
    assert_eq!(workflow.run(json!({})).await?.result::<usize>()?, 100);
    Ok(())
}

#[tokio::test]
async fn num_workers_bounds_concurrent_invocations() -> anyhow::Result<()> {
    let current = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (c, p) = (current.clone(), peak.clone());
    let workflow = Workflow::builder("bounded")
        .add_step("split", |_: StartEvent| async {
            (0..40).map(|x| Work { x }).collect::<Vec<_>>()
        })
        .step(
            Step::new("slow", move |ev: Work| {
                let (c, p) = (c.clone(), p.clone());
                async move {
                    let now = c.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    c.fetch_sub(1, Ordering::SeqCst);
                    Product { y: ev.x }
                }
            })
            .num_workers(3),
        )
        .add_step("gather", |ctx: Context, ev: Product| async move {
            ctx.collect_events(ev, 40)
                .map(|all| StopEvent::new(all.len()))
        })
        .build()?;
    assert_eq!(workflow.run(json!({})).await?.result::<usize>()?, 40);
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    Ok(())
}

#[tokio::test]
async fn default_num_workers_is_four() -> anyhow::Result<()> {
    let workflow = Workflow::builder("w")
        .add_step("s", |_: StartEvent| async { StopEvent::new(()) })
        .build()?;
    assert_eq!(workflow.steps()[0].name(), "s");
    assert_eq!(workflow.graph().nodes[0].num_workers, Some(4));
    Ok(())
}

/// Fails until its third attempt; records the attempts it saw.
fn flaky_workflow(
    policy: RetryPolicy,
    fail_until: u32,
    seen: Arc<std::sync::Mutex<Vec<u32>>>,
) -> Workflow {
    Workflow::builder("flaky")
        .step(
            Step::new("flaky", move |ctx: Context, _: StartEvent| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(ctx.attempt());
                    if ctx.attempt() < fail_until {
                        Err(std::io::Error::other(format!(
                            "attempt {} failed",
                            ctx.attempt()
                        )))
                    } else {
                        Ok(StopEvent::new(ctx.attempt()))
                    }
                }
            })
            .retry(policy),
        )
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn fixed_retry_runs_again_until_success() -> anyhow::Result<()> {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let policy = RetryPolicy::fixed(Duration::from_secs(10)).max_attempts(5);
    let started = tokio::time::Instant::now();
    let output = flaky_workflow(policy, 3, seen.clone())
        .run(json!({}))
        .await?;
    assert_eq!(output.result::<u32>()?, 3);
    assert_eq!(*seen.lock().unwrap(), [1, 2, 3]);
    // Two backoffs of 10 s each (virtual time).
    assert_eq!(started.elapsed().as_secs(), 20);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn exponential_retry_gives_up_after_max_attempts() -> anyhow::Result<()> {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let policy = RetryPolicy::exponential(Duration::from_secs(1)).max_attempts(3);
    let started = tokio::time::Instant::now();
    let error = flaky_workflow(policy, 10, seen.clone())
        .run(json!({}))
        .await
        .unwrap_err();
    assert_eq!(started.elapsed().as_secs(), 1 + 2);
    match &error {
        WorkflowError::StepFailed {
            step,
            attempts,
            source,
        } => {
            assert_eq!(step, "flaky");
            assert_eq!(*attempts, 3);
            assert_eq!(source.to_string(), "attempt 3 failed");
        }
        other => panic!("unexpected error: {other}"),
    }
    assert_eq!(
        error.to_string(),
        "step `flaky` failed after 3 attempts: attempt 3 failed"
    );
    // The step's own error is the source of the run's error.
    let source = std::error::Error::source(&error).expect("a source");
    assert_eq!(source.to_string(), "attempt 3 failed");
    Ok(())
}

#[tokio::test]
async fn retry_predicate_stops_retrying() -> anyhow::Result<()> {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let policy = RetryPolicy::fixed(Duration::ZERO)
        .max_attempts(5)
        .retry_if(|error| matches!(error, StepError::TimedOut(_)));
    let error = flaky_workflow(policy, 10, seen.clone())
        .run(json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(error, WorkflowError::StepFailed { attempts: 1, .. }),
        "{error}"
    );
    assert_eq!(*seen.lock().unwrap(), [1]);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn step_timeout_fails_the_attempt_and_is_retried() -> anyhow::Result<()> {
    let workflow = Workflow::builder("slow")
        .step(
            Step::new("slow", |ctx: Context, _: StartEvent| async move {
                if ctx.attempt() == 1 {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                StopEvent::new(ctx.attempt())
            })
            .timeout(Duration::from_secs(1))
            .retry(RetryPolicy::fixed(Duration::ZERO).max_attempts(2)),
        )
        .build()?;
    assert_eq!(workflow.run(json!({})).await?.result::<u32>()?, 2);

    let no_retry = Workflow::builder("slow")
        .step(
            Step::new("slow", |_: StartEvent| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                StopEvent::new(())
            })
            .timeout(Duration::from_secs(1)),
        )
        .build()?;
    let error = no_retry.run(json!({})).await.unwrap_err();
    assert!(
        matches!(&error, WorkflowError::StepFailed { source: StepError::TimedOut(d), .. } if *d == Duration::from_secs(1)),
        "{error}"
    );
    Ok(())
}

#[tokio::test]
async fn a_panicking_step_fails_its_run_not_the_process() -> anyhow::Result<()> {
    let workflow = Workflow::builder("panics")
        .add_step("boom", |ev: StartEvent| async move {
            let n: u32 = ev.get("n").unwrap();
            if n > 0 {
                panic!("n was {n}");
            }
            StopEvent::new(n)
        })
        .build()?;
    let error = workflow.run(json!({"n": 3})).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "step `boom` failed after 1 attempt: panicked: n was 3"
    );
    // The runtime and the workflow are still fine.
    assert_eq!(workflow.run(json!({"n": 0})).await?.result::<u32>()?, 0);
    Ok(())
}

#[tokio::test]
async fn a_failing_step_reports_its_name_and_cause() -> anyhow::Result<()> {
    struct Fails;

    #[workflow]
    impl Fails {
        #[step]
        async fn read_query(&self, ev: StartEvent) -> Result<StopEvent> {
            let query: String = ev.get("query")?;
            Ok(StopEvent::new(query))
        }
    }

    let error = Fails
        .into_workflow()?
        .run(json!({"other": 1}))
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("step `read_query` failed after 1 attempt:"),
        "{message}"
    );
    assert!(
        message.contains("StartEvent has no field `query` (it has: other)"),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn a_step_may_take_the_context_by_value_and_after_the_event() -> anyhow::Result<()> {
    struct Orders;

    #[workflow]
    impl Orders {
        #[step]
        async fn first(&self, ev: StartEvent, ctx: Context) -> Result<Work> {
            ctx.set("x", ev.get::<u64>("x")?)?;
            Ok(Work { x: 1 })
        }

        #[step(name = "second_step")]
        async fn second(&self, ctx: Context, ev: Work) -> Result<StopEvent> {
            Ok(StopEvent::new(ctx.get::<u64>("x")? + ev.x))
        }
    }

    let workflow = Orders.into_workflow()?;
    assert_eq!(workflow.steps()[1].name(), "second_step");
    assert_eq!(workflow.run(json!({"x": 41})).await?.result::<u64>()?, 42);
    Ok(())
}

#[tokio::test]
async fn events_go_to_every_step_that_accepts_them() -> anyhow::Result<()> {
    #[derive(Event, Clone, Serialize, Deserialize)]
    struct Shared {
        n: u64,
    }
    #[derive(Event, Clone, Serialize, Deserialize)]
    struct Seen {
        by: String,
    }
    let workflow = Workflow::builder("broadcast")
        .add_step("start", |_: StartEvent| async { Shared { n: 1 } })
        .add_step("left", |_: Shared| async { Seen { by: "left".into() } })
        .add_step("right", |_: Shared| async { Seen { by: "right".into() } })
        .add_step("join", |ctx: Context, ev: Seen| async move {
            ctx.collect_events(ev, 2).map(|all| {
                let mut by: Vec<String> = all.into_iter().map(|s| s.by).collect();
                by.sort();
                StopEvent::new(by)
            })
        })
        .build()?;
    let output = workflow.run(json!({})).await?;
    assert_eq!(output.result::<Vec<String>>()?, ["left", "right"]);
    Ok(())
}
