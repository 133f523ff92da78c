//! Every route of the server, over HTTP, against a real server on a loopback port.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use eventflow::store::RunStatus;
use eventflow_server::{Cors, Server};
use futures::StreamExt;
use serde_json::{Value, json};

#[tokio::test]
async fn health_and_workflows() {
    let server = start(test_config()).await;
    assert_eq!(
        server.get("/health").await,
        (200, json!({"status": "healthy"}))
    );
    assert_eq!(
        server.get("/workflows").await,
        (
            200,
            json!({"workflows": ["greet", "fail", "ask", "orders", "approve", "visits", "pair"]})
        )
    );
    let (status, body) = server.get("/nowhere").await;
    assert_eq!(status, 404);
    assert!(body["detail"].as_str().unwrap().contains("/nowhere"));
}

#[tokio::test]
async fn run_waits_for_the_result() {
    let server = start(test_config()).await;
    let (status, data) = server
        .post(
            "/workflows/greet/run",
            json!({"start_event": {"name": "Ada"}, "context": {}}),
        )
        .await;
    assert_eq!(status, 200, "{data}");
    assert_handler_shape(&data);
    assert_eq!(data["status"], "completed");
    assert_eq!(data["handler_id"], data["run_id"]);
    assert_eq!(
        data["result"],
        json!({"value": {"result": "Hello, Ada!"}, "qualified_name": "workflows.events.StopEvent",
               "type": "StopEvent", "types": null})
    );
    assert_eq!(data["completed_at"], data["updated_at"]);
    assert_eq!(data["last_sequence"], 2);

    // A failed run is a 500 whose body names the step and the cause.
    let (status, data) = server.post("/workflows/fail/run", json!({})).await;
    assert_eq!(status, 500, "{data}");
    assert_handler_shape(&data);
    assert_eq!(data["status"], "failed");
    let error = data["error"].as_str().unwrap();
    assert!(
        error.contains("boom") && error.contains("kaboom"),
        "{error}"
    );
    assert_eq!(data["result"], Value::Null);

    // A typed start event, decoded from JSON.
    let (status, data) = server
        .post(
            "/workflows/orders/run",
            json!({"start_event": {"item": "tea", "quantity": 2}}),
        )
        .await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["result"]["value"]["result"], 6);
    // ... and as an envelope naming the type (the form `run_workflow_nowait` sends).
    let (status, data) = server
        .post(
            "/workflows/orders/run",
            json!({"start_event": {"type": "Order", "value": {"item": "tea", "quantity": 5},
                   "qualified_name": null}}),
        )
        .await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["result"]["value"]["result"], 15);
}

