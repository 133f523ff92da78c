//! A run waiting for a human survives `kill -9` of its server: the server restarts on the same
//! SQLite file and port, the answer is sent, the run completes, and an `eventflow run` that was
//! following it all along prints the result.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{HITL_QUERY, ServerProcess, collect, eventflow, eventually, status_of};

#[test]
fn a_waiting_run_survives_kill_9_of_its_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("runs.db").display());
    let mut server = ServerProcess::start(dir.path(), &db, 0, &[]);
    let (url, port) = (server.url.clone(), server.port);

    // One run started with --nowait, one followed by `eventflow run` in the background (it has
    // no answer to give and no terminal to ask on: it waits).
    let nowait = server.cli(&["run", "hitl", HITL_QUERY, "--nowait"]);
    let nowait = nowait.ok().trim().to_owned();
    let follower = eventflow()
        .args(["--url", &url, "--json", "run", "hitl", HITL_QUERY])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let followed = eventually(Duration::from_secs(20), "two waiting runs", || {
        let handlers = server
            .cli(&["--json", "handlers", "--status", "waiting"])
            .json();
        let ids: Vec<String> = handlers["handlers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["handler_id"].as_str().unwrap().to_owned())
            .collect();
        (ids.len() == 2).then(|| ids.into_iter().find(|id| *id != nowait).unwrap())
    });

    server.kill();
    assert!(!common::cli(&url, &["health"]).status.success());

    // Same file, same port: the follower's stream reconnects to it.
    let server = ServerProcess::start(dir.path(), &db, port, &[]);
    assert_eq!(server.url, url);
    assert_eq!(status_of(&url, &nowait), "waiting");
    assert_eq!(status_of(&url, &followed), "waiting");

    for (id, answer) in [(&nowait, "yes"), (&followed, "yes, after the crash")] {
        let response = format!("response={answer}");
        server
            .cli(&["send", id, "HumanResponseEvent", &response])
            .ok();
        let done = server
            .cli(&["--json", "handler", id, "--wait", "--timeout", "30s"])
            .json();
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(done["result"]["value"]["result"]["response"], answer);
    }

    // The follower saw the question before the crash and the result after it.
    let followed_output = collect(follower, Duration::from_secs(60), &["run", "hitl"]);
    let lines = followed_output.json_lines();
    let types: Vec<&str> = lines.iter().filter_map(|l| l["type"].as_str()).collect();
    assert_eq!(types, ["InputRequiredEvent", "StopEvent"], "{lines:#?}");
    let last = lines.last().unwrap();
    assert_eq!(last["handler_id"], followed.as_str());
    assert_eq!(
        last["result"]["value"]["result"]["response"],
        "yes, after the crash"
    );
    assert!(
        followed_output.stderr.contains("waits for an answer"),
        "{followed_output:?}"
    );
}
