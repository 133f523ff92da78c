//! `eventflow serve --demo` on a loopback port, driven by every client command, in text and in
//! JSON.

mod common;

use std::time::Duration;

use common::{HITL_QUERY, ServerProcess, cli, eventflow, eventually, status_of};
use serde_json::Value;

const DEMO: [&str; 6] = [
    "quickstart",
    "branching",
    "refinement",
    "parallel_search",
    "streaming",
    "hitl",
];

fn demo_server(dir: &tempfile::TempDir, extra: &[&str]) -> ServerProcess {
    let db = format!("sqlite:{}", dir.path().join("runs.db").display());
    ServerProcess::start(dir.path(), &db, 0, extra)
}

/// The handler document of a `run --json`: its last line.
fn final_handler(lines: &[Value]) -> &Value {
    let last = lines.last().expect("a final line");
    assert!(last.get("handler_id").is_some(), "{lines:#?}");
    last
}

#[test]
fn the_demo_server_serves_the_examples_to_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo_server(&dir, &[]);

    // workflows
    let listed = server.cli(&["workflows"]);
    let names: Vec<&str> = listed.ok().lines().collect();
    for name in DEMO {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let listed = server.cli(&["workflows", "--json"]).json();
    let listed: Vec<&str> = listed["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(&listed[..6], &DEMO);

    // run: text, then JSON lines.
    let run = server.cli(&["run", "quickstart", "query=What is quantum computing?"]);
    let text = run.ok();
    assert!(text.contains("started (workflow quickstart)"), "{text}");
    assert!(text.contains("completed in"), "{text}");
    assert!(text.contains("qubits"), "{text}");
    let lines = server
        .cli(&[
            "--json",
            "run",
            "quickstart",
            "query=What is quantum computing?",
        ])
        .json_lines();
    let handler = final_handler(&lines);
    assert_eq!(handler["status"], "completed");
    assert!(
        handler["result"]["value"]["result"]
            .as_str()
            .unwrap()
            .contains("qubits")
    );
    // Values parse as JSON when they can: a number for `n` does not bother quickstart.
    let quiet = server.cli(&["run", "-q", "branching", "query=What is Rust?", "n=3"]);
    let result: Value = serde_json::from_str(quiet.ok()).unwrap();
    assert_eq!(result["branch"], "factual");

    // Events stream as they come.
    let lines = server
        .cli(&["--json", "run", "streaming", "prompt=Why events?"])
        .json_lines();
    let tokens = lines.iter().filter(|l| l["type"] == "TokenEvent").count();
    assert!(tokens > 5, "{lines:#?}");
    let seqs: Vec<u64> = lines.iter().filter_map(|l| l["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert_eq!(
        final_handler(&lines)["result"]["value"]["result"]
            .as_str()
            .unwrap(),
        "You asked: Why events? In short, each step reacts to the events it accepts and emits \
         new ones, so work flows from step to step as events arrive."
    );

    // The human in the loop, answered with --answer.
    let run = server.cli(&["run", "hitl", HITL_QUERY, "--answer", "yes"]);
    let text = run.ok();
    assert!(text.contains("InputRequiredEvent"), "{text}");
    assert!(text.contains("answered \"yes\""), "{text}");
    assert!(text.contains("\"response\": \"yes\""), "{text}");
    assert!(text.contains("\"status\": \"approved\""), "{text}");
    let lines = server
        .cli(&[
            "--json",
            "run",
            "hitl",
            HITL_QUERY,
            "--answer",
            "Not this time",
        ])
        .json_lines();
    assert!(lines.iter().any(|l| l["type"] == "InputRequiredEvent"));
    let result = &final_handler(&lines)["result"]["value"]["result"];
    assert_eq!(result["response"], "Not this time");
    assert_eq!(result["status"], "rejected");

    // run --nowait, handler, events, send, handler --wait.
    let id = server.cli(&["run", "hitl", HITL_QUERY, "--nowait"]);
    let id = id.ok().trim().to_owned();
    eventually(Duration::from_secs(20), "the run to wait", || {
        (status_of(&server.url, &id) == "waiting").then_some(())
    });
    let shown = server.cli(&["handler", &id]);
    assert!(shown.ok().contains("waiting"), "{shown:?}");
    let events = server.cli(&["events", &id, "--no-follow"]);
    assert!(
        events.ok().starts_with("#1 InputRequiredEvent\n"),
        "{events:?}"
    );
    let events = server
        .cli(&["--json", "events", &id, "--no-follow"])
        .json_lines();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0]["value"]["prefix"]
            .as_str()
            .unwrap()
            .contains("refund")
    );
    let handlers = server
        .cli(&["--json", "handlers", "--status", "waiting"])
        .json();
    let waiting: Vec<&str> = handlers["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["handler_id"].as_str().unwrap())
        .collect();
    assert_eq!(waiting, [id.as_str()]);
    let sent = server.cli(&["send", &id, "HumanResponseEvent", "response=yes"]);
    assert!(sent.ok().contains("sent HumanResponseEvent"), "{sent:?}");
    let done = server
        .cli(&["--json", "handler", &id, "--wait", "--timeout", "30s"])
        .json();
    assert_eq!(done["status"], "completed");
    assert_eq!(done["result"]["value"]["result"]["response"], "yes");
    // A finished run takes no more events: the error says so, the exit code too.
    let late = server.cli(&["send", &id, "HumanResponseEvent", "response=no"]);
    assert!(late.failed().contains("completed"), "{late:?}");
    // `events` of a finished run replays it and ends.
    let events = server.cli(&["--json", "events", &id]).json_lines();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["InputRequiredEvent", "StopEvent"]);

    // cancel
    let id = server.cli(&["run", "hitl", HITL_QUERY, "--nowait"]);
    let id = id.ok().trim().to_owned();
    let cancelled = server.cli(&["--json", "cancel", &id]).json();
    assert_eq!(cancelled["status"], "cancelled");
    let cancelled = server.cli(&["cancel", &id]);
    assert!(cancelled.ok().contains("cancelled"), "{cancelled:?}");
    assert_eq!(status_of(&server.url, &id), "cancelled");
    let waited = server.cli(&["handler", &id, "--wait"]);
    assert!(!waited.status.success(), "a cancelled run is not a success");
    let purged = server.cli(&["cancel", &id, "--purge"]);
    assert!(purged.ok().contains("deleted"), "{purged:?}");

    // handlers: a table, and JSON.
    let table = server.cli(&["handlers"]);
    let table = table.ok();
    assert!(table.starts_with("HANDLER"), "{table}");
    assert!(
        table.contains("quickstart") && table.contains("completed"),
        "{table}"
    );
    let all = server.cli(&["handlers", "--json"]).json();
    assert!(all["handlers"].as_array().unwrap().len() >= 7, "{all}");
    let only = server
        .cli(&["--json", "handlers", "--workflow", "streaming"])
        .json();
    assert!(
        only["handlers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["workflow_name"] == "streaming")
    );

    // draw
    let drawn = server.cli(&["draw", "hitl"]);
    let mermaid = drawn.ok();
    assert!(mermaid.starts_with("flowchart TD\n"), "{mermaid}");
    for part in [
        "step_generate(\"generate\"):::step",
        "event_StartEvent[/\"StartEvent\"/]:::start",
        "event_InputRequiredEvent --> node_external_5f_step",
        "node_external_5f_step --> event_HumanResponseEvent",
        "step_process_5f_review --> event_StopEvent",
    ] {
        assert!(mermaid.contains(part), "{part} in\n{mermaid}");
    }
    let drawn = server.cli(&["--json", "draw", "branching"]).json();
    assert_eq!(drawn["workflow"], "branching");
    assert!(
        drawn["mermaid"]
            .as_str()
            .unwrap()
            .starts_with("flowchart TD")
    );
    assert!(!drawn["graph"]["nodes"].as_array().unwrap().is_empty());

    // health
    let health = server.cli(&["health", "--json"]).json();
    assert_eq!(health["status"], "healthy");
}

#[test]
fn failures_say_what_to_do_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo_server(&dir, &[]);

    let unknown = server.cli(&["run", "nope"]);
    let message = unknown.failed();
    assert!(message.contains("no workflow `nope`"), "{message}");
    assert!(message.contains("`eventflow workflows`"), "{message}");

    let missing = server.cli(&["handler", "nope"]);
    assert!(
        missing.failed().contains("`eventflow handlers`"),
        "{missing:?}"
    );

    // The run fails (quickstart needs a query): the error is the step's, the exit code 1.
    let failed = server.cli(&["run", "quickstart"]);
    let message = failed.failed();
    assert!(message.contains("failed"), "{message}");
    assert!(message.contains("query"), "{message}");
    assert_eq!(failed.status.code(), Some(1));

    let malformed = server.cli(&["run", "quickstart", "query"]);
    assert!(malformed.failed().contains("key=value"), "{malformed:?}");

    let bad_type = server.cli(&["send", "x", "Nope"]);
    assert!(!bad_type.status.success());

    // Nothing listens on port 9 of loopback in the tests.
    let unreachable = cli("http://127.0.0.1:9", &["workflows"]);
    assert!(
        unreachable
            .failed()
            .contains("cannot reach http://127.0.0.1:9: is `eventflow serve` running?"),
        "{unreachable:?}"
    );
    let unreachable = cli("http://127.0.0.1:9", &["health"]);
    assert!(!unreachable.status.success());
}

