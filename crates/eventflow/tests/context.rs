//! The context: key/value and typed state, sending events, collecting, waiting, run identity.

use std::time::Duration;

use eventflow::prelude::*;
use eventflow::{EventType, SendEventError};
use futures::StreamExt;

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Ping {
    n: u32,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Pong {
    n: u32,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Report {
    lines: Vec<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Tally {
    count: u32,
    names: Vec<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct OtherState {
    flag: bool,
}

#[tokio::test]
async fn key_value_state_with_clear_errors() -> anyhow::Result<()> {
    let workflow = Workflow::builder("kv")
        .add_step("s", |ctx: Context, _: StartEvent| async move {
            ctx.set("user_id", 42_u64)?;
            ctx.set("tags", vec!["a", "b"])?;
            let user: u64 = ctx.get("user_id")?;
            let tags: Vec<String> = ctx.get("tags")?;
            let missing = ctx.get::<String>("nope").unwrap_err().to_string();
            let wrong = ctx.get::<String>("user_id").unwrap_err().to_string();
            let fallback: u32 = ctx.get_or("absent", 7)?;
            Ok::<_, StateError>(StopEvent::new(json!({
                "user": user, "tags": tags, "missing": missing, "wrong": wrong,
                "fallback": fallback, "contains": ctx.contains("tags"),
                "removed": ctx.remove("tags"), "after": ctx.contains("tags"),
            })))
        })
        .build()?;
    let out: serde_json::Value = workflow.run(json!({})).await?.result()?;
    assert_eq!(out["user"], 42);
    assert_eq!(out["tags"], json!(["a", "b"]));
    assert_eq!(out["missing"], "no value is stored under key `nope`");
    assert!(
        out["wrong"]
            .as_str()
            .unwrap()
            .starts_with("the value under key `user_id` is not a valid `alloc::string::String`"),
        "{}",
        out["wrong"]
    );
    assert_eq!(out["fallback"], 7);
    assert_eq!(out["contains"], true);
    assert_eq!(out["removed"], json!(["a", "b"]));
    assert_eq!(out["after"], false);
    Ok(())
}

#[tokio::test]
async fn dotted_keys_are_paths_and_clear_resets_everything() -> anyhow::Result<()> {
    let workflow = Workflow::builder("paths")
        .add_step("s", |ctx: Context, _: StartEvent| async move {
            ctx.set("user", json!({"name": "Ada", "langs": ["en", "fr"]}))?;
            ctx.set("user.address.city", "London")?;
            let city: String = ctx.get("user.address.city")?;
            let second: String = ctx.get("user.langs.1")?;
            let refused = ctx.set("user.name.first", "A").unwrap_err().to_string();
            ctx.edit_state(|tally: &mut Tally| tally.count = 5)?;
            let removed = ctx.remove("user.langs.0");
            let user: serde_json::Value = ctx.get("user")?;
            let nested = ctx.edit_state(|_: &mut Tally| ctx.clear().unwrap_err().to_string())?;
            ctx.clear()?;
            let count = ctx.state::<Tally>()?.count;
            Ok::<_, StateError>(StopEvent::new(json!({
                "city": city, "second": second, "refused": refused, "removed": removed,
                "user": user, "after_clear": ctx.contains("user"), "count": count,
                "nested": nested,
            })))
        })
        .build()?;
    let out: serde_json::Value = workflow.run(json!({})).await?.result()?;
    assert_eq!(out["city"], "London");
    assert_eq!(out["second"], "fr");
    assert_eq!(
        out["refused"],
        "cannot set `user.name.first`: the value at `user.name` is not an object"
    );
    assert_eq!(out["removed"], "en");
    assert_eq!(
        out["user"],
        json!({"name": "Ada", "langs": ["fr"], "address": {"city": "London"}})
    );
    assert_eq!(out["after_clear"], false);
    assert_eq!(out["count"], 0, "the typed state is back to its default");
    assert!(
        out["nested"]
            .as_str()
            .unwrap()
            .contains("already being edited"),
        "{}",
        out["nested"]
    );
    Ok(())
}

#[tokio::test]
async fn typed_state_is_shared_and_misuse_is_an_error_not_a_deadlock() -> anyhow::Result<()> {
    let workflow = Workflow::builder("typed")
        .add_step("first", |ctx: Context, _: StartEvent| async move {
            ctx.edit_state(|s: &mut Tally| {
                s.count += 1;
                s.names.push("first".into());
            })?;
            Ok::<_, StateError>(Ping { n: 1 })
        })
        .add_step("second", |ctx: Context, _: Ping| async move {
            // A nested edit on the same run is refused instead of deadlocking.
            let nested = ctx.edit_state(|_: &mut Tally| ctx.edit_state(|s: &mut Tally| s.count))?;
            let nested = nested.unwrap_err().to_string();
            // Reading the key/value state inside an edit is fine: it has its own lock.
            let inner_kv = ctx.edit_state(|_: &mut Tally| ctx.set("k", 1).is_ok())?;
            let mismatch = ctx.state::<OtherState>().unwrap_err().to_string();
            let tally: Tally = ctx.state()?;
            Ok::<_, StateError>(StopEvent::new(json!({
                "count": tally.count, "names": tally.names, "nested": nested,
                "inner_kv": inner_kv, "mismatch": mismatch,
            })))
        })
        .build()?;
    let out: serde_json::Value = workflow.run(json!({})).await?.result()?;
    assert_eq!(out["count"], 1);
    assert_eq!(out["names"], json!(["first"]));
    assert!(
        out["nested"]
            .as_str()
            .unwrap()
            .contains("already being edited"),
        "{}",
        out["nested"]
    );
    assert_eq!(out["inner_kv"], true);
    assert!(
        out["mismatch"]
            .as_str()
            .unwrap()
            .contains("is a `context::Tally`, not a `context::OtherState`"),
        "{}",
        out["mismatch"]
    );
    Ok(())
}

#[tokio::test]
async fn send_event_to_checks_the_target() -> anyhow::Result<()> {
    let workflow = Workflow::builder("targets")
        .step(
            Step::new("start", |ctx: Context, _: StartEvent| async move {
                let unknown = ctx.send_event_to("nobody", Ping { n: 1 }).unwrap_err();
                let refused = ctx.send_event_to("finish", Ping { n: 1 }).unwrap_err();
                let no_consumer = ctx.send_event(Report { lines: vec![] }).unwrap_err();
                let messages = vec![
                    unknown.to_string(),
                    refused.to_string(),
                    no_consumer.to_string(),
                ];
                assert!(matches!(&unknown, SendEventError::UnknownStep { .. }));
                // The event is handed back.
                assert_eq!(unknown.into_event().downcast_ref::<Ping>().unwrap().n, 1);
                ctx.send_event_to("right", Ping { n: 2 })?;
                ctx.set("messages", messages)?;
                Ok::<_, BoxError>(())
            })
            .emits::<Ping>(),
        )
        .add_step("left", |_: Ping| async { Pong { n: 0 } })
        .add_step("right", |ev: Ping| async move { Pong { n: ev.n } })
        .add_step("finish", |ctx: Context, ev: Pong| async move {
            let messages: Vec<String> = ctx.get("messages")?;
            Ok::<_, StateError>(StopEvent::new((ev.n, messages)))
        })
        .build()?;
    let output = workflow.run(json!({})).await?;
    let (n, messages): (u32, Vec<String>) = output.result()?;
    assert_eq!(n, 2, "only the targeted step received the event");
    assert_eq!(output.path().step_runs("left"), 0);
    assert_eq!(
        messages[0],
        "cannot send Ping: the workflow has no step named `nobody`"
    );
    assert_eq!(
        messages[1],
        "cannot send Ping to step `finish`: it does not accept that event"
    );
    assert_eq!(messages[2], "cannot send Report: no step accepts it");
    Ok(())
}

#[tokio::test]
async fn collect_events_of_several_types_returns_them_in_expected_order() -> anyhow::Result<()> {
    #[derive(EventUnion)]
    enum Part {
        Ping(Ping),
        Pong(Pong),
    }
    let workflow = Workflow::builder("collect")
        .add_step("start", |_: StartEvent| async {
            // Arrival order: pong 1, ping 2, ping 3 (routing follows emission order).
            vec![
                Part::Pong(Pong { n: 1 }),
                Part::Ping(Ping { n: 2 }),
                Part::Ping(Ping { n: 3 }),
            ]
        })
        .step(
            Step::new("join", |ctx: Context, ev: Part| async move {
                let event: AnyEvent = match ev {
                    Part::Ping(p) => p.into(),
                    Part::Pong(p) => p.into(),
                };
                let expected = [
                    EventType::of::<Ping>(),
                    EventType::of::<Pong>(),
                    EventType::of::<Ping>(),
                ];
                ctx.collect_events_of(event, &expected).map(|all| {
                    StopEvent::new(all.iter().map(|e| format!("{e:?}")).collect::<Vec<_>>())
                })
            })
            .num_workers(1),
        )
        .build()?;
    let order: Vec<String> = workflow.run(json!({})).await?.result()?;
    assert_eq!(
        order,
        [r#"Ping({"n":2})"#, r#"Pong({"n":1})"#, r#"Ping({"n":3})"#]
    );
    Ok(())
}

/// An empty expectation is complete at once and keeps nothing: the events would pile up in the
/// buffer, and in every snapshot, for nothing.
#[tokio::test]
async fn collecting_nothing_keeps_nothing() -> anyhow::Result<()> {
    let workflow = Workflow::builder("collect_none")
        .add_step("start", |_: StartEvent| async {
            vec![Ping { n: 1 }, Ping { n: 2 }]
        })
        .add_step("join", |ctx: Context, ev: Ping| async move {
            let none = ctx.collect_events(ev.clone(), 0).map(|all| all.len());
            let none_of = ctx.collect_events_of(ev, &[]).map(|all| all.len());
            assert_eq!((none, none_of), (Some(0), Some(0)));
            // Park the run, so a snapshot shows what the buffers hold.
            ctx.wait_for_event::<HumanResponseEvent>().await?;
            Ok::<_, BoxError>(StopEvent::new(()))
        })
        .build()?;
    let handler = workflow.run(json!({}));
    // Both invocations have collected (and wait) once their waits show in a snapshot.
    let snapshot = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let snapshot: serde_json::Value =
                serde_json::from_str(&handler.snapshot().await.unwrap().to_json()).unwrap();
            if snapshot["reducer"]["waiters"].as_array().map(Vec::len) == Some(2) {
                return snapshot;
            }
            tokio::task::yield_now().await;
        }
    })
    .await?;
    assert_eq!(snapshot["state"]["collect"], json!([]), "{snapshot:#}");
    handler.cancel();
    Ok(())
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Approved {
    by: String,
}

/// An event of a plain type that a step only waits for (registered with
/// `WorkflowBuilder::event`) may be sent: no step accepts it, but the waiter takes it.
#[tokio::test]
async fn a_step_can_wait_for_a_registered_plain_event() -> anyhow::Result<()> {
    let workflow = Workflow::builder("plain_wait")
        .add_step("ask", |ctx: Context, _: StartEvent| async move {
            let answer = ctx
                .wait_for_event::<Approved>()
                .prompt(InputRequiredEvent::new("approve?"))
                .await?;
            Ok::<_, BoxError>(StopEvent::new(answer.by))
        })
        .event::<Approved>()
        .build()?;
    let handler = workflow.run(json!({}));
    let mut events = handler.stream_events();
    assert!(events.next().await.unwrap().is::<InputRequiredEvent>());
    handler.send_event(Approved { by: "Ada".into() })?;
    assert_eq!(handler.await?.result::<String>()?, "Ada");

    // An unregistered type that no step accepts is still refused.
    let handler = workflow.run(json!({}));
    let refused = handler.send_event(Pong { n: 1 }).unwrap_err();
    assert!(
        matches!(refused, SendEventError::NoConsumer { .. }),
        "{refused}"
    );
    handler.cancel();
    Ok(())
}

fn approval_workflow(timeout: Option<Duration>) -> Workflow {
    Workflow::builder("approval")
        .add_step("ask", move |ctx: Context, ev: StartEvent| async move {
            let id: String = ev.get("id")?;
            let mut wait = ctx
                .wait_for_event::<HumanResponseEvent>()
                .matching("request_id", &id)
                .prompt(InputRequiredEvent::new("approve?").with("request_id", &id));
            if let Some(timeout) = timeout {
                wait = wait.timeout(timeout);
            }
            let answer = wait.await?;
            Ok::<_, BoxError>(StopEvent::new(format!(
                "{}:{}",
                ctx.run_id().len(),
                answer.response
            )))
        })
        .build()
        .unwrap()
}

#[tokio::test]
async fn wait_for_event_matches_fields_and_publishes_its_prompt() -> anyhow::Result<()> {
    let handler = approval_workflow(None).run(json!({"id": "r1"}));
    let mut events = handler.stream_events();
    let prompt = events.next().await.unwrap();
    let prompt = prompt.downcast_ref::<InputRequiredEvent>().unwrap();
    assert_eq!(prompt.get::<String>("request_id")?, "r1");
    // An answer to another request is not taken by this waiter.
    handler.send_event(HumanResponseEvent::new("no").with("request_id", "other"))?;
    handler.send_event(HumanResponseEvent::new("yes").with("request_id", "r1"))?;
    let result: String = handler.await?.result()?;
    assert_eq!(
        result, "36:yes",
        "the run id is a UUID and the matching answer won"
    );
    Ok(())
}

#[tokio::test]
async fn an_answer_sent_before_the_wait_is_kept() -> anyhow::Result<()> {
    let workflow = Workflow::builder("early")
        .add_step("ask", |ctx: Context, _: StartEvent| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let answer = ctx.wait_for_event::<HumanResponseEvent>().await?;
            Ok::<_, WaitError>(StopEvent::new(answer.response))
        })
        .build()?;
    let handler = workflow.run(json!({}));
    handler.send_event(HumanResponseEvent::new("early bird"))?;
    assert_eq!(handler.await?.result::<String>()?, "early bird");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn wait_for_event_times_out_only_when_asked_to() -> anyhow::Result<()> {
    let error = approval_workflow(Some(Duration::from_secs(30)))
        .run(json!({"id": "r1"}))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("no HumanResponseEvent arrived within 30s"),
        "{error}"
    );
    // Without a timeout it waits (here: a day of virtual time) until answered.
    let handler = approval_workflow(None).run(json!({"id": "r2"}));
    tokio::time::sleep(Duration::from_secs(86_400)).await;
    assert!(!handler.is_finished());
    handler.send_event(HumanResponseEvent::new("late").with("request_id", "r2"))?;
    assert_eq!(handler.await?.result::<String>()?, "36:late");
    Ok(())
}

#[tokio::test]
async fn attempt_and_step_name_are_visible_to_the_step() -> anyhow::Result<()> {
    let workflow = Workflow::builder("who")
        .step(
            Step::new("flaky", |ctx: Context, _: StartEvent| async move {
                if ctx.attempt() < 2 {
                    return Err("again".into());
                }
                Ok::<_, BoxError>(StopEvent::new((ctx.step_name().to_owned(), ctx.attempt())))
            })
            .retry(RetryPolicy::fixed(Duration::ZERO)),
        )
        .build()?;
    let handler = workflow.run(json!({}));
    let run_id = handler.run_id().to_owned();
    let output = handler.await?;
    assert_eq!(output.run_id(), run_id);
    assert_eq!(output.result::<(String, u32)>()?, ("flaky".to_owned(), 2));
    Ok(())
}
