//! The hostile-input suite: requests a careless or malicious client sends (malformed JSON, huge
//! and deeply nested bodies, bytes that are not UTF-8, odd and oversized ids, bad cursors,
//! unknown types, forged `Host` and `Authorization` headers, store failures), written byte for
//! byte to a real server on 127.0.0.1, over SQLite and — with `DATABASE_URL` and `--ignored`,
//! as `.ci/run` does — Postgres. Each case asserts the status and the `detail` of the answer,
//! that nothing was stored for a refused request, and that the server still serves a normal
//! run afterwards.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use eventflow::store::{RunFilter, SqliteOptions, SqliteStore, Store};
use eventflow_server::ServerConfig;
use serde_json::{Value, json};

/// Where the server under test keeps its runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh Postgres schema, dropped at the end of a test that passes.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    fn fresh(test: &str) -> Schema {
        let url = std::env::var("DATABASE_URL")
            .expect("the Postgres tests need DATABASE_URL (see the README)");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Schema {
            url,
            name: format!("ef_hostile_{test}_{}_{nanos}", std::process::id()),
        }
    }

    /// A connection whose statements act on this schema.
    async fn connect(&self) -> sqlx::PgConnection {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
        sqlx::query(&format!("SET search_path TO \"{}\"", self.name))
            .execute(&mut conn)
            .await
            .unwrap();
        conn
    }

    async fn drop_it(self) {
        let mut conn = self.connect().await;
        sqlx::query(&format!("DROP SCHEMA \"{}\" CASCADE", self.name))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

/// A server over a fresh store of `backend`, with every test workflow.
async fn serve(backend: Backend, test: &str, config: ServerConfig) -> (TestServer, Option<Schema>) {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    match backend {
        Backend::Sqlite => {
            // A short busy timeout, so that a write lock held by another process is a quick
            // (transient) failure in `store_errors_are_told_apart`.
            let options = SqliteOptions {
                busy_timeout: Duration::from_millis(300),
                ..SqliteOptions::default()
            };
            let store: Arc<dyn Store> = Arc::new(
                SqliteStore::open_with(dir.path().join("runs.db"), options)
                    .await
                    .unwrap(),
            );
            (start_over(dir, store, config).await, None)
        }
        Backend::Postgres => {
            let schema = Schema::fresh(test);
            let store: Arc<dyn Store> = Arc::new(
                eventflow::store::PostgresStore::connect_schema(&schema.url, &schema.name)
                    .await
                    .unwrap(),
            );
            (start_over(dir, store, config).await, Some(schema))
        }
    }
}

fn addr(server: &TestServer) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

/// Every run in the store, as `(id, status, last event)`: what a refused request must leave as
/// it was.
async fn stored(server: &TestServer) -> Vec<(String, String, u64)> {
    let mut runs: Vec<_> = server
        .store
        .list_runs(&RunFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|run| (run.run_id, run.status.to_string(), run.last_event_seq))
        .collect();
    runs.sort();
    runs
}

/// The ids of every run in the store (runs started by a test go on changing the rest).
async fn run_ids(server: &TestServer) -> Vec<String> {
    stored(server)
        .await
        .into_iter()
        .map(|(id, _, _)| id)
        .collect()
}

/// `/health` answers 200 and a normal run completes.
async fn assert_healthy(server: &TestServer, after: &str) {
    let (status, body) = server.get("/health").await;
    assert_eq!(status, 200, "after {after}: /health {body}");
    let (status, body) = server
        .post(
            "/workflows/greet/run",
            json!({"start_event": {"name": "Ada"}}),
        )
        .await;
    assert_eq!(status, 200, "after {after}: a normal run: {body}");
    assert_eq!(
        body["result"]["value"]["result"], "Hello, Ada!",
        "after {after}"
    );
}

/// What the `detail` of an answer must be.
#[derive(Clone, Debug)]
enum Detail {
    /// A JSON error body whose `detail` starts with this.
    StartsWith(String),
    /// A JSON error body whose `detail` contains each of these.
    Contains(Vec<String>),
    /// Not an error body (a success, or a stream).
    NotAnError,
    /// No body: hyper refused the request before it reached the server's routes.
    Empty,
}

/// One hostile request and the answer it must get.
struct Case {
    what: String,
    request: RawRequest,
    status: u16,
    detail: Detail,
    /// The request may store something (a run it starts).
    stores: bool,
}

fn get(target: impl Into<Vec<u8>>) -> RawRequest {
    RawRequest::new("GET", target)
}

fn post(target: impl Into<Vec<u8>>, body: impl Into<Vec<u8>>) -> RawRequest {
    let mut request = RawRequest::new("POST", target);
    request
        .headers
        .push(("Content-Type".into(), b"application/json".to_vec()));
    request.body = body.into();
    request
}

fn with_header(mut request: RawRequest, name: &str, value: impl Into<Vec<u8>>) -> RawRequest {
    request.headers.push((name.to_owned(), value.into()));
    request
}

fn with_host(mut request: RawRequest, host: impl Into<Vec<u8>>) -> RawRequest {
    request.host = HostHeader::Value(host.into());
    request
}

fn refused(what: &str, request: RawRequest, status: u16, detail: &str) -> Case {
    Case {
        what: what.to_owned(),
        request,
        status,
        detail: Detail::StartsWith(detail.to_owned()),
        stores: false,
    }
}

fn refused_naming(what: &str, request: RawRequest, status: u16, words: &[&str]) -> Case {
    Case {
        what: what.to_owned(),
        request,
        status,
        detail: Detail::Contains(words.iter().map(|word| (*word).to_owned()).collect()),
        stores: false,
    }
}

fn served(what: &str, request: RawRequest, status: u16, stores: bool) -> Case {
    Case {
        what: what.to_owned(),
        request,
        status,
        detail: Detail::NotAnError,
        stores,
    }
}

/// `n` nested arrays: `[[[...]]]`.
fn nested(n: usize) -> String {
    format!("{}{}", "[".repeat(n), "]".repeat(n))
}

/// A JSON object nested `n` deep: `{"a": {"a": ... 1}}`.
fn nested_object(n: usize) -> String {
    format!("{}1{}", "{\"a\": ".repeat(n), "}".repeat(n))
}

/// The table. `waiting` is a run of `ask` waiting for an answer, `done` a completed run of
/// `greet`; `port` is the server's.
fn cases(port: u16) -> Vec<Case> {
    let long_id = "y".repeat(2_800);
    let answer = r#"{"event": {"type": "HumanResponseEvent", "value": {"response": "x"}}}"#;
    let body_limit = 1024 * 1024;
    vec![
        // Malformed JSON, and JSON of the wrong shape.
        refused(
            "truncated JSON",
            post("/workflows/greet/run", r#"{"start_event": "#),
            400,
            "Invalid JSON body: EOF while parsing",
        ),
        refused(
            "single quotes",
            post("/workflows/greet/run-nowait", "{'a': 1}"),
            400,
            "Invalid JSON body: key must be a string",
        ),
        refused(
            "trailing garbage",
            post("/workflows/greet/run-nowait", "{} x"),
            400,
            "Invalid JSON body: trailing characters",
        ),
        refused(
            "a JSON array as the run body",
            post("/workflows/greet/run-nowait", "[1, 2]"),
            400,
            "Error processing request body: it must be a JSON object, got an array",
        ),
        refused(
            "a number as the start event",
            post("/workflows/greet/run-nowait", r#"{"start_event": 5}"#),
            400,
            "Validation error for 'start_event': Failed to deserialize event",
        ),
        refused(
            "kwargs not an object",
            post("/workflows/greet/run-nowait", r#"{"kwargs": [1]}"#),
            400,
            "Error processing request body: 'kwargs' must be a JSON object",
        ),
        refused(
            "a number as handler_id",
            post("/workflows/greet/run-nowait", r#"{"handler_id": 7}"#),
            400,
            "Error processing request body: 'handler_id' must be a string, got 7",
        ),
        refused(
            "a non-empty context",
            post(
                "/workflows/greet/run-nowait",
                r#"{"context": {"state": 1}}"#,
            ),
            400,
            "The Context API is not supported",
        ),
        refused(
            "malformed JSON sent to a run",
            post("/events/waiting", r#"{"event": }"#),
            400,
            "Invalid JSON body: expected value",
        ),
        refused(
            "an empty body sent to a run",
            post("/events/waiting", ""),
            400,
            "Event data is required",
        ),
        refused(
            "an event that is no JSON",
            post("/events/waiting", r#"{"event": "not json"}"#),
            400,
            "Failed to deserialize event",
        ),
        refused(
            "a field of the wrong type",
            post(
                "/events/waiting",
                r#"{"event": {"type": "HumanResponseEvent", "value": {"response": 3}}}"#,
            ),
            400,
            "Invalid event: HumanResponseEvent does not decode: invalid type: integer `3`",
        ),
        refused(
            "a number as the step",
            post(
                "/events/waiting",
                r#"{"event": {"type": "HumanResponseEvent", "value": {"response": "x"}}, "step": 7}"#,
            ),
            400,
            "'step' must be a step name, got 7",
        ),
        refused(
            "an unknown step",
            post(
                "/events/waiting",
                r#"{"event": {"type": "HumanResponseEvent", "value": {"response": "x"}}, "step": "no\u0000pe"}"#,
            ),
            400,
            "Invalid event: no step named `no\u{0}pe`",
        ),
        // Huge and deeply nested bodies.
        refused(
            "a body over the limit",
            post(
                "/workflows/greet/run",
                format!(
                    r#"{{"start_event": {{"name": "{}"}}}}"#,
                    "x".repeat(body_limit + 1)
                ),
            ),
            413,
            "Request body too large: the limit is 1048576 bytes",
        ),
        refused(
            "a chunked body over the limit (no Content-Length)",
            {
                let mut request = post("/events/waiting", "x".repeat(body_limit + 10));
                request.chunked = true;
                request
            },
            413,
            "Request body too large: the limit is 1048576 bytes",
        ),
        refused(
            "arrays nested 100,000 deep",
            post(
                "/workflows/greet/run-nowait",
                format!(r#"{{"start_event": {}}}"#, nested(100_000)),
            ),
            400,
            "Invalid JSON body: recursion limit exceeded",
        ),
        refused(
            "a string holding JSON nested 10,000 deep",
            post(
                "/events/waiting",
                serde_json::to_string(&json!({"event": nested(10_000)})).unwrap(),
            ),
            400,
            "Failed to deserialize event",
        ),
        served(
            "an object nested 100 deep (within the limit) starts a run",
            post(
                "/workflows/greet/run",
                format!(
                    r#"{{"start_event": {{"name": "Ada", "deep": {}}}}}"#,
                    nested_object(100)
                ),
            ),
            200,
            true,
        ),
        served(
            "a string of 900 KB starts a run",
            post(
                "/workflows/greet/run",
                format!(
                    r#"{{"start_event": {{"name": "{}"}}}}"#,
                    "n".repeat(900_000)
                ),
            ),
            200,
            true,
        ),
        // NUL and other control characters inside JSON strings: valid JSON, kept as given.
        served(
            "NUL in a start event's value and key",
            post(
                "/workflows/greet/run",
                r#"{"start_event": {"name": "A\u0000da", "\u0000": "\u0000\u001b[2J"}}"#,
            ),
            200,
            true,
        ),
        // Bytes that are not UTF-8.
        refused(
            "a body that is not UTF-8",
            post(
                "/workflows/greet/run-nowait",
                b"{\"start_event\": {\"name\": \"\xff\xfe\"}}".to_vec(),
            ),
            400,
            "Invalid JSON body: invalid unicode code point",
        ),
        refused(
            "a handler id that is not UTF-8",
            get("/handlers/%FF%FE"),
            400,
            "Invalid URL: Invalid UTF-8 in `handler_id`",
        ),
        refused(
            "raw bytes beyond ASCII in the request target (hyper passes them)",
            get(b"/handlers/\xc2\x85".to_vec()),
            400,
            "Invalid handler id: it holds the control character U+0085 at byte 0",
        ),
        Case {
            what: "an escape character in a header".to_owned(),
            request: with_header(get("/workflows"), "X-Trace", "a\u{1b}[2J"),
            status: 400,
            detail: Detail::Empty,
            stores: false,
        },
        refused(
            "a workflow name that is not UTF-8",
            post("/workflows/%C0%80/run", "{}"),
            400,
            "Invalid URL: Invalid UTF-8 in `name`",
        ),
        refused(
            "an idempotency key that is not ASCII",
            with_header(
                post("/workflows/greet/run-nowait", "{}"),
                "Idempotency-Key",
                b"k\xe9y".to_vec(),
            ),
            400,
            "Invalid Idempotency-Key: it is not visible ASCII",
        ),
        refused(
            "an idempotency key for an event that is not ASCII",
            with_header(
                post("/events/waiting", answer),
                "Idempotency-Key",
                b"\xff".to_vec(),
            ),
            400,
            "Invalid Idempotency-Key: it is not visible ASCII",
        ),
        // Odd and oversized ids.
        refused(
            "a 2,800-byte handler id",
            get(format!("/handlers/{long_id}")),
            400,
            "Invalid handler id: it is 2800 bytes long; at most 256 are allowed",
        ),
        refused(
            "NUL in a handler id",
            get("/handlers/a%00b"),
            400,
            "Invalid handler id: it holds the control character U+0000 at byte 1",
        ),
        refused(
            "a newline in a handler id",
            get("/results/a%0AINFO%20forged"),
            400,
            "Invalid handler id: it holds the control character U+000A at byte 1",
        ),
        refused(
            "an ANSI escape in a handler id",
            post("/handlers/%1B%5B2J/cancel", ""),
            400,
            "Invalid handler id: it holds the control character U+001B at byte 0",
        ),
        refused(
            "a C1 control character in a handler id",
            get("/events/a%C2%85b"),
            400,
            "Invalid handler id: it holds the control character U+0085 at byte 1",
        ),
        refused(
            "a 2,800-byte handler id sent an event",
            post(format!("/events/{long_id}"), answer),
            400,
            "Invalid handler id: it is 2800 bytes long",
        ),
        refused(
            "a 2,800-byte handler id in a run body",
            post(
                "/workflows/greet/run-nowait",
                format!(r#"{{"handler_id": "{long_id}"}}"#),
            ),
            400,
            "Invalid handler id: it is 2800 bytes long",
        ),
        refused(
            "NUL in a handler id in a run body",
            post(
                "/workflows/greet/run-nowait",
                r#"{"handler_id": "a\u0000b"}"#,
            ),
            400,
            "Invalid handler id: it holds the control character U+0000 at byte 1",
        ),
        refused(
            "a 2,800-byte idempotency key for a run",
            with_header(
                post("/workflows/greet/run-nowait", "{}"),
                "Idempotency-Key",
                long_id.clone(),
            ),
            400,
            "Invalid Idempotency-Key: it is 2800 bytes long",
        ),
        refused(
            "a 2,800-byte idempotency key for an event",
            with_header(
                post("/events/waiting", answer),
                "Idempotency-Key",
                long_id.clone(),
            ),
            400,
            "Invalid Idempotency-Key: it is 2800 bytes long",
        ),
        refused(
            "an id of 256 two-byte characters is long but valid, and unknown",
            get(format!("/handlers/{}", "%C3%A9".repeat(128))),
            404,
            "Handler '",
        ),
        refused(
            "a path-like id",
            get("/handlers/..%2F..%2Fetc%2Fpasswd"),
            404,
            "Handler '../../etc/passwd' not found",
        ),
        refused(
            "the id of a running run of another workflow",
            post(
                "/workflows/greet/run-nowait",
                r#"{"handler_id": "waiting"}"#,
            ),
            409,
            "Handler 'waiting' ",
        ),
        refused(
            "the id of a waiting run",
            post("/workflows/ask/run-nowait", r#"{"handler_id": "waiting"}"#),
            409,
            "Handler 'waiting' is already running (waiting)",
        ),
        // Bad cursors and filters.
        refused(
            "a cursor that is no number",
            get("/events/waiting?after_sequence=abc"),
            400,
            "Invalid after_sequence: 'abc'",
        ),
        refused(
            "a cursor beyond i64",
            get("/events/waiting?after_sequence=99999999999999999999"),
            400,
            "Invalid after_sequence: '99999999999999999999'",
        ),
        refused(
            "a cursor holding a newline",
            get("/events/waiting?after_sequence=1%0AINFO%20forged"),
            400,
            "Invalid after_sequence: '1\nINFO forged'",
        ),
        served(
            "the largest cursor on a finished run",
            get("/events/done?after_sequence=9223372036854775807"),
            204,
            false,
        ),
        served(
            "a very negative cursor on a finished run: its events",
            get("/events/done?after_sequence=-9223372036854775808&sse=false"),
            200,
            false,
        ),
        served(
            "a Last-Event-ID that is no number is ignored",
            with_header(get("/events/done?after_sequence=0"), "Last-Event-ID", "x"),
            200,
            false,
        ),
        refused(
            "an unknown status filter",
            get("/handlers?status=bogus"),
            400,
            "Invalid status filter: 'bogus'",
        ),
        refused(
            "NUL in a status filter",
            get("/handlers?status=%00"),
            400,
            "Invalid status filter: '\u{0}'",
        ),
        refused(
            "NUL in a workflow filter",
            get("/handlers?workflow_name=gr%00eet"),
            400,
            "Invalid workflow_name filter: it holds the control character U+0000 at byte 2",
        ),
        served(
            "a workflow filter of 10 KB matches nothing",
            get(format!("/handlers?workflow_name={}", "w".repeat(10_000))),
            200,
            false,
        ),
        // Unknown types, workflows, routes and methods.
        refused(
            "an unknown event type",
            post(
                "/events/waiting",
                r#"{"event": {"type": "Nope", "value": {}}}"#,
            ),
            400,
            "Invalid event type: Nope. Expected one of ",
        ),
        refused(
            "an event type with NUL and a newline",
            post(
                "/events/waiting",
                r#"{"event": {"type": "No\u0000pe\nINFO forged", "value": {}}}"#,
            ),
            400,
            "Invalid event type: No\u{0}pe\nINFO forged. Expected one of ",
        ),
        refused(
            "an event type that is no string",
            post("/events/waiting", r#"{"event": {"type": 5, "value": {}}}"#),
            400,
            "Invalid event type: 5. It must be a string",
        ),
        refused(
            "a start event of another type",
            post(
                "/workflows/greet/run-nowait",
                r#"{"start_event": {"type": "StopEvent", "value": {"result": 1}}}"#,
            ),
            400,
            "Validation error for 'start_event': Start event must be an instance of StartEvent, got StopEvent",
        ),
        refused(
            "an event for a finished run",
            post("/events/done", answer),
            409,
            "Workflow already completed: handler 'done' is completed",
        ),
        refused(
            "an unknown workflow",
            post("/workflows/nope/run", "{}"),
            404,
            "Workflow 'nope' not found",
        ),
        refused(
            "a workflow name with NUL",
            get("/workflows/a%00b/schema"),
            404,
            "Workflow 'a\u{0}b' not found",
        ),
        refused(
            "an unknown route",
            get("/nope/%0A"),
            404,
            "No route for GET /nope/%0A",
        ),
        refused(
            "a method a route does not serve",
            RawRequest::new("DELETE", "/handlers/waiting"),
            405,
            "Method DELETE is not allowed on /handlers/waiting",
        ),
        refused(
            "a method nobody serves",
            RawRequest::new("FROBNICATE1", "/workflows"),
            405,
            "Method FROBNICATE1 is not allowed on /workflows",
        ),
        // The Host header: required, and only loopback names on a loopback server without a
        // token (DNS rebinding).
        refused(
            "no Host header",
            {
                let mut request = get("/workflows");
                request.host = HostHeader::Absent;
                request
            },
            400,
            "The request names no host",
        ),
        refused_naming(
            "a Host that is not a loopback name",
            with_host(
                post("/workflows/greet/run-nowait", "{}"),
                format!("rebind.example:{port}"),
            ),
            403,
            &[
                &format!("Host 'rebind.example:{port}' is not allowed"),
                "allowed_hosts",
                "--allowed-host",
            ],
        ),
        refused_naming(
            "a Host that only starts like a loopback name",
            with_host(get("/handlers"), format!("127.0.0.1.rebind.example:{port}")),
            403,
            &["'127.0.0.1.rebind.example:"],
        ),
        served(
            "a loopback name on another port (a tunnel, a proxy)",
            with_host(get("/handlers"), "localhost:1"),
            200,
            false,
        ),
        refused_naming(
            "0.0.0.0, which browsers send to the local machine",
            with_host(get("/handlers"), format!("0.0.0.0:{port}")),
            403,
            &["'0.0.0.0:"],
        ),
        refused(
            "a Host that is no host name",
            with_host(get("/handlers"), "a b"),
            400,
            "Invalid Host header: 'a b' is not a host name",
        ),
        served(
            "localhost with the port",
            with_host(get("/handlers"), format!("localhost:{port}")),
            200,
            false,
        ),
        served(
            "LOCALHOST. without a port",
            with_host(get("/workflows"), "LOCALHOST."),
            200,
            false,
        ),
        served(
            "[::1] with the port",
            with_host(get("/workflows"), format!("[::1]:{port}")),
            200,
            false,
        ),
        served(
            "127.0.0.1 without a port",
            with_host(get("/workflows"), "127.0.0.1"),
            200,
            false,
        ),
    ]
}

async fn hostile_requests_are_refused_and_the_server_stays_healthy(backend: Backend) {
    let (mut server, schema) = serve(backend, "table", test_config()).await;
    let addr = addr(&server);
    let port = server.running.as_ref().unwrap().local_addr().port();
    let (status, body) = server
        .post(
            "/workflows/ask/run-nowait",
            json!({"handler_id": "waiting"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    server.wait_status("waiting", &["waiting"]).await;
    let (status, body) = server
        .post(
            "/workflows/greet/run",
            json!({"handler_id": "done", "start_event": {"name": "Bo"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let mut failures = Vec::new();
    for case in cases(port) {
        let before = stored(&server).await;
        let response = case.request.send(&addr).await;
        let what = &case.what;
        let detail = response.detail();
        let mut wrong = Vec::new();
        if response.status != case.status {
            wrong.push(format!(
                "status {} (expected {})",
                response.status, case.status
            ));
        }
        match (&case.detail, &detail) {
            (Detail::StartsWith(prefix), Some(detail)) if detail.starts_with(prefix.as_str()) => {}
            (Detail::Contains(words), Some(detail))
                if words.iter().all(|word| detail.contains(word.as_str())) => {}
            (Detail::NotAnError, None) => {}
            (Detail::Empty, None) if response.body.is_empty() => {}
            (expected, _) => wrong.push(format!("detail (expected {expected:?})")),
        }
        if response.status >= 500 {
            wrong.push("a server error".to_owned());
        }
        if !case.stores && stored(&server).await != before {
            wrong.push("it stored something".to_owned());
        }
        if !wrong.is_empty() {
            let text = response.text();
            let text: String = text.chars().take(300).collect();
            failures.push(format!(
                "{what}: {}; answer: {} {text:?}",
                wrong.join(", "),
                response.status
            ));
        }
        assert_healthy(&server, what).await;
    }
    assert!(
        failures.is_empty(),
        "{} of the hostile cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // No hostile request reached the waiting run: the first answer it gets is this one.
    let (status, body) = server
        .post(
            "/events/waiting",
            json!({"event": {"type": "HumanResponseEvent", "value": {"response": "Ada"}}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let data = server.wait_status("waiting", &["completed"]).await;
    assert_eq!(data["result"]["value"]["result"], "Hi Ada", "{data}");
    // A method nobody serves adds no series to the metrics (one per method would let a client
    // grow them without bound).
    let (_, metrics) = server.get("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(!metrics.contains("FROBNICATE"), "{metrics}");
    server.shutdown().await;
    if let Some(schema) = schema {
        schema.drop_it().await;
    }
}

/// Authorization headers, well-formed and not, on a server with a token.
async fn auth_variants_are_told_apart(backend: Backend) {
    let (mut server, schema) = serve(backend, "auth", test_config().auth_token("s3cret")).await;
    let addr = addr(&server);
    let missing = "Missing bearer token: send `Authorization: Bearer <token>`";
    let invalid = "Invalid bearer token";
    let malformed = "Malformed Authorization header";
    let scheme = "Unsupported authorization scheme";
    let variants: Vec<(&str, Vec<&[u8]>, u16, &str)> = vec![
        ("no header", vec![], 401, missing),
        ("Bearer", vec![b"Bearer s3cret"], 200, ""),
        ("bearer", vec![b"bearer s3cret"], 200, ""),
        ("BEARER", vec![b"BEARER s3cret"], 200, ""),
        ("BeArEr", vec![b"BeArEr s3cret"], 200, ""),
        ("two spaces", vec![b"Bearer  s3cret"], 200, ""),
        (
            "the token in another case",
            vec![b"Bearer S3CRET"],
            401,
            invalid,
        ),
        ("a wrong token", vec![b"Bearer wrong"], 401, invalid),
        ("a prefix of the token", vec![b"Bearer s3cre"], 401, invalid),
        ("the token and more", vec![b"Bearer s3cret2"], 401, invalid),
        (
            "the token, a space and more",
            vec![b"Bearer s3cret x"],
            401,
            invalid,
        ),
        ("the scheme alone", vec![b"Bearer"], 401, malformed),
        ("the scheme and a space", vec![b"Bearer "], 401, malformed),
        ("an empty header", vec![b""], 401, malformed),
        ("the token alone", vec![b"s3cret"], 401, malformed),
        (
            "a tab after the scheme",
            vec![b"Bearer\ts3cret"],
            401,
            malformed,
        ),
        (
            "bytes that are not ASCII",
            vec![b"Bearer s3cr\xe9t"],
            401,
            malformed,
        ),
        ("Basic", vec![b"Basic czNjcmV0"], 401, scheme),
        (
            "twice",
            vec![b"Bearer wrong", b"Bearer s3cret"],
            401,
            malformed,
        ),
    ];
    let mut failures = Vec::new();
    for (what, headers, status, detail) in variants {
        for request in [get("/workflows"), post("/workflows/greet/run-nowait", "{}")] {
            let mut request = request;
            for value in &headers {
                request = with_header(request, "Authorization", value.to_vec());
            }
            let before = run_ids(&server).await;
            let response = request.send(&addr).await;
            let got = response.detail().unwrap_or_default();
            let ok = response.status == status
                && (status != 401
                    || (got.starts_with(detail)
                        && response.header("www-authenticate") == Some("Bearer")));
            if !ok {
                failures.push(format!(
                    "{what} ({} {}): {} {got:?}",
                    request.method,
                    String::from_utf8_lossy(&request.target),
                    response.status
                ));
            }
            if status == 401 {
                assert_eq!(run_ids(&server).await, before, "{what}: stored something");
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // /health needs no token.
    assert_eq!(get("/health").send(&addr).await.status, 200);
    server.shutdown().await;
    if let Some(schema) = schema {
        schema.drop_it().await;
    }
}

/// The store fails for real: a write lock held by another process (SQLite) or a serialization
/// failure (Postgres) may pass, so the server answers 503 "retry later"; a write the database
/// refuses for good (a trigger raising a constraint error) is a 500 that does not say retry. In
/// both, the body carries none of the database's text, and the server recovers.
async fn store_errors_are_told_apart(backend: Backend) {
    let (mut server, schema) = serve(backend, "store", test_config()).await;
    let secret = "text only the database knows";
    let start = || server.post("/workflows/greet/run-nowait", json!({}));
    let check = |status: u16, body: &Value, expected: u16, prefix: &str| {
        assert_eq!(status, expected, "{body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.starts_with(prefix), "{detail}");
        assert!(!detail.contains("database"), "{detail}");
        assert!(!detail.contains(secret), "{detail}");
    };
    let transient = "The store is unavailable; retry later (error id ";
    let permanent = "Internal server error (error id ";
    match backend {
        Backend::Sqlite => {
            let path = server.dir.path().join("runs.db");
            let lock = rusqlite::Connection::open(&path).unwrap();
            lock.execute_batch("BEGIN IMMEDIATE").unwrap();
            let (status, body) = start().await;
            check(status, &body, 503, transient);
            lock.execute_batch("COMMIT").unwrap();
            lock.execute_batch(&format!(
                "CREATE TRIGGER hostile_refusal BEFORE INSERT ON runs \
                 BEGIN SELECT RAISE(ABORT, '{secret}'); END;"
            ))
            .unwrap();
            let (status, body) = start().await;
            check(status, &body, 500, permanent);
            lock.execute_batch("DROP TRIGGER hostile_refusal").unwrap();
        }
        Backend::Postgres => {
            let schema = schema.as_ref().unwrap();
            let mut conn = schema.connect().await;
            let raise = |code: &str| {
                format!(
                    "CREATE OR REPLACE FUNCTION hostile_refusal() RETURNS trigger \
                     LANGUAGE plpgsql AS $$ BEGIN \
                     RAISE EXCEPTION '{secret}' USING ERRCODE = '{code}'; END $$"
                )
            };
            // 40001: serialization failure.
            sqlx::query(&raise("40001"))
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query(
                "CREATE TRIGGER hostile_refusal BEFORE INSERT ON runs \
                 FOR EACH ROW EXECUTE FUNCTION hostile_refusal()",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            let (status, body) = start().await;
            check(status, &body, 503, transient);
            // 23514: check violation.
            sqlx::query(&raise("23514"))
                .execute(&mut conn)
                .await
                .unwrap();
            let (status, body) = start().await;
            check(status, &body, 500, permanent);
            sqlx::query("DROP TRIGGER hostile_refusal ON runs")
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
    let (list, _) = server.get("/handlers").await;
    assert_eq!(list, 200);
    assert_eq!(
        stored(&server).await,
        Vec::new(),
        "a failed start stored nothing"
    );
    assert_healthy(&server, "the store recovered").await;
    server.shutdown().await;
    if let Some(schema) = schema {
        schema.drop_it().await;
    }
}

macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                #[ignore = "needs Postgres: DATABASE_URL, and --ignored (bash .ci/run runs them)"]
                async fn $test() {
                    super::$test(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_every_backend!(
    hostile_requests_are_refused_and_the_server_stays_healthy,
    auth_variants_are_told_apart,
    store_errors_are_told_apart,
);

/// What a test subscriber writes, shared with the test.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Values from requests that reach a log line (a workflow name, an event type, a cursor, a
/// filter) cannot forge a line of their own or send escape sequences to a terminal.
#[tokio::test]
async fn request_values_cannot_forge_log_lines() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("eventflow_server=debug,tower_http=debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The server's tasks run on this test's thread (a current-thread runtime), so they log here.
    let _default = tracing::subscriber::set_default(subscriber);
    let (mut server, _) = serve(Backend::Sqlite, "logs", test_config()).await;
    let addr = addr(&server);
    server
        .start_run("ask", json!({"handler_id": "waiting"}))
        .await;
    server.wait_status("waiting", &["waiting"]).await;
    let forged = "%0AINFO%20forged%20line%1B%5B2J";
    for request in [
        post(format!("/workflows/x{forged}/run"), "{}"),
        get(format!("/workflows/x{forged}/schema")),
        get(format!("/handlers?status=x{forged}")),
        get(format!("/events/waiting?after_sequence=x{forged}")),
        post(
            "/events/waiting",
            r#"{"event": {"type": "X\nINFO forged line\u001b[2J", "value": {}}}"#,
        ),
        post(
            "/events/waiting",
            r#"{"event": {"type": "HumanResponseEvent", "value": {"response": "x"}}, "step": "s\nINFO forged line\u001b[2J"}"#,
        ),
        with_host(get("/workflows"), "rebind.example"),
        // A raw line separator (U+2028) and next-line (U+0085) in the path.
        get(b"/workflows/x\xe2\x80\xa8INFO%20forged%20line\xc2\x85/schema".to_vec()),
    ] {
        let response = request.send(&addr).await;
        assert!(
            (400..500).contains(&response.status),
            "{:?}: {}",
            String::from_utf8_lossy(&request.target),
            response.status
        );
    }
    server.shutdown().await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("forged line"),
        "the values were logged: {text}"
    );
    for line in text.lines() {
        assert!(
            !line.trim_start().starts_with("INFO"),
            "a forged line: {line:?}\n{text}"
        );
    }
    for raw in ['\u{1b}', '\u{2028}', '\u{85}'] {
        assert!(!text.contains(raw), "{raw:?} reached the log: {text}");
    }
}

/// A loopback server without a token answers only to loopback names, and to the names it is
/// told to allow; with a token, any name (the token is the guard).
#[tokio::test]
async fn extra_host_names_can_be_allowed() {
    let (mut server, _) = serve(
        Backend::Sqlite,
        "hosts",
        test_config().allowed_hosts(["app.internal", "Tunnel.Example:9000"]),
    )
    .await;
    let addr = addr(&server);
    let port = server.running.as_ref().unwrap().local_addr().port();
    for (host, status) in [
        (format!("app.internal:{port}"), 200),
        ("APP.internal".to_owned(), 200),
        ("app.internal:1234".to_owned(), 200),
        ("tunnel.example:9000".to_owned(), 200),
        ("tunnel.example:9001".to_owned(), 403),
        ("tunnel.example".to_owned(), 403),
        (format!("localhost:{port}"), 200),
        (format!("other.internal:{port}"), 403),
    ] {
        let response = with_host(get("/workflows"), host.clone()).send(&addr).await;
        assert_eq!(response.status, status, "{host}: {}", response.text());
    }
    server.shutdown().await;

    let (mut server, _) = serve(Backend::Sqlite, "token", test_config().auth_token("s3cret")).await;
    let addr = self::addr(&server);
    let response = with_header(
        with_host(get("/workflows"), "api.example.com"),
        "Authorization",
        "Bearer s3cret",
    )
    .send(&addr)
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    server.shutdown().await;
}