#[test]
fn serve_without_workflows_explains_the_library() {
    let output = eventflow().arg("serve").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--demo"), "{stderr}");
    assert!(stderr.contains("Server::builder"), "{stderr}");
    assert!(stderr.contains("eventflow-server"), "{stderr}");
}

#[test]
fn a_token_protects_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo_server(&dir, &["--token", "s3cret"]);
    let refused = server.cli(&["workflows"]);
    assert!(refused.failed().contains("requires a token"), "{refused:?}");
    let wrong = server.cli(&["--token", "nope", "workflows"]);
    assert!(wrong.failed().contains("refused the token"), "{wrong:?}");
    let listed = server.cli(&["--token", "s3cret", "workflows"]);
    assert!(listed.ok().contains("hitl"), "{listed:?}");
    let run = common::eventflow()
        .args([
            "--url",
            &server.url,
            "run",
            "-q",
            "quickstart",
            "query=qubits",
        ])
        .env("EVENTFLOW_TOKEN", "s3cret")
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
}

/// `serve --host 0.0.0.0` without a token exits at once, saying why and what to do, before it
/// listens; with the explicit opt-out it would serve (checked by the server's own tests, so
/// that this test never listens beyond loopback).
#[test]
fn an_exposed_address_without_a_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = common::eventflow()
        .current_dir(dir.path())
        .args([
            "serve",
            "--demo",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--database-url",
            "memory",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to serve on 0.0.0.0:0 without an auth token")
            && stderr.contains("--token")
            && stderr.contains("--insecure-no-auth"),
        "{stderr}"
    );
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = demo_server(&dir, &[]);
    server.cli(&["health"]).ok();
    let status = server.terminate();
    assert!(status.success(), "{status:?}; log:\n{}", server.log());
}

