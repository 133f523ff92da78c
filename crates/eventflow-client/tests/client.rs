//! Every method of the client against a real eventflow server on a loopback port.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use eventflow_client::{
    Client, ClientError, EventEnvelope, EventStream, HandlerFilter, HandlerStatus, RunOptions,
    RunStatus, SendEvent,
};
use futures::StreamExt;
use serde_json::{Value, json};

/// Reads the stream until `stop` accepts an event (included) or the stream ends.
async fn read_until(
    events: &mut EventStream,
    mut stop: impl FnMut(&EventEnvelope) -> bool,
) -> Vec<EventEnvelope> {
    let mut seen = Vec::new();
    let reading = async {
        while let Some(event) = events.next().await {
            let event = event.expect("stream error");
            let done = stop(&event);
            seen.push(event);
            if done {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), reading)
        .await
        .expect("the stream stalled");
    seen
}

/// Reads the stream to its end.
async fn read_all(events: &mut EventStream) -> Vec<EventEnvelope> {
    read_until(events, |_| false).await
}

/// Sequences 1..=n in order, each once.
fn assert_gapless(events: &[EventEnvelope]) {
    let seqs: Vec<u64> = events.iter().map(|event| event.seq).collect();
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(seqs, expected, "{events:#?}");
}

/// Polls the handler until eventflow reports `status`.
async fn wait_for_status(client: &Client, id: &str, status: RunStatus) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let handler = client.handler(id).await.unwrap();
        if handler.eventflow_status == Some(status) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} never became {status}: {handler:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn types(events: &[EventEnvelope]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_workflows_and_introspection() {
    let server = start(test_config()).await;
    let client = server.client();
    assert!(client.health().await.unwrap().is_healthy());
    assert_eq!(
        client.workflows().await.unwrap(),
        [
            "greet", "fail", "ask", "orders", "approve", "ticker", "invoice", "pair"
        ]
    );

    let schema = client.workflow_schema("orders").await.unwrap();
    assert!(schema.start["properties"]["item"].is_object(), "{schema:?}");
    assert!(
        schema.stop["properties"]["result"].is_object(),
        "{schema:?}"
    );

    let events = client.workflow_events("greet").await.unwrap();
    let names: Vec<&str> = events
        .iter()
        .filter_map(|schema| schema["x-eventflow-event"].as_str())
        .collect();
    assert!(
        names.contains(&"StartEvent") && names.contains(&"StopEvent"),
        "{names:?}"
    );

    let graph = client.workflow_representation("approve").await.unwrap();
    assert_eq!(graph.name, "approve");
    let node = |id: &str| graph.nodes.iter().find(|node| node.id == id);
    assert_eq!(node("ask").unwrap().node_type, "step");
    assert_eq!(
        node("InputRequiredEvent").unwrap().event_type.as_deref(),
        Some("InputRequiredEvent")
    );
    assert_eq!(node("external_step").unwrap().node_type, "external");
    assert!(
        graph
            .edges
            .iter()
            .any(|edge| edge.source == "external_step" && edge.target == "HumanResponseEvent"),
        "{:?}",
        graph.edges
    );

    let openapi = client.openapi().await.unwrap();
    assert!(openapi["paths"]["/handlers/{handler_id}"].is_object());
    let metrics = client.metrics().await.unwrap();
    assert!(
        metrics.contains("eventflow_http_requests_total"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_returns_the_finished_handler() {
    let server = start(test_config()).await;
    let client = server.client();

    let handler = client.run("greet", json!({"name": "Ada"})).await.unwrap();
    assert_eq!(handler.status, HandlerStatus::Completed);
    assert_eq!(handler.eventflow_status, Some(RunStatus::Completed));
    assert_eq!(handler.workflow_name, "greet");
    assert_eq!(handler.run_id.as_deref(), Some(handler.handler_id.as_str()));
    assert_eq!(handler.last_sequence, Some(2));
    assert!(handler.completed_at.is_some());
    let stop = handler.result.as_ref().unwrap();
    assert_eq!(stop.event_type, "StopEvent");
    assert_eq!(
        stop.qualified_name.as_deref(),
        Some("workflows.events.StopEvent")
    );
    assert_eq!(handler.result_value(), Some(&json!("Hello, Ada!")));
    let greeting: String = handler.decode_result().unwrap();
    assert_eq!(greeting, "Hello, Ada!");

    // A failed run is a handler too, with the error naming the step and the cause.
    let failed = client.run("fail", ()).await.unwrap();
    assert_eq!(failed.status, HandlerStatus::Failed);
    let error = failed.error.clone().unwrap();
    assert!(
        error.contains("boom") && error.contains("kaboom"),
        "{error}"
    );
    // The result's error, as a client error: the run's status and its error.
    match failed.into_result().map_err(ClientError::from) {
        Err(ClientError::RunFailed { status, error, .. }) => {
            assert_eq!(status, HandlerStatus::Failed);
            assert!(error.unwrap().contains("kaboom"));
        }
        other => panic!("{other:?}"),
    }

    // A typed start event, from a serde type.
    #[derive(serde::Serialize)]
    struct Order {
        item: &'static str,
        quantity: u32,
    }
    let priced = client
        .run(
            "orders",
            Order {
                item: "tea",
                quantity: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(priced.into_result().unwrap(), json!(6));
    // An eventflow event is such a type: it serializes to its fields.
    let event = common::Order {
        item: "cake".into(),
        quantity: 5,
    };
    let priced = client.run("orders", &event).await.unwrap();
    assert_eq!(priced.decode_result::<u32>().unwrap(), 15);
    // A start event that does not decode: 400 with the server's reason.
    let error = client
        .run("orders", json!({"item": "tea"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::BadRequest { detail } if detail.contains("quantity")),
        "{error}"
    );

    // Start events whose fields look like an envelope's still arrive as fields.
    let handler = client
        .run(
            "greet",
            json!({"name": "Bo", "value": 1, "type": "x", "qualified_name": "y"}),
        )
        .await
        .unwrap();
    assert_eq!(handler.result_value(), Some(&json!("Hello, Bo!")));

    // A chosen handler id; given again once the handler finished, it starts it again.
    let options = RunOptions::new().handler_id("greet-1");
    let handler = client
        .run_with("greet", json!({"name": "One"}), &options)
        .await
        .unwrap();
    assert_eq!(handler.handler_id, "greet-1");
    assert_eq!(handler.last_sequence, Some(2));
    let again = client
        .run_with("greet", json!({"name": "Two"}), &options)
        .await
        .unwrap();
    assert_eq!(again.handler_id, "greet-1");
    assert_eq!(again.result_value(), Some(&json!("Hello, Two!")));
    assert_eq!(again.last_sequence, Some(4));

    // A handler that has not finished cannot be started again: 409.
    let options = RunOptions::new().handler_id("ask-1");
    client
        .run_nowait_with("ask", json!({}), &options)
        .await
        .unwrap();
    let error = client
        .run_nowait_with("ask", json!({}), &options)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::Conflict { detail } if detail.contains("ask-1")),
        "{error}"
    );
    assert_eq!(error.status(), Some(409));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_nowait_then_stream_and_wait() {
    let server = start(test_config()).await;
    let client = server.client();

    let started = client
        .run_nowait("greet", json!({"name": "Ada"}))
        .await
        .unwrap();
    assert_eq!(started.after_sequence, 0);
    assert_eq!(started.handler.handler_id, started.handler_id);
    assert!(!started.handler.extra.contains_key("after_sequence"));

    let mut events = client.events(&started.handler_id, Some(started.after_sequence));
    let seen = read_all(&mut events).await;
    assert_eq!(types(&seen), ["Progress", "StopEvent"]);
    assert_gapless(&seen);
    assert_eq!(seen[0].value, json!({"percent": 50}));
    assert_eq!(seen[0].qualified_name, None);
    assert_eq!(seen[1].value, json!({"result": "Hello, Ada!"}));
    assert_eq!(events.last_sequence(), Some(2));
    assert_eq!(events.connections(), 1);
    #[derive(serde::Deserialize)]
    struct Progress {
        percent: u32,
    }
    assert_eq!(seen[0].decode::<Progress>().unwrap().percent, 50);

    let done = client
        .wait(&started.handler_id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(done.status, HandlerStatus::Completed);
    assert_eq!(done.result_value(), Some(&json!("Hello, Ada!")));

    // Resuming a finished run's stream: what is after the cursor, then the end (204).
    let mut rest = client.events(&started.handler_id, Some(1));
    assert_eq!(types(&read_all(&mut rest).await), ["StopEvent"]);
    let mut nothing = client.events(&started.handler_id, Some(2));
    assert!(read_all(&mut nothing).await.is_empty());
    assert_eq!(nothing.connections(), 0);

    // Started again, the handler's events go on numbering; `after_sequence` is where this run's
    // begin, and a reader without a cursor gets the current run's.
    let options = RunOptions::new().handler_id(started.handler_id.clone());
    let restarted = client
        .run_nowait_with("greet", json!({"name": "Bo"}), &options)
        .await
        .unwrap();
    assert_eq!(restarted.handler_id, started.handler_id);
    assert_eq!(restarted.after_sequence, 2);
    let mut events = client.events(&restarted.handler_id, Some(restarted.after_sequence));
    let second = read_all(&mut events).await;
    assert_eq!(types(&second), ["Progress", "StopEvent"]);
    assert_eq!(second[0].seq, 3);
    assert_eq!(second[1].value, json!({"result": "Hello, Bo!"}));
    client
        .wait(&restarted.handler_id, Duration::from_secs(10))
        .await
        .unwrap();
    let mut current = client.events(&restarted.handler_id, None);
    let current = read_all(&mut current).await;
    assert_eq!(current.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
    let mut everything = client.events(&restarted.handler_id, Some(0));
    let everything = read_all(&mut everything).await;
    assert_gapless(&everything);
    assert_eq!(
        types(&everything),
        ["Progress", "StopEvent", "Progress", "StopEvent"]
    );

    // Idempotent starts return the first run.
    let options = RunOptions::new().idempotency_key("once");
    let first = client
        .run_nowait_with("greet", json!({}), &options)
        .await
        .unwrap();
    let again = client
        .run_nowait_with("greet", json!({}), &options)
        .await
        .unwrap();
    assert_eq!(first.handler_id, again.handler_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_stop_event_ends_the_stream_and_is_the_result() {
    let server = start(test_config()).await;
    let client = server.client();
    let started = client.run_nowait("invoice", json!({})).await.unwrap();
    let mut events = client.events(&started.handler_id, None);
    let seen = read_all(&mut events).await;
    assert_eq!(types(&seen), ["Invoice"]);
    assert_eq!(seen[0].value, json!({"total_cents": 300}));
    assert!(!seen[0].is_terminal());
    let handler = client
        .wait(&started.handler_id, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(handler.result_value(), Some(&json!({"total_cents": 300})));
    #[derive(serde::Deserialize)]
    struct Invoice {
        total_cents: u64,
    }
    assert_eq!(handler.decode_result::<Invoice>().unwrap().total_cents, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_are_listed_filtered_and_read() {
    let server = start(test_config()).await;
    let client = server.client();
    client.run("greet", json!({})).await.unwrap();
    client.run("fail", json!({})).await.unwrap();
    let waiting = client.run_nowait("ask", json!({})).await.unwrap();
    // Wait until the question is out: the run is then `waiting`.
    let mut events = client.events(&waiting.handler_id, Some(0));
    read_until(&mut events, |e| e.event_type == "InputRequiredEvent").await;
    drop(events);
    wait_for_status(&client, &waiting.handler_id, RunStatus::Waiting).await;

    let all = client.handlers(&HandlerFilter::new()).await.unwrap();
    let names: Vec<&str> = all.iter().map(|h| h.workflow_name.as_str()).collect();
    assert_eq!(names, ["greet", "fail", "ask"]);

    let running = client
        .handlers(&HandlerFilter::new().status(HandlerStatus::Running))
        .await
        .unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].handler_id, waiting.handler_id);
    assert_eq!(running[0].status, HandlerStatus::Running);

    let finished = client
        .handlers(
            &HandlerFilter::new()
                .status(HandlerStatus::Completed)
                .status(RunStatus::Failed),
        )
        .await
        .unwrap();
    assert_eq!(finished.len(), 2);
    let greets = client
        .handlers(&HandlerFilter::new().workflow("greet").workflow("ask"))
        .await
        .unwrap();
    assert_eq!(greets.len(), 2);
    let none = client
        .handlers(
            &HandlerFilter::new()
                .workflow("greet")
                .status(RunStatus::Waiting),
        )
        .await
        .unwrap();
    assert!(none.is_empty());

    // One handler, whatever the status code the server answers it with (202, 200, 500).
    let handler = client.handler(&waiting.handler_id).await.unwrap();
    assert_eq!(handler.status, HandlerStatus::Running);
    assert_eq!(handler.eventflow_status, Some(RunStatus::Waiting));
    assert_eq!(handler.last_sequence, Some(1));
    assert!(handler.completed_at.is_none());
    let failed = &finished
        .iter()
        .find(|h| h.workflow_name == "fail")
        .unwrap()
        .handler_id;
    let handler = client.handler(failed).await.unwrap();
    assert_eq!(handler.status, HandlerStatus::Failed);

    let error = client.handler("nope").await.unwrap_err();
    assert!(
        matches!(&error, ClientError::NotFound { detail } if detail.contains("nope")),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_in_the_loop_is_answered_with_send_event() {
    let server = start(test_config()).await;
    let client = server.client();

    let started = client.run_nowait("ask", json!({})).await.unwrap();
    let id = &started.handler_id;
    let mut events = client.events(id, None);
    let question = read_until(&mut events, |e| e.event_type == "InputRequiredEvent").await;
    assert_eq!(question.len(), 1);
    assert_eq!(question[0].value["prefix"], "Your name?");
    assert_eq!(
        question[0].qualified_name.as_deref(),
        Some("workflows.events.InputRequiredEvent")
    );

    // Wrong events are refused with the server's reason.
    let error = client
        .send_event(id, "Nope", json!({}), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::BadRequest { detail }
            if detail.contains("Invalid event type: Nope")),
        "{error}"
    );
    let error = client
        .send_event(id, "HumanResponseEvent", json!({"response": 3}), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ClientError::BadRequest { detail } if detail.contains("does not decode")),
        "{error}"
    );

    let sent = client
        .send_event(id, "HumanResponseEvent", json!({"response": "Bob"}), None)
        .await
        .unwrap();
    assert_eq!(sent.status, "sent");
    assert!(!sent.duplicate);
    let rest = read_all(&mut events).await;
    assert_eq!(types(&rest), ["StopEvent"]);
    assert_eq!(rest[0].seq, 2);
    assert_eq!(rest[0].value["result"], "Hi Bob");

    let done = client.wait(id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(done.into_result().unwrap(), json!("Hi Bob"));
    // A finished run takes no more events.
    let error = client
        .send_event(id, "HumanResponseEvent", json!({"response": "late"}), None)
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Conflict { .. }), "{error}");

    // The step-signature style, addressed to a step, with an idempotency key.
    let started = client.run_nowait("approve", json!({})).await.unwrap();
    let id = &started.handler_id;
    let event = SendEvent::new("HumanResponseEvent", json!({"response": "yes"}))
        .step("answer")
        .idempotency_key("approval-1");
    // (Its duplicates are `a_repeated_send_is_a_duplicate_while_the_run_waits`'s subject: this
    // run would race to its end.)
    let first = client.send_event_with(id, &event).await.unwrap();
    assert!(!first.duplicate);
    let done = client.wait(id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(done.into_result().unwrap(), json!(true));
    let mut events = client.events(id, Some(0));
    let all = read_all(&mut events).await;
    assert_eq!(types(&all), ["InputRequiredEvent", "StopEvent"]);
    assert_gapless(&all);

    // A step that does not accept the event.
    let started = client.run_nowait("approve", json!({})).await.unwrap();
    let error = client
        .send_event(
            &started.handler_id,
            "HumanResponseEvent",
            json!({"response": "no"}),
            Some("ask"),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::BadRequest { .. }), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_send_is_a_duplicate_while_the_run_waits() {
    let server = start(test_config()).await;
    let client = server.client();
    let started = client.run_nowait("pair", json!({})).await.unwrap();
    let id = &started.handler_id;
    let mut events = client.events(id, Some(0));
    let first_question = read_until(&mut events, |e| e.event_type == "InputRequiredEvent").await;
    assert_eq!(first_question[0].value["prefix"], "First?");
    let answer = |response: &str, key: &str| {
        SendEvent::new("HumanResponseEvent", json!({"response": response}))
            .step("answer")
            .idempotency_key(key)
    };

    // The first answer, and at once the same send again: the run cannot finish before a second
    // answer, so the only right outcome is a recognized duplicate (not a conflict).
    let first = client
        .send_event_with(id, &answer("Bob", "answer-1"))
        .await
        .unwrap();
    assert_eq!((first.status.as_str(), first.duplicate), ("sent", false));
    let again = client
        .send_event_with(id, &answer("Bob", "answer-1"))
        .await
        .unwrap();
    assert_eq!((again.status.as_str(), again.duplicate), ("sent", true));
    // Once the first answer was consumed (the second question is out), still a duplicate, even
    // with another body.
    let second_question = read_until(&mut events, |e| e.event_type == "InputRequiredEvent").await;
    assert_eq!(types(&second_question), ["InputRequiredEvent"]);
    assert_eq!(second_question[0].value["prefix"], "Second?");
    let late = client
        .send_event_with(id, &answer("Eve", "answer-1"))
        .await
        .unwrap();
    assert!(late.duplicate);

    // The second answer finishes the run with the first answer, once.
    let second = client
        .send_event_with(id, &answer("Ann", "answer-2"))
        .await
        .unwrap();
    assert!(!second.duplicate);
    let rest = read_all(&mut events).await;
    assert_eq!(types(&rest), ["StopEvent"]);
    let done = client.wait(id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(done.into_result().unwrap(), json!("Bob and Ann"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_purge() {
    let server = start(test_config()).await;
    let client = server.client();

    let started = client.run_nowait("ask", json!({})).await.unwrap();
    let id = &started.handler_id;
    let mut events = client.events(id, Some(0));
    read_until(&mut events, |e| e.event_type == "InputRequiredEvent").await;

    let outcome = client.cancel(id, false).await.unwrap();
    assert_eq!(outcome.status, "cancelled");
    assert!(!outcome.is_deleted());
    assert_eq!(outcome.run_status, Some(RunStatus::Cancelled));
    // Idempotent.
    assert_eq!(client.cancel(id, false).await.unwrap().status, "cancelled");
    // The stream ends with the run's terminal event.
    let rest = read_all(&mut events).await;
    assert_eq!(types(&rest), ["RunCancelledEvent"]);
    let handler = client.wait(id, Duration::from_secs(5)).await.unwrap();
    assert_eq!(handler.status, HandlerStatus::Cancelled);
    assert!(matches!(
        handler.into_result().map_err(ClientError::from),
        Err(ClientError::RunFailed {
            status: HandlerStatus::Cancelled,
            ..
        })
    ));

    // A completed run cannot be cancelled.
    let done = client.run("greet", json!({})).await.unwrap();
    let error = client.cancel(&done.handler_id, false).await.unwrap_err();
    assert!(
        matches!(&error, ClientError::Conflict { detail } if detail.contains("completed")),
        "{error}"
    );

    // Purging deletes, running or not.
    assert!(
        client
            .cancel(&done.handler_id, true)
            .await
            .unwrap()
            .is_deleted()
    );
    let live = client.run_nowait("ask", json!({})).await.unwrap();
    assert!(
        client
            .cancel(&live.handler_id, true)
            .await
            .unwrap()
            .is_deleted()
    );
    for gone in [&done.handler_id, &live.handler_id] {
        assert!(matches!(
            client.handler(gone).await,
            Err(ClientError::NotFound { .. })
        ));
        assert!(matches!(
            client.cancel(gone, false).await,
            Err(ClientError::NotFound { .. })
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_times_out_and_the_run_goes_on() {
    let server = start(test_config()).await;
    let client = server.client();
    let started = client.run_nowait("ask", json!({})).await.unwrap();
    let id = &started.handler_id;

    let began = std::time::Instant::now();
    let error = client
        .wait(id, Duration::from_millis(300))
        .await
        .unwrap_err();
    let waited = began.elapsed();
    assert!(
        matches!(&error, ClientError::Timeout { after, .. }
            if *after == Duration::from_millis(300)),
        "{error}"
    );
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert!(error.is_transient());

    // The run is still there; answered, a wait without a limit returns it.
    assert_eq!(
        client.handler(id).await.unwrap().status,
        HandlerStatus::Running
    );
    let waiter = {
        let client = client.clone();
        let id = id.clone();
        tokio::spawn(async move { client.wait(&id, None).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    client
        .send_event(id, "HumanResponseEvent", json!({"response": "Al"}), None)
        .await
        .unwrap();
    let done = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("wait hung")
        .unwrap()
        .unwrap();
    assert_eq!(done.result_value(), Some(&json!("Hi Al")));

    // A request timeout is a timeout too: `run` of a run that waits for a human.
    let short = Client::builder(&server.url)
        .run_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let error = short.run("ask", json!({})).await.unwrap_err();
    assert!(matches!(error, ClientError::Timeout { .. }), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_unauthorized() {
    let server = start(test_config().auth_token("s3cret")).await;

    let anonymous = server.client();
    // `/health` is open.
    assert!(anonymous.health().await.unwrap().is_healthy());
    let error = anonymous.workflows().await.unwrap_err();
    assert!(
        matches!(&error, ClientError::Unauthorized { detail }
            if detail.contains("Missing bearer token")),
        "{error}"
    );
    let wrong = Client::builder(&server.url).token("guess").build().unwrap();
    let error = wrong.run("greet", json!({})).await.unwrap_err();
    assert!(
        matches!(&error, ClientError::Unauthorized { detail }
            if detail.contains("Invalid bearer token")),
        "{error}"
    );
    assert_eq!(error.status(), Some(401));
    // Streams too: the error ends the stream at once.
    let mut events = wrong.events("any", Some(0));
    assert!(matches!(
        events.next().await,
        Some(Err(ClientError::Unauthorized { .. }))
    ));
    assert!(events.next().await.is_none());

    let client = Client::builder(&server.url)
        .token("s3cret")
        .build()
        .unwrap();
    let started = client.run_nowait("greet", json!({})).await.unwrap();
    let mut events = client.events(&started.handler_id, Some(0));
    assert_eq!(
        types(&read_all(&mut events).await),
        ["Progress", "StopEvent"]
    );
    assert_eq!(
        client
            .wait(&started.handler_id, Duration::from_secs(5))
            .await
            .unwrap()
            .status,
        HandlerStatus::Completed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_workflows_and_handlers_are_not_found() {
    let server = start(test_config()).await;
    let client = server.client();
    let error = client.run("nope", json!({})).await.unwrap_err();
    assert!(
        matches!(&error, ClientError::NotFound { detail } if detail == "Workflow 'nope' not found"),
        "{error}"
    );
    assert_eq!(error.detail(), Some("Workflow 'nope' not found"));
    assert!(matches!(
        client.run_nowait("nope", json!({})).await,
        Err(ClientError::NotFound { .. })
    ));
    assert!(matches!(
        client.workflow_schema("nope").await,
        Err(ClientError::NotFound { .. })
    ));
    assert!(matches!(
        client.workflow_events("nope").await,
        Err(ClientError::NotFound { .. })
    ));
    assert!(matches!(
        client.workflow_representation("nope").await,
        Err(ClientError::NotFound { .. })
    ));
    assert!(matches!(
        client
            .send_event("nope", "HumanResponseEvent", json!({"response": "x"}), None)
            .await,
        Err(ClientError::NotFound { .. })
    ));
    assert!(matches!(
        client.wait("nope", Duration::from_secs(1)).await,
        Err(ClientError::NotFound { .. })
    ));
    let mut events = client.events("nope", Some(0));
    match events.next().await {
        Some(Err(ClientError::NotFound { detail })) => assert!(detail.contains("nope")),
        other => panic!("{other:?}"),
    }
    assert!(events.next().await.is_none());

    // Nothing listens there: a transport error, not a hang.
    let dead = Client::builder("http://127.0.0.1:9")
        .max_reconnects(1)
        .reconnect_delay(Duration::from_millis(10))
        .build()
        .unwrap();
    let error = dead.health().await.unwrap_err();
    assert!(matches!(error, ClientError::Transport(_)), "{error}");
    let mut events = dead.events("any", Some(0));
    assert!(matches!(
        events.next().await,
        Some(Err(ClientError::Transport(_)))
    ));
    assert!(events.next().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_resumes_after_the_connection_is_cut() {
    let server = start(test_config()).await;
    let direct = server.client();
    let proxy = Proxy::start(server.addr()).await;
    let through_proxy = Client::builder(proxy.url())
        .reconnect_delay(Duration::from_millis(20))
        .build()
        .unwrap();

    let started = direct.run_nowait("ticker", json!({})).await.unwrap();
    let id = &started.handler_id;
    let mut events = through_proxy.events(id, None);
    let mut seen = read_until(&mut events, |e| e.event_type == "InputRequiredEvent").await;
    assert_eq!(seen.len(), TICKS as usize + 1);

    // Cut while the stream is idle (the run waits), then let the run go on.
    proxy.cut();
    direct
        .send_event(id, "HumanResponseEvent", json!({"response": "go"}), None)
        .await
        .unwrap();
    // Cut again in the middle of the second half, while ticks flow one commit at a time.
    seen.extend(read_until(&mut events, |e| e.value["n"] == TICKS + 2).await);
    proxy.cut();
    seen.extend(read_all(&mut events).await);

    // Every event once, in order, ending with the stop event.
    assert_gapless(&seen);
    let ticks: Vec<u64> = seen
        .iter()
        .filter(|e| e.event_type == "Tick")
        .map(|e| e.value["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ticks, (1..=2 * u64::from(TICKS)).collect::<Vec<_>>());
    assert_eq!(seen.last().unwrap().event_type, "StopEvent");
    assert_eq!(events.last_sequence(), Some(seen.len() as u64));
    assert!(events.connections() >= 3, "{}", events.connections());
    assert!(proxy.accepted() >= 3, "{}", proxy.accepted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_replaced_and_heartbeats_keep_a_live_one() {
    let server = start(test_config()).await;
    let direct = server.client();
    let proxy = Proxy::start(server.addr()).await;
    // Heartbeats every 100 ms; silence for 500 ms means a dead connection.
    let through_proxy = Client::builder(proxy.url())
        .stream_idle_timeout(Duration::from_millis(500))
        .reconnect_delay(Duration::from_millis(20))
        .build()
        .unwrap();

    let started = direct.run_nowait("ask", json!({})).await.unwrap();
    let id = &started.handler_id;
    let mut events = through_proxy.events(id, None);
    read_until(&mut events, |e| e.event_type == "InputRequiredEvent").await;

    // Three idle timeouts long without events: the heartbeats keep the connection.
    let reading = tokio::time::timeout(Duration::from_millis(1500), events.next()).await;
    assert!(reading.is_err(), "{reading:?}");
    assert_eq!(events.connections(), 1);

    // A connection that stops delivering anything (a half-dead proxy, a lost network) is
    // replaced once the idle timeout passes.
    proxy.freeze();
    let answer = {
        let direct = direct.clone();
        let id = id.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            direct
                .send_event(&id, "HumanResponseEvent", json!({"response": "Zed"}), None)
                .await
                .unwrap();
        }
    };
    let (rest, ()) = tokio::join!(read_all(&mut events), answer);
    assert_eq!(types(&rest), ["StopEvent"]);
    assert_eq!(rest[0].seq, 2);
    assert_eq!(rest[0].value["result"], "Hi Zed");
    assert_eq!(events.connections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_follows_a_run_across_a_server_restart() {
    let mut first = start(test_config()).await;
    let proxy = Proxy::start(first.addr()).await;
    let client = Client::builder(proxy.url())
        .reconnect_delay(Duration::from_millis(50))
        .build()
        .unwrap();
    let started = first
        .client()
        .run_nowait("approve", json!({}))
        .await
        .unwrap();
    let id = started.handler_id.clone();
    let mut events = client.events(&id, Some(0));
    let mut seen = read_until(&mut events, |e| e.event_type == "InputRequiredEvent").await;

    // The server shuts down (its streams end); the client keeps trying while it is down.
    let reader = tokio::spawn(async move {
        let rest = read_all(&mut events).await;
        (rest, events.connections())
    });
    first.shutdown().await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Another server on the same store takes over; the proxy now leads there.
    let second = start_in(Arc::clone(&first.dir), test_config()).await;
    proxy.redirect(second.addr());
    second
        .client()
        .send_event(&id, "HumanResponseEvent", json!({"response": "yes"}), None)
        .await
        .unwrap();
    let (rest, connections) = tokio::time::timeout(Duration::from_secs(15), reader)
        .await
        .expect("the stream did not resume")
        .unwrap();
    seen.extend(rest);
    assert_eq!(types(&seen), ["InputRequiredEvent", "StopEvent"]);
    assert_gapless(&seen);
    assert_eq!(seen[1].value["result"], Value::Bool(true));
    assert!(connections >= 2, "{connections}");
}
