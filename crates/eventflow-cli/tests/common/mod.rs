//! Helpers of the end-to-end tests: `eventflow serve --demo` as a real process on a loopback
//! port, and the client commands run as real processes against it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub(crate) const EVENTFLOW: &str = env!("CARGO_BIN_EXE_eventflow");

/// How long a client command may take before the test fails.
pub(crate) const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// A command without the variables of the environment that would change what it does.
pub(crate) fn eventflow() -> Command {
    let mut command = Command::new(EVENTFLOW);
    for var in [
        "EVENTFLOW_URL",
        "EVENTFLOW_TOKEN",
        "EVENTFLOW_DATABASE_URL",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    command.stdin(Stdio::null());
    command
}

/// `eventflow serve --demo` running in the background; killed (SIGKILL) when dropped.
pub(crate) struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The port it listens on.
    pub port: u16,
    /// Where its logs (stderr) go.
    pub log: PathBuf,
    /// Keeps reading stdout so that the server never blocks on it.
    _stdout: thread::JoinHandle<()>,
}

impl ServerProcess {
    /// Starts a server on a free port (or `port`) with the store `database_url` and `extra`
    /// arguments; returns once it is ready.
    pub(crate) fn start(
        dir: &Path,
        database_url: &str,
        port: u16,
        extra: &[&str],
    ) -> ServerProcess {
        let log = dir.join(format!("server-{}.log", fastrand_suffix()));
        let stderr = std::fs::File::create(&log).expect("a log file");
        let mut child = eventflow()
            .args(["--json", "serve", "--demo", "--port", &port.to_string()])
            .args(["--database-url", database_url])
            .args(extra)
            .env("RUST_LOG", "eventflow_server=info,eventflow=info")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("eventflow serve starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready, first_line) = mpsc::channel();
        let reader = thread::spawn(move || drain(stdout, ready));
        let line = match first_line.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "eventflow serve did not become ready; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the ready line is JSON ({e}): {line}"));
        let url = ready["url"].as_str().expect("a url").to_owned();
        let port = url.rsplit(':').next().unwrap().parse().expect("a port");
        ServerProcess {
            child,
            url,
            port,
            log,
            _stdout: reader,
        }
    }

    /// Kills the server with SIGKILL: no shutdown, no hand-over.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server with SIGTERM (a graceful shutdown) and waits for it to exit.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop on SIGTERM"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `eventflow --url <this server> ARGS...`.
    pub(crate) fn cli(&self, args: &[&str]) -> CliOutput {
        cli(&self.url, args)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends stdout's first line through `ready`, then reads the rest.
fn drain(stdout: ChildStdout, ready: mpsc::Sender<String>) {
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) > 0 {
        let _ = ready.send(line.trim().to_owned());
    }
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
}

/// A few random hex digits (no dependency for that).
pub(crate) fn fastrand_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{:x}{:x}", std::process::id(), nanos)
}

/// What a client command did.
#[derive(Debug)]
pub(crate) struct CliOutput {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl CliOutput {
    /// Asserts the command succeeded; returns its stdout.
    pub(crate) fn ok(&self) -> &str {
        assert!(self.status.success(), "the command failed: {self:#?}");
        &self.stdout
    }

    /// Asserts the command failed; returns its stderr.
    pub(crate) fn failed(&self) -> &str {
        assert!(!self.status.success(), "the command succeeded: {self:#?}");
        &self.stderr
    }

    /// Stdout as one JSON document.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("stdout is one JSON document ({e}): {self:#?}"))
    }

    /// Stdout as JSON lines.
    pub(crate) fn json_lines(&self) -> Vec<Value> {
        self.ok()
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("a JSON line ({e}): {line}\n{self:#?}"))
            })
            .collect()
    }
}

/// Runs `eventflow --url URL ARGS...` and collects what it printed; fails the test after
/// [`COMMAND_LIMIT`].
pub(crate) fn cli(url: &str, args: &[&str]) -> CliOutput {
    let child = eventflow()
        .args(["--url", url])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("eventflow starts");
    collect(child, COMMAND_LIMIT, args)
}

/// Waits at most `limit` for `child` to exit and collects its output.
pub(crate) fn collect(mut child: Child, limit: Duration, what: &[&str]) -> CliOutput {
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`eventflow {}` did not finish within {limit:?}; stderr: {}",
                what.join(" "),
                err.join().unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    CliOutput {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Polls `check` every 50 ms until it returns `Some`, at most `limit`.
pub(crate) fn eventually<T>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// The handler's eventflow status, read through `url`.
pub(crate) fn status_of(url: &str, handler: &str) -> String {
    let handler = cli(url, &["--json", "handler", handler]).json();
    handler["eventflow_status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The query of the `hitl` example whose reply needs a human's approval.
pub(crate) const HITL_QUERY: &str = "query=A customer asks for a refund of a damaged order";