/// The status line and body of a `GET path` sent to `port` with `Host: host`.
fn get_with_host(port: u16, path: &str, host: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// Without a token, `serve` on loopback answers only to loopback names (the DNS-rebinding
/// guard) and to the names given with `--allowed-host`; the refusal says how to allow one.
#[test]
fn allowed_hosts_are_set_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo_server(&dir, &["--allowed-host", "app.internal"]);
    let port = server.port;
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "app.internal".into(),
    ] {
        let answer = get_with_host(port, "/workflows", &host);
        assert!(answer.starts_with("HTTP/1.1 200"), "{host}: {answer}");
    }
    let answer = get_with_host(port, "/workflows", &format!("rebind.example:{port}"));
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("--allowed-host"), "{answer}");
}

#[test]
fn a_store_in_a_missing_folder_names_the_folder_once() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("missing").join("dir");
    let url = format!("sqlite:{}", folder.join("runs.db").display());
    let output = eventflow()
        .args(["serve", "--demo", "--port", "0", "--database-url", &url])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let missing = format!("the folder {} does not exist", folder.display());
    assert_eq!(stderr.matches(&missing).count(), 1, "{stderr}");
    assert!(stderr.matches("unable to open").count() <= 1, "{stderr}");
    assert_eq!(
        stderr.matches("cannot open the store").count(),
        1,
        "{stderr}"
    );
}
