//! `eventflow`: serve workflows over HTTP, and drive a server from the command line.
//!
//! ```text
//! eventflow serve --demo                      # the examples' workflows on 127.0.0.1:8080
//! eventflow workflows                         # what the server serves
//! eventflow run quickstart query="What is quantum computing?"
//! eventflow run hitl query="A customer asks for a refund" --answer yes
//! eventflow handlers                          # the runs, with their status
//! eventflow events HANDLER                    # follow a run's events
//! eventflow send HANDLER HumanResponseEvent response=yes
//! eventflow cancel HANDLER
//! eventflow draw branching                    # the workflow's graph, as Mermaid
//! ```
//!
//! Every client command takes `--url` (default `http://127.0.0.1:8080`, or `EVENTFLOW_URL`),
//! `--token` (or `EVENTFLOW_TOKEN`) and `--json` (one JSON document, or JSON lines for streams).

#![warn(missing_docs)]

mod args;
mod client;
mod graph;
mod output;
mod serve;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::args::parse_duration;

/// The server client commands talk to when neither `--url` nor `EVENTFLOW_URL` is given.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// The exit code of a command interrupted by Ctrl-C (128 + SIGINT).
const INTERRUPTED: u8 = 130;

#[derive(Debug, Parser)]
#[command(
    name = "eventflow",
    version,
    about = "Serve eventflow workflows over HTTP, run them and follow their events",
    long_about = "Serve eventflow workflows over HTTP (the llama-agents-server API), run them \
                  and follow their events.\n\nStart a server with the example workflows with \
                  `eventflow serve --demo`, then in another shell: `eventflow workflows`, \
                  `eventflow run quickstart query=\"What is quantum computing?\"`.",
    after_help = "Values of key=value arguments are JSON when they parse as JSON (n=3, \
                  ok=true, tags='[\"a\"]'), strings otherwise (name=Ada)."
)]
struct Cli {
    /// The server the client commands talk to.
    #[arg(
        long,
        global = true,
        env = "EVENTFLOW_URL",
        hide_env_values = true,
        default_value = DEFAULT_URL
    )]
    url: String,
    /// The bearer token: sent by the client commands; required from clients by `serve`.
    #[arg(long, global = true, env = "EVENTFLOW_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Machine-readable output: one JSON document, or JSON lines for streams of events.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve workflows over HTTP, runs kept durable in SQLite or Postgres.
    Serve(ServeArgs),
    /// List the workflows the server serves.
    Workflows,
    /// Run a workflow: stream its events as they come, answer its questions, print its result
    /// (--json: a JSON line per event, then the handler's).
    Run(RunArgs),
    /// Follow a handler's (run's) events until it finishes (--json: a JSON line per event).
    Events(EventsArgs),
    /// Send an event into a running handler (e.g. `HumanResponseEvent response=yes`).
    Send(SendArgs),
    /// List the handlers (runs), oldest first.
    Handlers(HandlersArgs),
    /// Show one handler: its status and result; `--wait` waits for it to finish.
    Handler(HandlerArgs),
    /// Cancel a handler's run (`--purge` also deletes it and its events).
    Cancel(CancelArgs),
    /// Draw a workflow's graph as a Mermaid flowchart.
    Draw(DrawArgs),
    /// Check that the server is up (`--wait` retries until it is).
    Health(HealthArgs),
}

/// The arguments of `eventflow serve`.
#[derive(Debug, Args)]
struct ServeArgs {
    /// Serve the examples' workflows: quickstart, branching, refinement, parallel_search,
    /// streaming, hitl and expenses.
    #[arg(long)]
    demo: bool,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The port to listen on (0: any free port, printed when ready).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Where runs are kept: sqlite:PATH (created if missing), postgres://... (a cluster of
    /// servers may share it), or memory (runs die with the server).
    #[arg(
        long,
        env = "EVENTFLOW_DATABASE_URL",
        hide_env_values = true,
        default_value = "sqlite:eventflow.db"
    )]
    database_url: String,
    /// Postgres only: keep the tables in this schema (created if missing), so that several
    /// deployments share one database.
    #[arg(long)]
    schema: Option<String>,
    /// How long a server may go without a heartbeat before the others take its runs over
    /// (default 10s; e.g. 500ms, 2s, 1m).
    #[arg(long, value_parser = parse_duration)]
    lease_ttl: Option<Duration>,
    /// How often the server polls the store for work when no signal came (default 500ms).
    #[arg(long, value_parser = parse_duration)]
    poll_interval: Option<Duration>,
    /// This server's worker id in the store (default: a random UUID).
    #[arg(long)]
    worker_id: Option<String>,
    /// Browser origins allowed to call the server, with credentials (repeatable), or `*` for
    /// any origin without credentials. Default: none, so web pages cannot call the server.
    #[arg(
        long = "cors-origin",
        value_name = "ORIGIN",
        conflicts_with = "no_cors"
    )]
    cors_origins: Vec<String>,
    /// Send no CORS headers (the default): browsers refuse cross-origin calls.
    #[arg(long)]
    no_cors: bool,
    /// Serve on a non-loopback address (e.g. --host 0.0.0.0) without a token: anyone who can
    /// reach it can start, read and cancel runs.
    #[arg(long)]
    insecure_no_auth: bool,
    /// A host name the server answers to besides localhost, 127.0.0.1 and [::1] (repeatable;
    /// `NAME` on any port, `NAME:PORT` on that one). Without a token, a server on loopback
    /// refuses requests whose Host header names anything else, so that web pages cannot drive
    /// it through DNS rebinding; allow the names a proxy or a tunnel reaches it by.
    #[arg(long = "allowed-host", value_name = "NAME")]
    allowed_hosts: Vec<String>,
    /// The largest request body accepted, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    body_limit: usize,
}