#[tokio::test]
async fn run_nowait_accepts_every_start_form() {
    let server = start(test_config()).await;
    let forms = [
        // What `WorkflowClient.run_workflow_nowait` sends: an envelope with Python's `_data`.
        json!({"start_event": {"type": "StartEvent", "value": {"_data": {"name": "Ada"}},
               "qualified_name": null}, "context": {}}),
        // Bare fields, as `run_workflow` sends them.
        json!({"start_event": {"name": "Ada"}}),
        // Keyword arguments.
        json!({"kwargs": {"name": "Ada"}}),
        // A JSON string holding the envelope.
        json!({"start_event": "{\"type\": \"StartEvent\", \"value\": {\"name\": \"Ada\"}}"}),
        // Both: merged, `start_event` winning...
        json!({"start_event": {"name": "Ada"}, "kwargs": {"name": "Bob", "extra": 1}}),
        // ... and `kwargs` giving what `start_event` does not.
        json!({"start_event": {"extra": 1}, "kwargs": {"name": "Ada"}}),
        // An envelope without `value`: `type` and `qualified_name` make it one (the
        // reference's rule), its fields in the legacy `data`.
        json!({"start_event": {"type": "StartEvent", "qualified_name": "workflows.events.StartEvent",
               "data": {"name": "Ada"}}}),
    ];
    for body in forms {
        let (status, data) = server
            .post("/workflows/greet/run-nowait", body.clone())
            .await;
        assert_eq!(status, 200, "{body}: {data}");
        assert_handler_shape(&data);
        assert_eq!(data["after_sequence"], 0);
        let id = data["handler_id"].as_str().unwrap();
        let done = server.wait_status(id, &["completed"]).await;
        assert_eq!(
            done["result"]["value"]["result"], "Hello, Ada!",
            "{body}: {done}"
        );
    }
    // No body at all, and an empty object: an empty start event.
    for response in [
        server
            .http
            .post(server.at("/workflows/greet/run-nowait"))
            .send()
            .await
            .unwrap(),
        server
            .http
            .post(server.at("/workflows/greet/run-nowait"))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    ] {
        let (status, data) = split(response).await;
        assert_eq!(status, 200, "{data}");
        let done = server
            .wait_status(data["handler_id"].as_str().unwrap(), &["completed"])
            .await;
        assert_eq!(done["result"]["value"]["result"], "Hello, world!");
    }
    // A chosen handler id is the run id; using it while its run has not finished is a
    // conflict (see `a_finished_handler_continues_with_its_state` for a finished one).
    let id = server
        .start_run("ask", json!({"handler_id": "my-run-1"}))
        .await;
    assert_eq!(id, "my-run-1");
    server.wait_status(&id, &["waiting"]).await;
    let (status, body) = server
        .post(
            "/workflows/ask/run-nowait",
            json!({"handler_id": "my-run-1"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("Handler 'my-run-1' is already running"),
        "{detail}"
    );
    // An idempotency key returns the first run.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let response = server
            .http
            .post(server.at("/workflows/greet/run-nowait"))
            .header("Idempotency-Key", "order-42")
            .json(&json!({"start_event": {"name": "Kay"}}))
            .send()
            .await
            .unwrap();
        let (status, data) = split(response).await;
        assert_eq!(status, 200, "{data}");
        ids.push(data["handler_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids[0], ids[1]);
}

/// The types and ids of SSE events.
fn seen(events: &[(String, Value)]) -> Vec<(u64, String)> {
    events
        .iter()
        .map(|(id, event)| {
            (
                id.parse().unwrap(),
                event["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_finished_handler_continues_with_its_state() {
    let server = start(test_config()).await;
    // First run under a chosen handler id.
    let (status, data) = server
        .post(
            "/workflows/visits/run",
            json!({"start_event": {"who": "ada"}, "handler_id": "ada"}),
        )
        .await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["result"]["value"]["result"], "ada: visit 1");
    assert_eq!(data["last_sequence"], 2);

    // The same handler id again: the run starts again with the state it left.
    let (status, data) = server
        .post(
            "/workflows/visits/run",
            json!({"start_event": {"who": "ada"}, "handler_id": "ada"}),
        )
        .await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["handler_id"], "ada");
    assert_eq!(data["run_id"], "ada");
    assert_eq!(data["result"]["value"]["result"], "ada: visit 2");
    assert_eq!(data["last_sequence"], 4);

    // run-nowait says where the new run's events start.
    let (status, data) = server
        .post(
            "/workflows/visits/run-nowait",
            json!({"start_event": {"type": "StartEvent", "value": {"_data": {"who": "ada"}}},
                   "handler_id": "ada"}),
        )
        .await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["after_sequence"], 4);
    let done = server.wait_status("ada", &["completed"]).await;
    assert_eq!(done["result"]["value"]["result"], "ada: visit 3");
    let (_, handlers) = server.get("/handlers?workflow_name=visits").await;
    assert_eq!(handlers["handlers"].as_array().unwrap().len(), 1);

    // A fresh reader gets the current run's events; `-1` (the Python client's default) too;
    // 0 gets every run's.
    let current = [(5, "Visit".to_owned()), (6, "StopEvent".to_owned())];
    let (status, events) = server.sse("/events/ada", None).await;
    assert_eq!(status, 200);
    assert_eq!(seen(&events), current);
    assert_eq!(events[0].1["value"]["n"], 3);
    let (_, events) = server.sse("/events/ada?after_sequence=-1", None).await;
    assert_eq!(seen(&events), current);
    let (_, events) = server.sse("/events/ada?after_sequence=0", None).await;
    assert_eq!(events.len(), 6);
    // A negative Last-Event-ID is the current run's events too, and wins over the query.
    let (_, events) = server.sse("/events/ada?after_sequence=0", Some("-1")).await;
    assert_eq!(seen(&events), current);
    assert_eq!(
        server.sse("/events/ada?after_sequence=now", None).await.0,
        204
    );

    // The handler of another workflow's run is a conflict.
    let (status, body) = server
        .post("/workflows/greet/run-nowait", json!({"handler_id": "ada"}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["detail"],
        "Handler 'ada' is a run of workflow 'visits': a handler id continues runs of its own \
         workflow only"
    );

    // A continued run that waits: the stream follows it past the previous run's stop event,
    // and its handler id is busy until it finishes.
    let (status, data) = server
        .post("/workflows/approve/run-nowait", json!({"handler_id": "ok"}))
        .await;
    assert_eq!(status, 200, "{data}");
    server.wait_status("ok", &["waiting"]).await;
    let answer = json!({"event": {"type": "HumanResponseEvent", "value": {"response": "yes"}}});
    assert_eq!(server.post("/events/ok", answer.clone()).await.0, 200);
    server.wait_status("ok", &["completed"]).await;
    let (status, data) = server
        .post("/workflows/approve/run-nowait", json!({"handler_id": "ok"}))
        .await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["after_sequence"], 2);
    server.wait_status("ok", &["waiting"]).await;
    let (status, body) = server
        .post("/workflows/approve/run", json!({"handler_id": "ok"}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("Handler 'ok' is already running"),
        "{body}"
    );
    let readers: Vec<_> = ["", "?after_sequence=0", "?after_sequence=2"]
        .into_iter()
        .map(|query| {
            let http = server.http.clone();
            let url = server.at(&format!("/events/ok{query}"));
            tokio::spawn(async move { read_sse(http.get(url).send().await.unwrap()).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.post("/events/ok", answer).await.0, 200);
    let mut all = Vec::new();
    for reader in readers {
        all.push(seen(&reader.await.unwrap()));
    }
    let second = vec![
        (3, "InputRequiredEvent".to_owned()),
        (4, "StopEvent".to_owned()),
    ];
    let mut every = vec![
        (1, "InputRequiredEvent".to_owned()),
        (2, "StopEvent".to_owned()),
    ];
    every.extend(second.clone());
    assert_eq!(all, [second.clone(), every, second]);

    // A cancelled handler starts again too; its fresh readers start after `RunCancelledEvent`.
    let id = server
        .start_run("ask", json!({"handler_id": "again"}))
        .await;
    server.wait_status(&id, &["waiting"]).await;
    let (status, _) = server.post("/handlers/again/cancel", json!(null)).await;
    assert_eq!(status, 200);
    let (_, events) = server.sse("/events/again", None).await;
    assert_eq!(
        seen(&events),
        [
            (1, "InputRequiredEvent".to_owned()),
            (2, "RunCancelledEvent".to_owned())
        ]
    );
    let (status, data) = server
        .post("/workflows/ask/run-nowait", json!({"handler_id": "again"}))
        .await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["after_sequence"], 2);
    server.wait_status("again", &["waiting"]).await;
    let reader = {
        let http = server.http.clone();
        let url = server.at("/events/again");
        tokio::spawn(async move { read_sse(http.get(url).send().await.unwrap()).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let answer = json!({"event": {"type": "HumanResponseEvent", "value": {"response": "Ann"}}});
    assert_eq!(server.post("/events/again", answer).await.0, 200);
    assert_eq!(
        seen(&reader.await.unwrap()),
        [
            (3, "InputRequiredEvent".to_owned()),
            (4, "StopEvent".to_owned())
        ]
    );
    let done = server.wait_status("again", &["completed"]).await;
    assert_eq!(done["result"]["value"]["result"], "Hi Ann");
    assert_eq!(done["error"], Value::Null);

    // A failed handler too: its fresh readers start after the `RunFailedEvent` of the run
    // before.
    for _ in 0..2 {
        let (status, data) = server
            .post("/workflows/fail/run", json!({"handler_id": "boom"}))
            .await;
        assert_eq!(status, 500, "{data}");
    }
    let (_, events) = server.sse("/events/boom", None).await;
    assert_eq!(seen(&events), [(2, "RunFailedEvent".to_owned())]);
    // It names the step, the attempts made and how long the last one ran.
    let failed = &events[0].1["value"];
    assert_eq!(failed["step"], "boom", "{failed}");
    assert_eq!(failed["attempts"], 1, "{failed}");
    assert!(failed["elapsed_ms"].is_u64(), "{failed}");
}

#[tokio::test]
async fn run_refuses_bad_input_and_keeps_serving() {
    let server = start(test_config()).await;
    let (status, body) = server.post_raw("/workflows/greet/run", "{bad").await;
    assert_eq!(status, 400);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("Invalid JSON body"),
        "{body}"
    );
    let (status, body) = server.post_raw("/workflows/greet/run-nowait", "[1]").await;
    assert_eq!(status, 400);
    assert!(
        body["detail"].as_str().unwrap().contains("an array"),
        "{body}"
    );
    let (status, body) = server.post("/workflows/nope/run", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(body["detail"], "Workflow 'nope' not found");
    let (status, _) = server.post("/workflows/nope/run-nowait", json!({})).await;
    assert_eq!(status, 404);
    let cases = [
        (
            json!({"start_event": {"type": "Nope", "value": {}}}),
            "Invalid event type: Nope",
        ),
        (
            json!({"start_event": {"type": "StopEvent", "value": {"result": 1}}}),
            "Start event must be an instance of StartEvent",
        ),
        (json!({"start_event": 42}), "Must be a json object"),
        (json!({"context": {"state": {}}}), "Context API"),
        (json!({"kwargs": [1]}), "'kwargs' must be a JSON object"),
        (json!({"handler_id": 7}), "'handler_id' must be a string"),
    ];
    for (body, expected) in cases {
        let (status, answer) = server
            .post("/workflows/greet/run-nowait", body.clone())
            .await;
        assert_eq!(status, 400, "{body}: {answer}");
        let detail = answer["detail"].as_str().unwrap();
        assert!(detail.contains(expected), "{body}: {detail}");
    }
    // A typed start event: an envelope of another type is refused, naming both.
    let (status, answer) = server
        .post(
            "/workflows/orders/run-nowait",
            json!({"start_event": {"type": "StartEvent", "value": {}}}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        answer["detail"],
        "Validation error for 'start_event': Start event must be an instance of Order, got StartEvent"
    );
    // A typed start event with a missing field names the field.
    let (status, answer) = server
        .post(
            "/workflows/orders/run-nowait",
            json!({"start_event": {"item": "tea"}}),
        )
        .await;
    assert_eq!(status, 400);
    let detail = answer["detail"].as_str().unwrap();
    assert!(
        detail.contains("Order does not decode") && detail.contains("quantity"),
        "{detail}"
    );
    // Nothing was started by the refused requests, and the server still serves.
    let (_, list) = server.get("/handlers").await;
    assert_eq!(list["handlers"], json!([]));
    assert_eq!(server.get("/health").await.0, 200);
    let (status, _) = server
        .post(
            "/workflows/greet/run",
            json!({"start_event": {"name": "Z"}}),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn schemas_events_and_representation() {
    let server = start(test_config()).await;
    let (status, schema) = server.get("/workflows/greet/schema").await;
    assert_eq!(status, 200);
    assert_eq!(schema["start"]["title"], "StartEvent");
    assert_eq!(schema["start"]["type"], "object");
    assert_eq!(schema["stop"]["required"], json!(["result"]));
    // A typed start event's schema, generated from the Rust type.
    let (_, schema) = server.get("/workflows/orders/schema").await;
    assert_eq!(schema["start"]["title"], "Order");
    assert_eq!(schema["start"]["properties"]["quantity"]["type"], "integer");
    let mut required: Vec<String> =
        serde_json::from_value(schema["start"]["required"].clone()).unwrap();
    required.sort();
    assert_eq!(required, ["item", "quantity"]);
    assert_eq!(server.get("/workflows/nope/schema").await.0, 404);

    let (status, events) = server.get("/workflows/greet/events").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|schema| schema["x-eventflow-event"].as_str().unwrap())
        .collect();
    // Every type a run knows: its signatures' and the built-in ones, sorted.
    assert_eq!(
        names,
        [
            "HumanResponseEvent",
            "InputRequiredEvent",
            "StartEvent",
            "StopEvent"
        ]
    );
    let (_, events) = server.get("/workflows/orders/events").await;
    let order = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|schema| schema["x-eventflow-event"] == "Order")
        .unwrap();
    assert_eq!(order["properties"]["item"]["type"], "string");
    assert_eq!(server.get("/workflows/nope/events").await.0, 404);

    let (status, graph) = server.get("/workflows/orders/representation").await;
    assert_eq!(status, 200);
    let graph = &graph["graph"];
    assert_eq!(graph["name"], "orders");
    let step = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|node| node["id"] == "price")
        .unwrap();
    assert_eq!(step["node_type"], "step");
    let order = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|node| node["id"] == "Order")
        .unwrap();
    assert_eq!(order["node_type"], "event");
    assert_eq!(order["event_type"], "Order");
    assert_eq!(order["role"], "start");
    assert_eq!(order["event_schema"]["title"], "Order");
    let stop = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|node| node["id"] == "StopEvent")
        .unwrap();
    assert_eq!(stop["produced_by"], json!(["price"]));
    let edges: Vec<(String, String)> = graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| {
            (
                edge["source"].as_str().unwrap().to_owned(),
                edge["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(edges.contains(&("Order".into(), "price".into())));
    assert!(edges.contains(&("price".into(), "StopEvent".into())));
    assert_eq!(server.get("/workflows/nope/representation").await.0, 404);

    // Human in the loop in the signatures: an `external_step` node, as the reference draws it.
    let (_, graph) = server.get("/workflows/approve/representation").await;
    let graph = &graph["graph"];
    let external = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|node| node["id"] == "external_step")
        .unwrap();
    assert_eq!(external["node_type"], "external");
    let edges: Vec<(String, String)> = graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| {
            (
                edge["source"].as_str().unwrap().to_owned(),
                edge["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (source, target) in [
        ("StartEvent", "ask"),
        ("ask", "InputRequiredEvent"),
        ("InputRequiredEvent", "external_step"),
        ("external_step", "HumanResponseEvent"),
        ("HumanResponseEvent", "answer"),
        ("answer", "StopEvent"),
    ] {
        assert!(
            edges.contains(&(source.to_owned(), target.to_owned())),
            "{source} -> {target} missing in {edges:?}"
        );
    }
    assert_eq!(edges.len(), 6, "{edges:?}");
}

#[tokio::test]
async fn an_answer_routed_to_the_step_that_accepts_it() {
    let server = start(test_config()).await;
    let id = server.start_run("approve", json!({})).await;
    server.wait_status(&id, &["waiting"]).await;
    // A step that exists but does not accept the event: 400 naming both, and nothing is sent.
    let (status, body) = server
        .post(
            &format!("/events/{id}"),
            json!({"event": {"type": "HumanResponseEvent", "value": {"response": "no"}},
                   "step": "ask"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("`ask`") && detail.contains("HumanResponseEvent"),
        "{detail}"
    );
    let (status, body) = server
        .post(
            &format!("/events/{id}"),
            json!({"event": {"type": "HumanResponseEvent", "value": {"response": "yes"}},
                   "step": "answer"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let done = server.wait_status(&id, &["completed"]).await;
    assert_eq!(done["result"]["value"]["result"], true);
    let (_, events) = server.sse(&format!("/events/{id}"), None).await;
    let types: Vec<&str> = events
        .iter()
        .map(|(_, event)| event["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["InputRequiredEvent", "StopEvent"]);
}

#[tokio::test]
async fn handlers_list_and_filters() {
    let server = start(test_config()).await;
    let (status, _) = server.post("/workflows/greet/run", json!({})).await;
    assert_eq!(status, 200);
    let (status, _) = server.post("/workflows/fail/run", json!({})).await;
    assert_eq!(status, 500);
    let waiting = server.start_run("ask", json!({})).await;
    server.wait_status(&waiting, &["waiting"]).await;

    let (status, list) = server.get("/handlers").await;
    assert_eq!(status, 200);
    assert_eq!(list["handlers"].as_array().unwrap().len(), 3);
    for handler in list["handlers"].as_array().unwrap() {
        assert_handler_shape(handler);
    }
    let workflows = |list: &Value| -> Vec<String> {
        list["handlers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["workflow_name"].as_str().unwrap().to_owned())
            .collect()
    };
    // `running` covers eventflow's waiting runs.
    let (_, list) = server.get("/handlers?status=running").await;
    assert_eq!(workflows(&list), ["ask"]);
    assert_eq!(list["handlers"][0]["status"], "running");
    assert_eq!(list["handlers"][0]["eventflow_status"], "waiting");
    let (_, list) = server.get("/handlers?status=completed&status=failed").await;
    assert_eq!(workflows(&list), ["greet", "fail"]);
    let (_, list) = server
        .get("/handlers?workflow_name=fail&workflow_name=ask")
        .await;
    assert_eq!(workflows(&list), ["fail", "ask"]);
    let (_, list) = server
        .get("/handlers?status=completed&workflow_name=fail")
        .await;
    assert_eq!(workflows(&list), Vec::<String>::new());
    let (_, list) = server.get("/handlers?status=waiting").await;
    assert_eq!(workflows(&list), ["ask"]);
    let (_, list) = server.get("/handlers?status=").await;
    assert_eq!(list["handlers"].as_array().unwrap().len(), 3);
    let (status, body) = server.get("/handlers?status=bogus").await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("bogus"));

    // One handler: 202 while running, 200 completed, 500 failed, 404 unknown.
    let (status, data) = server.get(&format!("/handlers/{waiting}")).await;
    assert_eq!(status, 202);
    assert_eq!(data["completed_at"], Value::Null);
    let (_, list) = server.get("/handlers?status=failed").await;
    let failed = list["handlers"][0]["handler_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, data) = server.get(&format!("/handlers/{failed}")).await;
    assert_eq!(status, 500);
    assert_eq!(data["status"], "failed");
    let (_, list) = server.get("/handlers?status=completed").await;
    let completed = list["handlers"][0]["handler_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(server.get(&format!("/handlers/{completed}")).await.0, 200);
    let (status, body) = server.get("/handlers/unknown").await;
    assert_eq!(status, 404);
    assert_eq!(body["detail"], "Handler 'unknown' not found");
    // The deprecated results route unwraps the stop event's result.
    let (status, data) = server.get(&format!("/results/{completed}")).await;
    assert_eq!(status, 200);
    assert_eq!(data["result"], "Hello, world!");
    assert_eq!(server.get("/results/unknown").await.0, 404);
}

#[tokio::test]
async fn human_in_the_loop_over_http() {
    let server = start(test_config()).await;
    let id = server
        .start_run(
            "ask",
            json!({"start_event": {"type": "StartEvent", "value": {}}}),
        )
        .await;
    // Follow the stream while the run waits for its answer.
    let reader = {
        let http = server.http.clone();
        let url = server.at(&format!("/events/{id}"));
        tokio::spawn(async move { read_sse(http.get(url).send().await.unwrap()).await })
    };
    let waiting = server.wait_status(&id, &["waiting"]).await;
    assert_eq!(waiting["status"], "running");
    assert_eq!(server.get(&format!("/handlers/{id}")).await.0, 202);

    let path = format!("/events/{id}");
    // Bad answers are refused, naming the problem.
    let (status, body) = server
        .post(&path, json!({"event": {"type": "Nope", "value": {}}}))
        .await;
    assert_eq!(status, 400);
    let detail = body["detail"].as_str().unwrap();
    assert_eq!(
        detail,
        "Invalid event type: Nope. Expected one of HumanResponseEvent, InputRequiredEvent, \
         StartEvent, StopEvent (the event types of workflow 'ask')"
    );
    let (status, body) = server
        .post(
            &path,
            json!({"event": {"type": "HumanResponseEvent", "value": {"response": 3}}}),
        )
        .await;
    assert_eq!(status, 400);
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("HumanResponseEvent") && detail.contains("invalid type"),
        "{detail}"
    );
    let (status, body) = server.post(&path, json!({})).await;
    assert_eq!(
        (status, body["detail"].as_str().unwrap()),
        (400, "Event data is required")
    );
    let (status, _) = server.post_raw(&path, "{\"event\": ").await;
    assert_eq!(status, 400);
    let (status, body) = server
        .post(
            &path,
            json!({"event": {"type": "HumanResponseEvent", "value": {"response": "x"}}, "step": "nope"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("nope"), "{body}");
    let (status, _) = server
        .post(
            "/events/unknown",
            json!({"event": {"type": "HumanResponseEvent", "value": {"response": "x"}}}),
        )
        .await;
    assert_eq!(status, 404);

    // The answer, as the Python client sends it (Python's `_data` form). Sending it again is
    // `a_repeated_send_is_a_duplicate_while_the_run_waits`'s subject: here the run would race
    // to its end.
    let response = server
        .http
        .post(server.at(&path))
        .header("Idempotency-Key", "answer-1")
        .json(&json!({"event": {"type": "HumanResponseEvent",
                      "value": {"_data": {"response": "Bob"}}, "qualified_name": null}}))
        .send()
        .await
        .unwrap();
    let (status, body) = split(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"status": "sent", "duplicate": false}));
    let done = server.wait_status(&id, &["completed"]).await;
    assert_eq!(done["result"]["value"]["result"], "Hi Bob");

    let events = reader.await.unwrap();
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|(id, event)| (id.as_str(), event["type"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, [("1", "InputRequiredEvent"), ("2", "StopEvent")]);
    assert_eq!(events[0].1["value"]["prefix"], "Your name?");
    assert_eq!(
        events[0].1["qualified_name"],
        "workflows.events.InputRequiredEvent"
    );
    // The run has finished: more answers are a conflict.
    let (status, body) = server
        .post(
            &path,
            json!({"event": {"type": "HumanResponseEvent", "value": {"response": "late"}}}),
        )
        .await;
    assert_eq!(status, 409);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("Workflow already completed"),
        "{body}"
    );
    // Whatever the event: the run's end is checked before the event is read.
    let (status, body) = server
        .post(&path, json!({"event": {"type": "Nope", "value": {}}}))
        .await;
    assert_eq!(status, 409, "{body}");
}

/// Sends `response` as a `HumanResponseEvent` to `path` under `Idempotency-Key: key`.
async fn send_keyed(server: &TestServer, path: &str, key: &str, response: &str) -> (u16, Value) {
    let request = server
        .http
        .post(server.at(path))
        .header("Idempotency-Key", key)
        .json(&json!({"event": {"type": "HumanResponseEvent", "value": {"response": response}}}));
    split(request.send().await.unwrap()).await
}

#[tokio::test]
async fn a_repeated_send_is_a_duplicate_while_the_run_waits() {
    let server = start(test_config()).await;
    let id = server.start_run("pair", json!({})).await;
    server.wait_status(&id, &["waiting"]).await;
    let path = format!("/events/{id}");
    let sent = |duplicate: bool| (200, json!({"status": "sent", "duplicate": duplicate}));

    // The first answer, and at once the same send again: the run cannot finish before a second
    // answer, so only `duplicate: true` is right (the first may not be consumed yet).
    assert_eq!(
        send_keyed(&server, &path, "answer-1", "Bob").await,
        sent(false)
    );
    assert_eq!(
        send_keyed(&server, &path, "answer-1", "Bob").await,
        sent(true)
    );
    // Once the first answer was consumed (the second question is out), still a duplicate, even
    // with another body.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.store.events_after(&id, 0, 10).await.unwrap().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no second question");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.wait_status(&id, &["waiting"]).await;
    assert_eq!(
        send_keyed(&server, &path, "answer-1", "Eve").await,
        sent(true)
    );

    // The second answer finishes the run with the first answer, once.
    assert_eq!(
        send_keyed(&server, &path, "answer-2", "Ann").await,
        sent(false)
    );
    let done = server.wait_status(&id, &["completed"]).await;
    assert_eq!(done["result"]["value"]["result"], "Bob and Ann");
    let (_, events) = server.sse(&path, None).await;
    let seen: Vec<(&Value, &Value)> = events
        .iter()
        .map(|(_, event)| (&event["type"], &event["value"]["prefix"]))
        .collect();
    assert_eq!(
        seen,
        [
            (&json!("InputRequiredEvent"), &json!("First?")),
            (&json!("InputRequiredEvent"), &json!("Second?")),
            (&json!("StopEvent"), &Value::Null),
        ]
    );
}

#[tokio::test]
async fn sse_resume_and_ndjson() {
    let server = start(test_config()).await;
    let (_, data) = server
        .post(
            "/workflows/greet/run",
            json!({"start_event": {"name": "Ada"}}),
        )
        .await;
    let id = data["handler_id"].as_str().unwrap().to_owned();
    let path = format!("/events/{id}");

    // A fresh reader gets the whole history, then the stream closes.
    let (status, events) = server.sse(&path, None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = events.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["1", "2"]);
    assert_eq!(
        events[0].1,
        json!({"value": {"percent": 50}, "qualified_name": null, "type": "Progress", "types": null})
    );
    assert_eq!(events[1].1["type"], "StopEvent");
    // The Python client's default cursor.
    let (_, events) = server
        .sse(
            &format!("{path}?sse=true&after_sequence=-1&include_internal=false"),
            None,
        )
        .await;
    assert_eq!(events.len(), 2);
    // Resume with Last-Event-ID, which wins over after_sequence.
    let (_, events) = server.sse(&path, Some("1")).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "2");
    let (_, events) = server
        .sse(&format!("{path}?after_sequence=0"), Some("1"))
        .await;
    assert_eq!(events.len(), 1);
    let (_, events) = server.sse(&format!("{path}?after_sequence=1"), None).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1["type"], "StopEvent");
    // Nothing left after the cursor of a finished run: 204.
    assert_eq!(
        server
            .sse(&format!("{path}?after_sequence=now"), None)
            .await
            .0,
        204
    );
    assert_eq!(server.sse(&path, Some("2")).await.0, 204);
    // Without qualified names.
    let (_, events) = server
        .sse(&format!("{path}?include_qualified_name=false"), None)
        .await;
    assert_eq!(events[1].1["qualified_name"], Value::Null);

    // NDJSON.
    let response = server
        .http
        .get(server.at(&format!("{path}?sse=false")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["value"]["result"], "Hello, Ada!");
    let response = server
        .http
        .get(server.at(&format!("{path}?sse=false&after_sequence=1")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap().lines().count(), 1);
    // Last-Event-ID is SSE's: an NDJSON reader's cursor is `after_sequence` only.
    let response = server
        .http
        .get(server.at(&format!("{path}?sse=false")))
        .header("Last-Event-ID", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap().lines().count(), 2);

    // Bad cursors and unknown handlers.
    let (status, body) = server.get(&format!("{path}?after_sequence=abc")).await;
    assert_eq!(status, 400);
    assert_eq!(body["detail"], "Invalid after_sequence: 'abc'");
    assert_eq!(server.get("/events/unknown").await.0, 404);
}

#[tokio::test]
async fn streams_follow_a_live_run_with_heartbeats_and_many_readers() {
    let server = start(test_config()).await;
    let id = server.start_run("ask", json!({})).await;
    server.wait_status(&id, &["waiting"]).await;
    let path = format!("/events/{id}");
    // A raw reader sees the question, then heartbeats while the run waits.
    let mut raw = server
        .http
        .get(server.at(&path))
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let mut text = String::new();
    read_raw_until(&mut raw, &mut text, ": heartbeat\n\n").await;
    assert!(text.starts_with("id: 1\ndata: {"), "{text}");
    // Several readers at once, one of them live from "now".
    let readers: Vec<_> = ["", "?after_sequence=now", "?after_sequence=-1"]
        .into_iter()
        .map(|query| {
            let http = server.http.clone();
            let url = server.at(&format!("{path}{query}"));
            tokio::spawn(async move { read_sse(http.get(url).send().await.unwrap()).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = server
        .post(
            &path,
            json!({"event": {"type": "HumanResponseEvent", "value": {"response": "Eve"}}}),
        )
        .await;
    assert_eq!(status, 200);
    let mut counts = Vec::new();
    for reader in readers {
        let events = reader.await.unwrap();
        assert_eq!(events.last().unwrap().1["value"]["result"], "Hi Eve");
        counts.push(events.len());
    }
    assert_eq!(counts, [2, 1, 2]);
    // The raw reader's stream closes after the stop event too.
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = raw.next().await {
            text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
    })
    .await;
    assert!(rest.is_ok(), "the stream did not close");
    assert!(text.contains("id: 2\ndata: "), "{text}");
}

#[tokio::test]
async fn cancel_and_purge() {
    let server = start(test_config()).await;
    let id = server.start_run("ask", json!({})).await;
    server.wait_status(&id, &["waiting"]).await;
    let cancel = format!("/handlers/{id}/cancel");
    let (status, body) = server.post(&cancel, json!(null)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["run_status"], "cancelled");
    let (status, data) = server.get(&format!("/handlers/{id}")).await;
    assert_eq!(
        (status, data["status"].as_str().unwrap()),
        (500, "cancelled")
    );
    // Idempotent.
    let (status, body) = server.post(&cancel, json!(null)).await;
    assert_eq!(
        (status, body["status"].as_str().unwrap()),
        (200, "cancelled")
    );
    // The stream ends with the terminal event.
    let (_, events) = server.sse(&format!("/events/{id}"), None).await;
    assert_eq!(events.last().unwrap().1["type"], "RunCancelledEvent");
    // Events for a cancelled run are a conflict.
    let (status, _) = server
        .post(
            &format!("/events/{id}"),
            json!({"event": {"type": "HumanResponseEvent", "value": {"response": "x"}}}),
        )
        .await;
    assert_eq!(status, 409);

    // A completed run cannot be cancelled, but can be purged.
    let (_, data) = server.post("/workflows/greet/run", json!({})).await;
    let done = data["handler_id"].as_str().unwrap().to_owned();
    let (status, body) = server
        .post(&format!("/handlers/{done}/cancel"), json!(null))
        .await;
    assert_eq!(status, 409);
    assert!(
        body["detail"].as_str().unwrap().contains("completed"),
        "{body}"
    );
    let (status, body) = server
        .post(&format!("/handlers/{done}/cancel?purge=true"), json!(null))
        .await;
    assert_eq!((status, body), (200, json!({"status": "deleted"})));
    assert_eq!(server.get(&format!("/handlers/{done}")).await.0, 404);
    assert_eq!(server.get(&format!("/events/{done}")).await.0, 404);
    assert!(server.store.get_run(&done).await.unwrap().is_none());
    assert!(
        server
            .store
            .events_after(&done, 0, 10)
            .await
            .is_ok_and(|events| events.is_empty())
            || server.store.events_after(&done, 0, 10).await.is_err()
    );

    // Purging a live run cancels and deletes it.
    let live = server.start_run("ask", json!({})).await;
    server.wait_status(&live, &["waiting"]).await;
    let (status, body) = server
        .post(&format!("/handlers/{live}/cancel?purge=true"), json!(null))
        .await;
    assert_eq!((status, body), (200, json!({"status": "deleted"})));
    assert_eq!(server.get(&format!("/handlers/{live}")).await.0, 404);

    // Unknown handlers.
    assert_eq!(
        server.post("/handlers/unknown/cancel", json!(null)).await.0,
        404
    );
    assert_eq!(
        server
            .post("/handlers/unknown/cancel?purge=true", json!(null))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn auth_body_limit_and_cors() {
    let server = start(
        test_config()
            .auth_token("s3cret")
            .body_limit(16 * 1024)
            .cors(Cors::Origins(vec!["https://app.example".into()])),
    )
    .await;
    // /health is open.
    assert_eq!(server.get("/health").await.0, 200);
    let response = server
        .http
        .get(server.at("/workflows"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let (_, body) = split(response).await;
    assert!(
        body["detail"].as_str().unwrap().contains("bearer"),
        "{body}"
    );
    let response = server
        .http
        .get(server.at("/workflows"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = server
        .http
        .post(server.at("/workflows/greet/run"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = server
        .http
        .get(server.at("/workflows"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The scheme's case does not matter (RFC 9110); the token's does.
    for (header, status) in [
        ("BEARER s3cret", 200),
        ("bearer s3cret", 200),
        ("Bearer S3CRET", 401),
        ("Basic s3cret", 401),
        ("s3cret", 401),
    ] {
        let response = server
            .http
            .get(server.at("/workflows"))
            .header("Authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{header}");
    }

    // A body over the limit is a 413, as JSON; the server keeps serving.
    let big = format!(
        "{{\"start_event\": {{\"blob\": \"{}\"}}}}",
        "x".repeat(20 * 1024)
    );
    let response = server
        .http
        .post(server.at("/workflows/greet/run"))
        .bearer_auth("s3cret")
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let (_, body) = split(response).await;
    assert!(body["detail"].as_str().unwrap().contains("16384"), "{body}");
    let response = server
        .http
        .post(server.at("/workflows/greet/run"))
        .bearer_auth("s3cret")
        .json(&json!({"start_event": {"name": "Ada"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // CORS: the allowed origin is echoed, another is not.
    let preflight = |origin: &'static str| {
        server
            .http
            .request(reqwest::Method::OPTIONS, server.at("/workflows"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
    };
    let response = preflight("https://app.example").await.unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let response = preflight("https://evil.example").await.unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

/// A server on your machine is not callable from every web page you visit: no CORS headers
/// unless origins are configured, so a browser refuses a cross-origin call (and its preflight).
#[tokio::test]
async fn cross_origin_calls_are_refused_by_default() {
    let server = start(test_config()).await;
    let response = server
        .http
        .get(server.at("/workflows"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    let headers = response.headers();
    assert!(
        headers.get("access-control-allow-origin").is_none(),
        "{headers:?}"
    );
    assert!(headers.get("access-control-allow-credentials").is_none());
    let response = server
        .http
        .request(reqwest::Method::OPTIONS, server.at("/workflows/greet/run"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .unwrap();
    let headers = response.headers();
    assert!(
        headers.get("access-control-allow-origin").is_none(),
        "{headers:?}"
    );
    assert!(headers.get("access-control-allow-methods").is_none());

    // A "simple" cross-site write (no preflight: text/plain) is refused and starts nothing;
    // the server's own origin, and programs that send no Origin, pass.
    let post = |origin: Option<String>| {
        let mut request = server
            .http
            .post(server.at("/workflows/greet/run-nowait"))
            .header("Content-Type", "text/plain")
            .body("{}");
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        async move { split(request.send().await.unwrap()).await }
    };
    let (status, body) = post(Some("https://evil.example".into())).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("Cross-site request refused"),
        "{body}"
    );
    let (_, list) = server.get("/handlers").await;
    assert_eq!(list["handlers"].as_array().unwrap().len(), 0, "{list}");
    let own = server.url.trim_end_matches('/').to_owned();
    assert_eq!(post(Some(own)).await.0, 200);
    assert_eq!(post(None).await.0, 200);
}

/// `Cors::AnyOrigin` lets every page call, but never with credentials: the caller must hold
/// the token itself.
#[tokio::test]
async fn any_origin_comes_without_credentials() {
    let server = start(test_config().cors(Cors::AnyOrigin)).await;
    let response = server
        .http
        .get(server.at("/workflows"))
        .header("Origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    assert!(
        response
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    // A preflight is granted any method and header.
    let response = server
        .http
        .request(reqwest::Method::OPTIONS, server.at("/handlers/h/cancel"))
        .header("Origin", "http://localhost:3000")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type,x-trace-id")
        .send()
        .await
        .unwrap();
    let allowed = |name: &str| {
        response.headers()[name]
            .to_str()
            .unwrap()
            .to_ascii_lowercase()
    };
    assert!(allowed("access-control-allow-methods").contains("post"));
    assert!(allowed("access-control-allow-headers").contains("x-trace-id"));
}

/// Listening where other machines can reach it, without a token, is refused before anything is
/// bound; loopback, a token or the explicit opt-out allow it.
#[tokio::test]
async fn an_exposed_address_needs_a_token() {
    let exposed: std::net::SocketAddr = ([0, 0, 0, 0], 0).into();
    let server = Server::builder(test_config().store_url("memory"))
        .build()
        .await
        .unwrap();
    let error = server.bind(exposed).await.unwrap_err().to_string();
    assert!(
        error.contains("refusing to serve on 0.0.0.0:0 without an auth token")
            && error.contains("--insecure-no-auth"),
        "{error}"
    );
    let refused = test_config();
    assert!(refused.check_exposure(exposed).is_err());
    assert!(
        refused
            .check_exposure(([192, 168, 1, 20], 8080).into())
            .is_err()
    );
    assert!(
        refused
            .check_exposure(([127, 0, 0, 1], 8080).into())
            .is_ok()
    );
    assert!(
        refused
            .check_exposure((std::net::Ipv6Addr::LOCALHOST, 8080).into())
            .is_ok()
    );
    assert!(
        test_config()
            .auth_token("s3cret")
            .check_exposure(exposed)
            .is_ok()
    );
    // An empty token (an unset variable read with `unwrap_or_default`) is no token.
    assert!(
        test_config()
            .auth_token("")
            .check_exposure(exposed)
            .is_err()
    );
    assert!(
        test_config()
            .insecure_no_auth(true)
            .check_exposure(exposed)
            .is_ok()
    );
}

/// A documented path is a served one: the router and the document come from one route table,
/// and what the fallback answers is `No route for ...`.
#[tokio::test]
async fn every_documented_route_is_served() {
    let server = start(test_config()).await;
    let (status, document) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let url = server.at(&path
                .replace("{name}", "nope")
                .replace("{handler_id}", "nobody"));
            let request = match method.as_str() {
                "get" => server.http.get(url),
                "post" => server.http.post(url),
                other => panic!("{other} {path}: a method the API does not use"),
            };
            let response = request.send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            assert!(
                !text.contains("No route for") && status != 405,
                "{method} {path}: {status} {text}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 15);
}

#[tokio::test]
async fn openapi_and_metrics() {
    let server = start(test_config()).await;
    let (status, document) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    // Every route the API has (API.md), documented with its main bodies, and nothing else.
    let routes = [
        ("get", "/health", Some("Health")),
        ("get", "/workflows", Some("WorkflowList")),
        ("post", "/workflows/{name}/run", Some("Handler")),
        ("post", "/workflows/{name}/run-nowait", Some("Handler")),
        ("get", "/workflows/{name}/schema", Some("WorkflowSchema")),
        ("get", "/workflows/{name}/events", Some("WorkflowEvents")),
        (
            "get",
            "/workflows/{name}/representation",
            Some("Representation"),
        ),
        ("get", "/handlers", Some("HandlerList")),
        ("get", "/handlers/{handler_id}", Some("Handler")),
        (
            "post",
            "/handlers/{handler_id}/cancel",
            Some("CancelOutcome"),
        ),
        ("get", "/results/{handler_id}", Some("Handler")),
        ("get", "/events/{handler_id}", None),
        ("post", "/events/{handler_id}", Some("SendOutcome")),
        ("get", "/openapi.json", None),
        ("get", "/metrics", None),
    ];
    for (method, path, body) in routes {
        let operation = &document["paths"][path][method];
        assert!(operation.is_object(), "{method} {path}");
        if let Some(body) = body {
            assert_eq!(
                operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
                format!("#/components/schemas/{body}"),
                "{method} {path}"
            );
        }
    }
    let documented: usize = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, routes.len());
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        document["paths"]["/events/{handler_id}"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/SendEventRequest"
    );
    assert_eq!(
        schemas["Handler"]["properties"]["result"]["oneOf"][0]["$ref"],
        "#/components/schemas/EventEnvelope",
        "{}",
        schemas["Handler"]
    );
    assert_eq!(
        schemas["SendEventRequest"]["required"],
        json!(["event"]),
        "{}",
        schemas["SendEventRequest"]
    );
    let (status, _) = server.post("/workflows/greet/run", json!({})).await;
    assert_eq!(status, 200);
    let (status, _) = server.post("/workflows/fail/run", json!({})).await;
    assert_eq!(status, 500);
    for _ in 0..2 {
        let (status, data) = server.post("/workflows/visits/run", json!({})).await;
        assert_eq!(status, 200, "{data}");
    }
    let waiting = server.start_run("ask", json!({})).await;
    server.wait_status(&waiting, &["waiting"]).await;
    let response = server.http.get(server.at("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for expected in [
        "eventflow_runs_started_total{workflow=\"greet\"} 1",
        "eventflow_runs_started_total{workflow=\"ask\"} 1",
        "eventflow_runs{status=\"waiting\"} 1",
        "eventflow_runs{status=\"completed\"} 3",
        "eventflow_runs_started_total{workflow=\"visits\"} 2",
        "eventflow_runs{status=\"failed\"} 1",
        "eventflow_queue_depth 0",
        "eventflow_http_requests_total{method=\"POST\",route=\"/workflows/{name}/run\",status=\"500\"} 1",
        "eventflow_http_request_duration_seconds_count{method=\"POST\",route=\"/workflows/{name}/run\"} 4",
        "eventflow_steps_completed_total{workflow=\"greet\",step=\"greet\"} 1",
        "eventflow_step_failures_total{workflow=\"fail\",step=\"boom\"} 1",
        "eventflow_steps_completed_total{workflow=\"fail\",step=\"boom\"} 0",
        "# TYPE eventflow_step_duration_seconds histogram",
        "eventflow_step_duration_seconds_count{workflow=\"greet\",step=\"greet\"} 1",
        "eventflow_step_duration_seconds_bucket{workflow=\"greet\",step=\"greet\",le=\"+Inf\"} 1",
        "eventflow_step_duration_seconds_count{workflow=\"fail\",step=\"boom\"} 1",
        // `visit` sleeps 20 ms, twice: both in the 25 ms bucket or above, none under 10 ms.
        "eventflow_step_duration_seconds_bucket{workflow=\"visits\",step=\"visit\",le=\"0.01\"} 0",
        "eventflow_step_duration_seconds_bucket{workflow=\"visits\",step=\"visit\",le=\"+Inf\"} 2",
        "eventflow_step_duration_seconds_count{workflow=\"visits\",step=\"visit\"} 2",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in\n{text}");
    }
    // Finishes are counted by the engine's commit hook, shortly after the commit.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = metrics_text(&server).await;
        if text.contains("eventflow_runs_finished_total{workflow=\"greet\",status=\"completed\"} 1")
            && text.contains("eventflow_runs_finished_total{workflow=\"fail\",status=\"failed\"} 1")
            && text.contains(
                "eventflow_runs_finished_total{workflow=\"visits\",status=\"completed\"} 2",
            )
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The text of `GET /metrics`.
async fn metrics_text(server: &TestServer) -> String {
    let response = server.http.get(server.at("/metrics")).send().await.unwrap();
    response.text().await.unwrap()
}

/// The value of the `eventflow_queue_depth` gauge in `GET /metrics`.
async fn queue_depth(server: &TestServer) -> u64 {
    let text = metrics_text(server).await;
    let line = text
        .lines()
        .find(|line| line.starts_with("eventflow_queue_depth "))
        .unwrap_or_else(|| panic!("no queue depth in\n{text}"));
    line["eventflow_queue_depth ".len()..].parse().unwrap()
}

#[tokio::test]
async fn queue_depth_counts_the_runs_no_worker_holds() {
    use eventflow::store::{Created, NewRun, WorkflowKey};
    let server = start(test_config()).await;
    // This server's own runs: one finished, one waiting for an answer. Neither is queued.
    assert_eq!(server.post("/workflows/greet/run", json!({})).await.0, 200);
    let waiting = server.start_run("ask", json!({})).await;
    server.wait_status(&waiting, &["waiting"]).await;
    assert_eq!(queue_depth(&server).await, 0);

    // Runs of a workflow no worker of this deployment serves, recorded in the shared store:
    // three with work to do and no owner (queued), one held by another worker (not queued).
    let new_run = |run_id: &str, owner: Option<&str>| NewRun {
        run_id: run_id.to_owned(),
        workflow: WorkflowKey {
            name: "elsewhere".to_owned(),
            fingerprint: "elsewhere-v1".to_owned(),
        },
        idempotency_key: None,
        start: json!({"start": {}}),
        owner: owner.map(str::to_owned),
    };
    for run_id in ["queued-1", "queued-2", "queued-3"] {
        let created = server
            .store
            .create_run(new_run(run_id, None))
            .await
            .unwrap();
        assert_eq!(created, Created::New(None));
    }
    let created = server
        .store
        .create_run(new_run("held", Some("another-worker")))
        .await
        .unwrap();
    assert!(matches!(created, Created::New(Some(_))), "{created:?}");
    for run_id in ["queued-1", "queued-2", "queued-3", "held"] {
        let record = server.store.get_run(run_id).await.unwrap().unwrap();
        assert_eq!(record.status, RunStatus::Running, "{run_id}");
    }
    assert_eq!(queue_depth(&server).await, 3);

    // The gauge is read from the store on every scrape.
    assert!(server.store.purge("queued-2").await.unwrap());
    assert_eq!(queue_depth(&server).await, 2);
}

#[tokio::test]
async fn graceful_shutdown_hands_runs_back_and_another_server_finishes_them() {
    let mut first = start(test_config()).await;
    let id = first.start_run("ask", json!({})).await;
    first.wait_status(&id, &["waiting"]).await;
    // A stream open during the shutdown ends instead of holding the server up.
    let reader = {
        let http = first.http.clone();
        let url = first.at(&format!("/events/{id}"));
        tokio::spawn(async move { read_sse(http.get(url).send().await.unwrap()).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::time::timeout(Duration::from_secs(10), first.shutdown())
        .await
        .expect("shutdown hung");
    let events = reader.await.unwrap();
    assert_eq!(events.len(), 1);
    let record = first.store.get_run(&id).await.unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Waiting);
    assert_eq!(record.owner, None);

    // A second server on the same file answers and finishes the run.
    let second = start_in(Arc::clone(&first.dir), test_config()).await;
    let (status, _) = second
        .post(
            &format!("/events/{id}"),
            json!({"event": {"type": "HumanResponseEvent", "value": {"response": "Max"}}}),
        )
        .await;
    assert_eq!(status, 200);
    let done = second.wait_status(&id, &["completed"]).await;
    assert_eq!(done["result"]["value"]["result"], "Hi Max");
}

/// A shutdown hands back a run whose step is running (not only one already released): right
/// after it, the run has no owner, and a second server on the same file finishes it.
#[tokio::test]
async fn shutdown_hands_back_a_run_in_the_middle_of_a_step() {
    use eventflow::prelude::*;
    fn slow() -> Workflow {
        Workflow::builder("slow")
            .add_step("nap", |_: StartEvent| async {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                StopEvent::new("rested")
            })
            .build()
            .unwrap()
    }
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite:{}", dir.path().join("slow.db").display());
    let config = || test_config().store_url(store_url.clone());
    let first = Server::builder(config())
        .workflow(slow())
        .build()
        .await
        .unwrap();
    let engine = first.engine().clone();
    let first = first.bind(([127, 0, 0, 1], 0)).await.unwrap();
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}/workflows/slow/run-nowait", first.url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, data) = split(response).await;
    assert_eq!(status, 200, "{data}");
    let id = data["handler_id"].as_str().unwrap().to_owned();
    let record = engine.record(&id).await.unwrap();
    assert_eq!(record.status, RunStatus::Running);
    assert_eq!(record.owner.as_deref(), Some(engine.worker_id()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::time::timeout(Duration::from_secs(10), first.shutdown())
        .await
        .expect("shutdown hung")
        .unwrap();
    let record = engine.record(&id).await.unwrap();
    assert_eq!(record.status, RunStatus::Running, "{record:?}");
    assert_eq!(record.owner, None, "{record:?}");

    let second = Server::builder(config())
        .workflow(slow())
        .build()
        .await
        .unwrap()
        .bind(([127, 0, 0, 1], 0))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let done = loop {
        let response = http
            .get(format!("{}/handlers/{id}", second.url()))
            .send()
            .await
            .unwrap();
        let (_, data) = split(response).await;
        if data["status"] == "completed" {
            break data;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never finished: {data}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["result"]["value"]["result"], "rested");
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_run_request_interrupted_by_shutdown_answers_503() {
    let mut server = start(test_config()).await;
    let request = {
        let http = server.http.clone();
        let url = server.at("/workflows/ask/run");
        tokio::spawn(
            async move { split(http.post(url).json(&json!({})).send().await.unwrap()).await },
        )
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.get("/handlers?status=waiting").await.1["handlers"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Bounded, so a shutdown that never answers the waiting request fails here instead of
    // hanging (the graceful shutdown waits for the request).
    let (status, body) = tokio::time::timeout(Duration::from_secs(30), async {
        server.shutdown().await;
        request.await.unwrap()
    })
    .await
    .expect("the shutdown answers the waiting request within 30 s");
    assert_eq!(status, 503, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("goes on"),
        "{body}"
    );
}

#[tokio::test]
async fn serve_workflow_is_one_line() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let config = eventflow_server::ServerConfig::default()
        .addr(([127, 0, 0, 1], port))
        .store_url(format!("sqlite:{}", dir.path().join("one.db").display()));
    let serving = tokio::spawn(eventflow_server::serve_workflow(greet(), config));
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(response) = http.get(format!("{url}/health")).send().await
            && response.status() == 200
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let response = http
        .post(format!("{url}/workflows/greet/run"))
        .json(&json!({"start_event": {"name": "One"}}))
        .send()
        .await
        .unwrap();
    let (status, data) = split(response).await;
    assert_eq!(status, 200);
    assert_eq!(data["result"]["value"]["result"], "Hello, One!");
    serving.abort();
}

/// A server of `workflow` alone on loopback, and the id of a run of it started with `{}`.
async fn serve_alone_and_run(
    workflow: eventflow::Workflow,
    config: eventflow_server::ServerConfig,
) -> (eventflow_server::RunningServer, String) {
    let name = workflow.name().to_owned();
    let server = Server::builder(config)
        .workflow(workflow)
        .build()
        .await
        .unwrap();
    let running = server.bind(([127, 0, 0, 1], 0)).await.unwrap();
    let response = reqwest::Client::new()
        .post(format!("{}/workflows/{name}/run", running.url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, data) = split(response).await;
    assert_eq!(status, 200, "{data}");
    let id = data["handler_id"].as_str().unwrap().to_owned();
    (running, id)
}

/// An event without fields: it serializes to `null`.
#[derive(eventflow::Event, Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Ping;

/// A unit event goes out as `{}` on the stream: the Python client's envelope model wants an
/// object.
#[tokio::test]
async fn a_unit_event_is_sent_as_an_empty_object() {
    use eventflow::prelude::*;
    use eventflow_server::ServerConfig;
    let workflow = Workflow::builder("ping")
        .add_step("ping", |ctx: Context, _: StartEvent| async move {
            ctx.write_event_to_stream(Ping);
            StopEvent::new("pong")
        })
        .build()
        .unwrap();
    let config = ServerConfig::default().store_url("memory");
    let (running, id) = serve_alone_and_run(workflow, config).await;
    let http = reqwest::Client::new();
    let response = http
        .get(format!("{}/events/{id}?sse=false", running.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    let envelopes: Vec<Value> = body
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(envelopes.len(), 2, "{body}");
    assert_eq!(envelopes[0]["type"], "Ping", "{body}");
    assert_eq!(envelopes[0]["value"], json!({}), "{body}");
    assert_eq!(envelopes[0]["qualified_name"], Value::Null, "{body}");
    running.shutdown().await.unwrap();
}

/// A workflow built with `internal_events(true)` streams `StepStateChanged` to the readers that
/// pass `include_internal=true`, named as the reference names them; other readers never see
/// them, and their SSE ids stay the store's sequences.
#[tokio::test]
async fn internal_events_stream_to_readers_who_ask() {
    use eventflow::prelude::*;
    use eventflow_server::ServerConfig;
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let workflow = Workflow::builder("traced")
        .add_step("greet", |_: StartEvent| async { StopEvent::new("hi") })
        .build()
        .unwrap()
        .internal_events(true);
    let store = format!("sqlite:{}", dir.path().join("traced.db").display());
    let config = ServerConfig::default().store_url(store);
    let (running, id) = serve_alone_and_run(workflow, config).await;
    let http = reqwest::Client::new();
    let read = |query: &'static str| {
        let http = http.clone();
        let url = format!("{}/events/{id}?sse=false{query}", running.url());
        async move {
            let body = http.get(url).send().await.unwrap().text().await.unwrap();
            body.lines()
                .map(|line| serde_json::from_str::<Value>(line).unwrap())
                .collect::<Vec<_>>()
        }
    };
    let all = read("&include_internal=true").await;
    let kinds: Vec<(&str, &str)> = all
        .iter()
        .map(|e| {
            let state = e["value"]["step_state"].as_str().unwrap_or("-");
            (e["type"].as_str().unwrap(), state)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("StepStateChanged", "running"),
            ("StepStateChanged", "not_running"),
            ("StopEvent", "-")
        ]
    );
    assert_eq!(
        all[0]["qualified_name"], "workflows.events.StepStateChanged",
        "{all:?}"
    );
    assert_eq!(all[1]["value"]["name"], "greet");
    assert_eq!(all[1]["value"]["output_event_name"], "StopEvent");
    for query in ["", "&include_internal=false"] {
        let plain = read(query).await;
        assert_eq!(plain.len(), 1, "{query}: {plain:?}");
        assert_eq!(plain[0]["type"], "StopEvent");
    }
    let sse = http
        .get(format!("{}/events/{id}", running.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(sse.starts_with("id: 3\n"), "{sse}");
    running.shutdown().await.unwrap();
}

/// A run of a workflow at its bound of concurrent runs waits for a slot: its handler says
/// `queued` (and `running` to clients that know four statuses) until it gets one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_over_the_workflows_bound_is_queued() {
    use eventflow::prelude::*;
    use eventflow_server::ServerConfig;
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let workflow = {
        let gate = gate.clone();
        Workflow::builder("one_at_a_time")
            .add_step("work", move |_: StartEvent| {
                let gate = gate.clone();
                async move {
                    gate.acquire().await?.forget();
                    Ok::<_, BoxError>(StopEvent::new("done"))
                }
            })
            .build()
            .unwrap()
            .num_concurrent_runs(1)
    };
    let store = format!("sqlite:{}", dir.path().join("bounded.db").display());
    let config = ServerConfig::default()
        .store_url(store)
        .poll_interval(Duration::from_millis(50));
    let server = Server::builder(config)
        .workflow(workflow)
        .build()
        .await
        .unwrap();
    let running = server.bind(([127, 0, 0, 1], 0)).await.unwrap();
    let http = reqwest::Client::new();
    let start = || async {
        let response = http
            .post(format!(
                "{}/workflows/one_at_a_time/run-nowait",
                running.url()
            ))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let (status, data) = split(response).await;
        assert_eq!(status, 200, "{data}");
        data["handler_id"].as_str().unwrap().to_owned()
    };
    let handler = |id: String| {
        let http = http.clone();
        let url = format!("{}/handlers/{id}", running.url());
        async move { split(http.get(url).send().await.unwrap()).await.1 }
    };
    let first = start().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while handler(first.clone()).await["eventflow_status"] != "running" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first run never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = start().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let queued = handler(second.clone()).await;
    assert_eq!(queued["eventflow_status"], "queued", "{queued}");
    assert_eq!(queued["status"], "running", "{queued}");
    gate.add_permits(2);
    for id in [first, second] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let data = handler(id.clone()).await;
            if data["eventflow_status"] == "completed" {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{data}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn registering_workflows_accepts_typed_start_events_and_checks_names() {
    use eventflow_server::{Server, ServerConfig, ServerError};
    let config = || ServerConfig::default().store_url("memory");
    // A workflow with a typed start event registers like any other: run requests decode it.
    let server = Server::builder(config())
        .workflow(orders())
        .build()
        .await
        .unwrap();
    let running = server.bind(([127, 0, 0, 1], 0)).await.unwrap();
    let response = reqwest::Client::new()
        .post(format!("{}/workflows/orders/run", running.url()))
        .json(&json!({"start_event": {"item": "pen", "quantity": 1}}))
        .send()
        .await
        .unwrap();
    let (status, data) = split(response).await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["result"]["value"]["result"], 3);
    running.shutdown().await.unwrap();

    let error = Server::builder(config())
        .workflow(greet())
        .workflow(greet())
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(error, ServerError::DuplicateWorkflow { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn health_is_unhealthy_once_the_server_shuts_down() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let server = eventflow_server::Server::builder(
        test_config().store_url(format!("sqlite:{}", dir.path().join("h.db").display())),
    )
    .workflow(greet())
    .build()
    .await
    .unwrap();
    // Served by hand, so that the router outlives the shutdown.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/health", listener.local_addr().unwrap());
    let router = server.router();
    let serving = tokio::spawn(async move { axum::serve(listener, router).await });
    let http = reqwest::Client::new();
    let health = || async { split(http.get(&url).send().await.unwrap()).await };
    assert_eq!(health().await, (200, json!({"status": "healthy"})));
    server.shutdown().await;
    assert_eq!(health().await, (503, json!({"status": "unhealthy"})));
    serving.abort();
}

#[tokio::test]
async fn an_unreachable_store_is_unhealthy_and_ends_streams_with_an_error() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let sqlite: Arc<dyn eventflow::store::Store> = Arc::new(
        eventflow::store::SqliteStore::open(dir.path().join("runs.db"))
            .await
            .unwrap(),
    );
    let flaky = Arc::new(FlakyStore::new(sqlite));
    let server = start_over(dir, flaky.clone(), test_config()).await;
    let id = server.start_run("ask", json!({})).await;
    server.wait_status(&id, &["waiting"]).await;
    let mut raw = server
        .http
        .get(server.at(&format!("/events/{id}")))
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let mut text = String::new();
    read_raw_until(&mut raw, &mut text, "id: 1\n").await;

    flaky.set_broken(true);
    assert_eq!(
        server.get("/health").await,
        (503, json!({"status": "unhealthy"}))
    );
    // A request the store cannot answer is a 503 that says to retry, with an id for the log,
    // and not the database's own text.
    let (status, body) = server.get(&format!("/handlers/{id}")).await;
    assert_eq!(status, 503, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("The store is unavailable; retry later (error id ")
            && !detail.contains("unreachable"),
        "{detail}"
    );
    // The open stream ends with an error frame, not silently.
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = raw.next().await {
            text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
    })
    .await;
    assert!(rest.is_ok(), "the stream did not close: {text}");
    let error = text
        .split("\n\n")
        .find(|frame| frame.starts_with("event: error\n"))
        .unwrap_or_else(|| panic!("no error frame in {text:?}"));
    let data: Value =
        serde_json::from_str(error.strip_prefix("event: error\ndata: ").unwrap()).unwrap();
    assert!(
        data["detail"].as_str().unwrap().contains("unreachable"),
        "{data}"
    );

    flaky.set_broken(false);
    assert_eq!(server.get("/health").await.0, 200);
}

/// Handler ids come from clients: too long, empty or holding control characters, they are
/// refused with 400 before reaching the store or a log, without being echoed, and nothing is
/// stored; the server keeps serving.
#[tokio::test]
async fn hostile_handler_ids_are_refused_and_store_nothing() {
    let server = start(test_config()).await;
    let long = "y".repeat(300);
    for (method, path, expected) in [
        (
            "get",
            format!("/handlers/{long}"),
            "300 bytes long; at most 256",
        ),
        ("get", "/handlers/run%0AINFO%20forged".to_owned(), "U+000A"),
        ("get", "/events/nul%00".to_owned(), "U+0000"),
        ("get", format!("/results/{long}"), "at most 256"),
        ("post", format!("/handlers/{long}/cancel"), "at most 256"),
        ("post", "/events/tab%09id".to_owned(), "U+0009"),
    ] {
        let request = match method {
            "get" => server.http.get(server.at(&path)),
            _ => server.http.post(server.at(&path)).json(
                &json!({"event": {"type": "HumanResponseEvent", "value": {"response": "x"}}}),
            ),
        };
        let (status, body) = split(request.send().await.unwrap()).await;
        assert_eq!(status, 400, "{method} {path}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("Invalid handler id: ") && detail.contains(expected),
            "{detail}"
        );
        assert!(
            !detail.contains("yyyy") && !detail.contains("forged"),
            "{detail}"
        );
    }
    // (An empty `handler_id` means none, as in the reference.)
    for handler_id in ["x".repeat(900_000), "two\nlines".to_owned()] {
        let (status, body) = server
            .post(
                "/workflows/greet/run-nowait",
                json!({"start_event": {"name": "Ada"}, "handler_id": handler_id}),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .starts_with("Invalid handler id"),
            "{body}"
        );
    }
    // An idempotency key is stored and indexed like an id, by the same rule.
    let response = server
        .http
        .post(server.at("/workflows/greet/run-nowait"))
        .header("Idempotency-Key", "k".repeat(300))
        .json(&json!({"start_event": {"name": "Ada"}}))
        .send()
        .await
        .unwrap();
    let (status, body) = split(response).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("Invalid Idempotency-Key: it is 300 bytes long"),
        "{body}"
    );
    let (_, list) = server.get("/handlers").await;
    assert_eq!(list["handlers"], json!([]), "nothing was stored: {list}");
    assert_eq!(server.get("/health").await.0, 200);
}

/// An HTTP/1.1 request must name its host (RFC 9112 §3.2): one without `Host` is 400, and the
/// server goes on serving.
#[tokio::test]
async fn a_request_without_host_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = start(test_config()).await;
    let addr = server.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /workflows HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
        .await
        .expect("the server answers")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(server.get("/health").await.0, 200);
}
