//! The engine's internal events on a run's stream: `StepStateChanged`, `WorkflowIdleEvent`,
//! `UnhandledEvent` — published when asked for, hidden from plain streams.

use std::time::Duration;

use eventflow::prelude::*;
use eventflow::{EventStream, UnhandledEvent};
use futures::StreamExt;

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Drafted {
    text: String,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Work {
    id: u32,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Note {
    text: String,
}

fn two_steps() -> Workflow {
    Workflow::builder("two_steps")
        .add_step("draft", |ev: StartEvent| async move {
            Ok::<_, BoxError>(Drafted {
                text: ev.get("topic")?,
            })
        })
        .add_step(
            "publish",
            |ev: Drafted| async move { StopEvent::new(ev.text) },
        )
        .build()
        .unwrap()
}

fn approval() -> Workflow {
    Workflow::builder("approval")
        .add_step("ask", |ctx: Context, _: StartEvent| async move {
            let answer = ctx
                .wait_for_event::<HumanResponseEvent>()
                .prompt(InputRequiredEvent::new("ship it?"))
                .await?;
            Ok::<_, BoxError>(StopEvent::new(answer.response))
        })
        .event::<Note>()
        .build()
        .unwrap()
}

/// Each event of a stream as one line: internal events with what they say.
async fn trace(stream: EventStream) -> Vec<String> {
    let lines = stream.map(|event| {
        let value = event.to_json().unwrap();
        match event.name() {
            "StepStateChanged" => {
                let mut line = format!(
                    "{} {}",
                    value["name"].as_str().unwrap(),
                    value["step_state"].as_str().unwrap()
                );
                if let Some(output) = value["output_event_name"].as_str() {
                    line.push_str(&format!(" -> {output}"));
                }
                line
            }
            "UnhandledEvent" => format!(
                "UnhandledEvent {} idle={}",
                value["event_type"].as_str().unwrap(),
                value["idle"]
            ),
            other => other.to_owned(),
        }
    });
    tokio::time::timeout(Duration::from_secs(10), lines.collect())
        .await
        .expect("the stream ended")
}

#[tokio::test]
async fn each_step_runs_and_ends_on_the_internal_stream_and_plain_streams_hide_it() {
    let workflow = two_steps().internal_events(true);
    let handler = workflow.run(json!({"topic": "eels"}));
    let internal = handler.stream_events_internal();
    let plain = handler.stream_events();
    assert_eq!(handler.await.unwrap().result::<String>().unwrap(), "eels");
    assert_eq!(
        trace(internal).await,
        [
            "draft running",
            "draft not_running -> Drafted",
            "publish running",
            "publish not_running -> StopEvent",
            "StopEvent",
        ]
    );
    assert_eq!(trace(plain).await, ["StopEvent"]);
}

#[tokio::test]
async fn an_event_that_finds_every_worker_busy_is_preparing_first() {
    let workflow = Workflow::builder("busy")
        .add_step("split", |_: StartEvent| async {
            (1..=3).map(|id| Work { id }).collect::<Vec<_>>()
        })
        .step(
            Step::new("work", |ctx: Context, ev: Work| async move {
                let done = ctx.collect_events(ev, 3);
                Ok::<_, BoxError>(done.map(|all| StopEvent::new(all.len())))
            })
            .num_workers(1),
        )
        .build()
        .unwrap()
        .internal_events(true);
    let handler = workflow.run(json!({}));
    let internal = handler.stream_events_internal();
    assert_eq!(handler.await.unwrap().result::<usize>().unwrap(), 3);
    let work: Vec<String> = trace(internal)
        .await
        .into_iter()
        .filter(|line| line.starts_with("work "))
        .collect();
    assert_eq!(
        work,
        [
            "work running",
            "work preparing",
            "work preparing",
            "work not_running",
            "work running",
            "work not_running",
            "work running",
            "work not_running -> StopEvent",
        ]
    );
}

#[tokio::test]
async fn a_waiting_run_is_idle_once_then_runs_again_with_the_answer() {
    let workflow = approval().internal_events(true);
    let handler = workflow.run(json!({}));
    let mut internal = handler.stream_events_internal();
    let mut seen = Vec::new();
    while let Some(event) = internal.next().await {
        seen.push(event.name().to_owned());
        if event.name() == "WorkflowIdleEvent" {
            break;
        }
    }
    // Something nothing takes, while idle: kept for a later waiter, and reported.
    handler.send_event(Note { text: "fyi".into() }).unwrap();
    handler.send_event(HumanResponseEvent::new("yes")).unwrap();
    assert_eq!(handler.await.unwrap().result::<String>().unwrap(), "yes");
    let rest = trace(internal).await;
    assert_eq!(
        seen,
        [
            "StepStateChanged",
            "StepStateChanged",
            "InputRequiredEvent",
            "WorkflowIdleEvent"
        ]
    );
    assert_eq!(
        rest,
        [
            "UnhandledEvent Note idle=true",
            "ask running",
            "ask not_running -> StopEvent",
            "StopEvent",
        ]
    );
}

#[tokio::test]
async fn a_run_publishes_internal_events_once_a_reader_asks() {
    // The workflow does not ask for them; this runtime has one thread, so the run has not
    // started when the reader asks.
    let handler = two_steps().run(json!({"topic": "owls"}));
    let internal = handler.stream_events_internal();
    handler.await.unwrap();
    assert_eq!(trace(internal).await.len(), 5);

    // A reader who asks after the run ended sees the events it published, and no internal one.
    let mut handler = two_steps().run(json!({"topic": "owls"}));
    (&mut handler).await.unwrap();
    assert_eq!(trace(handler.stream_events_internal()).await, ["StopEvent"]);
}

#[test]
fn the_internal_events_read_back_as_the_reference_writes_them() {
    let unhandled: UnhandledEvent = serde_json::from_value(json!({
        "event_type": "Note",
        "qualified_name": "Note",
        "step_name": null,
        "idle": false
    }))
    .unwrap();
    assert!(!unhandled.idle);
    let changed: eventflow::StepStateChanged = serde_json::from_value(json!({
        "name": "ask",
        "step_state": "not_running",
        "worker_id": "3",
        "input_event_name": "StartEvent"
    }))
    .unwrap();
    assert_eq!(changed.step_state, eventflow::StepState::NotRunning);
    assert_eq!(changed.output_event_name, None);
}