/// The arguments of `eventflow run`.
#[derive(Debug, Args)]
struct RunArgs {
    /// The workflow (`eventflow workflows` lists them).
    workflow: String,
    /// The start event's fields, as key=value.
    #[arg(value_name = "KEY=VALUE")]
    fields: Vec<String>,
    /// Answer the run's questions (InputRequiredEvent) with this text, without asking; once
    /// per question, in order.
    #[arg(long, value_name = "TEXT")]
    answer: Vec<String>,
    /// Start the run and print its handler id without waiting for it.
    #[arg(long, alias = "no-wait")]
    nowait: bool,
    /// The handler id to use (a finished handler's id starts it again with its state).
    #[arg(long)]
    handler_id: Option<String>,
    /// Print only the result, not the events.
    #[arg(long, short)]
    quiet: bool,
    /// Give up waiting after this long (the run goes on on the server).
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
}

/// The arguments of `eventflow events`.
#[derive(Debug, Args)]
struct EventsArgs {
    /// The handler id.
    handler: String,
    /// Only the events after this sequence number (0: every run of the handler).
    #[arg(long, conflicts_with = "all")]
    after: Option<u64>,
    /// Every event of every run of the handler (same as --after 0).
    #[arg(long)]
    all: bool,
    /// Print the events published so far and stop, instead of following the run.
    #[arg(long)]
    no_follow: bool,
}

/// The arguments of `eventflow send`.
#[derive(Debug, Args)]
struct SendArgs {
    /// The handler id.
    handler: String,
    /// The event type (e.g. HumanResponseEvent).
    event_type: String,
    /// The event's fields, as key=value.
    #[arg(value_name = "KEY=VALUE")]
    fields: Vec<String>,
    /// Deliver the event to this step only.
    #[arg(long)]
    step: Option<String>,
    /// An idempotency key: the same key sent twice is delivered once.
    #[arg(long)]
    key: Option<String>,
}

/// The arguments of `eventflow handlers`.
#[derive(Debug, Args)]
struct HandlersArgs {
    /// Only handlers with this status: running, waiting, parked, completed, failed, cancelled
    /// (repeatable).
    #[arg(long)]
    status: Vec<String>,
    /// Only handlers of this workflow (repeatable).
    #[arg(long)]
    workflow: Vec<String>,
}

/// The arguments of `eventflow handler`.
#[derive(Debug, Args)]
struct HandlerArgs {
    /// The handler id.
    handler: String,
    /// Wait until the run has finished.
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this long.
    #[arg(long, value_parser = parse_duration, requires = "wait")]
    timeout: Option<Duration>,
}

/// The arguments of `eventflow cancel`.
#[derive(Debug, Args)]
struct CancelArgs {
    /// The handler id.
    handler: String,
    /// Also delete the run, its journal and its events.
    #[arg(long)]
    purge: bool,
}

/// The arguments of `eventflow draw`.
#[derive(Debug, Args)]
struct DrawArgs {
    /// The workflow (`eventflow workflows` lists them).
    workflow: String,
}

/// The arguments of `eventflow health`.
#[derive(Debug, Args)]
struct HealthArgs {
    /// Retry until the server answers healthy, at most this long (e.g. 30s).
    #[arg(long, value_parser = parse_duration)]
    wait: Option<Duration>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(dispatch(cli));
    // A prompt may still be reading stdin: do not wait for it.
    runtime.shutdown_background();
    match outcome {
        Ok(code) => code,
        Err(error) => {
            output::clear_line();
            eprintln!("error: {}", eventflow::store::error_chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let out = output::Output::new(cli.json);
    if let Command::Serve(args) = cli.command {
        return serve::serve(args, cli.token, out).await;
    }
    let cx = client::Cx::new(&cli.url, cli.token, out)?;
    match cli.command {
        Command::Serve(_) => unreachable!("handled above"),
        Command::Workflows => cx.workflows().await,
        Command::Run(args) => cx.run(args).await,
        Command::Events(args) => cx.events(args).await,
        Command::Send(args) => cx.send(args).await,
        Command::Handlers(args) => cx.handlers(args).await,
        Command::Handler(args) => cx.handler(args).await,
        Command::Cancel(args) => cx.cancel(args).await,
        Command::Draw(args) => cx.draw(args).await,
        Command::Health(args) => cx.health(args).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = Cli::try_parse_from([
            "eventflow",
            "run",
            "hitl",
            "query=refund",
            "--answer",
            "yes",
            "--json",
            "--url",
            "http://127.0.0.1:9",
        ])
        .unwrap();
        assert!(cli.json);
        assert_eq!(cli.url, "http://127.0.0.1:9");
        let Command::Run(run) = cli.command else {
            panic!("not a run")
        };
        assert_eq!(run.fields, ["query=refund"]);
        assert_eq!(run.answer, ["yes"]);
    }
}
