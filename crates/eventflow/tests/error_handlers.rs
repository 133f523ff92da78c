//! Error handlers (`#[catch_error]`, `Step::catch_error`): a step that fails its last attempt
//! is handed to its handler as a `StepFailedEvent`, and the run goes on with what it returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use eventflow::prelude::*;
use eventflow::{CatchError, ValidationProblem};

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Fetch {
    url: String,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Parse {
    body: String,
}

/// `fetch` fails every attempt (3 of them); the handler given recovers it.
fn failing_fetch(handler: Step) -> Workflow {
    Workflow::builder("fetching")
        .add_step("begin", |ev: StartEvent| async move {
            Ok::<_, BoxError>(Fetch {
                url: ev.get("url")?,
            })
        })
        .step(
            Step::new("fetch", |ev: Fetch| async move {
                Err::<Parse, BoxError>(format!("{} is down", ev.url).into())
            })
            .retry(RetryPolicy::fixed(Duration::from_millis(1)).max_attempts(3)),
        )
        .add_step("parse", |ev: Parse| async move { StopEvent::new(ev.body) })
        .step(handler)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_handler_recovers_a_step_that_failed_its_last_attempt() {
    let handler = Step::new("fallback", |failed: StepFailedEvent| async move {
        let input: Fetch = failed.input().unwrap();
        StopEvent::new(json!({
            "step": failed.step,
            "url": input.url,
            "error": failed.error,
            "attempts": failed.attempts,
            "failed_at": failed.failed_at_ms.is_some(),
        }))
    })
    .catch_error(CatchError::any_step());
    let output = failing_fetch(handler)
        .run(json!({"url": "https://example.test"}))
        .await
        .unwrap();
    let result: serde_json::Value = output.result().unwrap();
    assert_eq!(
        result,
        json!({
            "step": "fetch",
            "url": "https://example.test",
            "error": "https://example.test is down",
            "attempts": 3,
            "failed_at": true,
        })
    );
    assert_eq!(output.path().step_runs("fallback"), 1);
}

#[tokio::test]
async fn a_named_handler_takes_its_steps_and_the_wildcard_the_rest() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let workflow = Workflow::builder("two_handlers")
        .add_step("begin", |ev: StartEvent| async move {
            match ev.get::<String>("fail")?.as_str() {
                "begin" => Err::<Parse, BoxError>("no start".into()),
                _ => Ok(Parse { body: "b".into() }),
            }
        })
        .add_step("parse", |_: Parse| async {
            Err::<StopEvent, BoxError>("unparsable".into())
        })
        .step(
            Step::new("for_begin", move |failed: StepFailedEvent| {
                counted.fetch_add(1, Ordering::SeqCst);
                async move { StopEvent::new(format!("named: {}", failed.step)) }
            })
            .catch_error(CatchError::for_steps(["begin"])),
        )
        .step(
            Step::new("anything", |failed: StepFailedEvent| async move {
                StopEvent::new(format!("wildcard: {}", failed.step))
            })
            .catch_error(CatchError::any_step()),
        )
        .build()
        .unwrap();
    let output = workflow.run(json!({"fail": "begin"})).await.unwrap();
    assert_eq!(output.result::<String>().unwrap(), "named: begin");
    let output = workflow.run(json!({"fail": "parse"})).await.unwrap();
    assert_eq!(output.result::<String>().unwrap(), "wildcard: parse");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// `work` fails every time; its handler sends the work back: each recovery adds one to the
/// chain, so `max_recoveries = 2` recovers twice and the third failure fails the run.
#[tokio::test]
async fn recoveries_along_one_chain_of_events_are_bounded() {
    let attempts = Arc::new(AtomicU32::new(0));
    let counted = attempts.clone();
    let workflow = Workflow::builder("bounded")
        .add_step("begin", |_: StartEvent| async { Fetch { url: "a".into() } })
        .add_step("work", move |_: Fetch| {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Err::<StopEvent, BoxError>("broken".into()) }
        })
        .step(
            Step::new("again", |failed: StepFailedEvent| async move {
                failed.input::<Fetch>().map_err(BoxError::from)
            })
            .catch_error(CatchError::for_steps(["work"]).max_recoveries(2)),
        )
        .build()
        .unwrap();
    let error = workflow.run(json!({})).await.unwrap_err();
    assert!(
        matches!(&error, WorkflowError::StepFailed { step, .. } if step == "work"),
        "{error}"
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_failing_handler_fails_the_run_and_the_wildcard_does_not_catch_it() {
    let workflow = failing_fetch(
        Step::new("fallback", |_: StepFailedEvent| async {
            Err::<StopEvent, BoxError>("the fallback is down too".into())
        })
        .catch_error(CatchError::any_step()),
    );
    let error = workflow.run(json!({"url": "u"})).await.unwrap_err();
    assert!(
        matches!(&error, WorkflowError::StepFailed { step, .. } if step == "fallback"),
        "{error}"
    );
}

#[tokio::test]
async fn the_run_timeout_and_cancellation_are_not_recovered() {
    let called = Arc::new(AtomicU32::new(0));
    let make = |called: Arc<AtomicU32>| {
        Workflow::builder("slow")
            .add_step("slow", |_: StartEvent| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                StopEvent::new("late")
            })
            .step(
                Step::new("fallback", move |_: StepFailedEvent| {
                    called.fetch_add(1, Ordering::SeqCst);
                    async { StopEvent::new("recovered") }
                })
                .catch_error(CatchError::any_step()),
            )
            .build()
            .unwrap()
    };
    let timed = make(called.clone()).timeout(Duration::from_millis(20));
    assert!(matches!(
        timed.run(json!({})).await,
        Err(WorkflowError::Timeout { .. })
    ));
    let handler = make(called.clone()).run(json!({}));
    handler.cancel();
    assert!(matches!(handler.await, Err(WorkflowError::Cancelled)));
    assert_eq!(called.load(Ordering::SeqCst), 0);
}

#[test]
fn every_handler_problem_is_reported_at_once() {
    let handler = |name: &str, catches: CatchError| {
        Step::new(name, |_: StepFailedEvent| async { StopEvent::new(()) }).catch_error(catches)
    };
    let error = Workflow::builder("bad_handlers")
        .add_step("begin", |_: StartEvent| async { StopEvent::new(()) })
        .step(handler("one", CatchError::any_step()))
        .step(handler("two", CatchError::any_step()))
        .step(handler(
            "named",
            CatchError::for_steps(["begin", "nope", "one"]),
        ))
        .step(handler("also", CatchError::for_steps(["begin"])))
        .step(
            Step::new("deaf", |_: StartEvent| async { StopEvent::new(()) })
                .catch_error(CatchError::for_steps(["deaf_target"])),
        )
        .build()
        .unwrap_err();
    let problems = error.problems();
    let expected = [
        ValidationProblem::SeveralCatchAll {
            handlers: vec!["one".into(), "two".into()],
        },
        ValidationProblem::CatchesUnknownStep {
            handler: "named".into(),
            step: "nope".into(),
        },
        ValidationProblem::CatchesHandler {
            handler: "named".into(),
            step: "one".into(),
        },
        ValidationProblem::CaughtTwice {
            step: "begin".into(),
            handlers: vec!["named".into(), "also".into()],
        },
        ValidationProblem::HandlerIgnoresFailure {
            handler: "deaf".into(),
        },
    ];
    for problem in &expected {
        assert!(problems.contains(problem), "missing {problem:?} in {error}");
    }
}

struct Scraper;

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(stop)]
struct Page {
    text: String,
    recovered_from: Option<String>,
}

#[workflow]
impl Scraper {
    #[step]
    async fn fetch(&self, ev: StartEvent) -> Result<Fetch> {
        Ok(Fetch {
            url: ev.get("url")?,
        })
    }

    #[step]
    async fn download(&self, ev: Fetch) -> Result<Page> {
        Err(format!("cannot download {}", ev.url).into())
    }

    #[catch_error(for_steps = ["download"], max_recoveries = 1)]
    async fn cached(&self, failed: StepFailedEvent) -> Page {
        Page {
            text: "from the cache".into(),
            recovered_from: Some(failed.step),
        }
    }

    #[catch_error]
    #[step(name = "last_resort")]
    async fn anything(&self, failed: StepFailedEvent) -> Page {
        Page {
            text: format!("nothing: {}", failed.error),
            recovered_from: None,
        }
    }
}

#[tokio::test]
async fn the_macros_declare_handlers() {
    let workflow = Scraper.into_workflow().unwrap();
    let handlers: Vec<(&str, Option<&[String]>)> = workflow
        .steps()
        .iter()
        .filter_map(|step| step.catches().map(|c| (step.name(), c.steps())))
        .collect();
    assert_eq!(
        handlers,
        [
            ("cached", Some(&["download".to_owned()][..])),
            ("last_resort", None)
        ]
    );
    let page: Page = workflow
        .run(json!({"url": "u"}))
        .await
        .unwrap()
        .into_event()
        .unwrap();
    assert_eq!(page.text, "from the cache");
    assert_eq!(page.recovered_from.as_deref(), Some("download"));
    // `fetch` is covered by the wildcard: a missing `url` is recovered there.
    let page: Page = workflow.run(json!({})).await.unwrap().into_event().unwrap();
    assert!(page.text.starts_with("nothing: "), "{}", page.text);
}
