//! `eventflow serve`: the demo workflows (the `eventflow-demo` crate) behind the HTTP API.

use std::io::{ErrorKind, IsTerminal};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use eventflow::store::{PostgresStore, is_postgres_url};
use eventflow_server::{Cors, Server, ServerConfig, ServerError, shutdown_signal};
use serde_json::json;
use tokio::net::TcpListener;

use crate::ServeArgs;
use crate::output::Output;

/// What `eventflow serve` without `--demo` says: it has no workflows of its own.
const NO_WORKFLOWS: &str = "\
eventflow serve has no workflows to serve.

  eventflow serve --demo    serves the examples' workflows: quickstart, branching, refinement,
                            parallel_search, streaming, hitl and expenses

To serve your own workflows, build a server with the eventflow-server library:

    // Cargo.toml: eventflow, eventflow-server, tokio (features: macros, rt-multi-thread), anyhow
    use eventflow_server::{Server, ServerConfig};

    #[tokio::main]
    async fn main() -> anyhow::Result<()> {
        let config = ServerConfig::default()
            .addr(([127, 0, 0, 1], 8080))
            .store_url(\"sqlite:eventflow.db\"); // or postgres://... for a cluster
        Server::builder(config)
            .workflow(my_workflow()) // any eventflow::Workflow, served under its name
            .build()
            .await?
            .serve_configured() // until Ctrl-C or SIGTERM
            .await?;
        Ok(())
    }

(`eventflow_server::serve_workflow(workflow, config)` serves a single one.) The client commands
of this tool (workflows, run, events, send, handlers, cancel, draw) work against that server
too: point them at it with --url.";

/// Runs `eventflow serve` until Ctrl-C or SIGTERM.
pub(crate) async fn serve(
    args: ServeArgs,
    token: Option<String>,
    out: Output,
) -> anyhow::Result<ExitCode> {
    if !args.demo {
        eprintln!("{NO_WORKFLOWS}");
        return Ok(ExitCode::from(2));
    }
    let filter = std::env::var("RUST_LOG")
        .unwrap_or_else(|_| "eventflow_server=info,eventflow=warn".to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let mut config = ServerConfig::default().body_limit(args.body_limit);
    if args.cors_origins.iter().any(|origin| origin == "*") {
        if args.cors_origins.len() > 1 {
            bail!("--cors-origin '*' allows every origin: give it alone");
        }
        config = config.cors(Cors::AnyOrigin);
    } else if !args.no_cors && !args.cors_origins.is_empty() {
        config = config.cors(Cors::Origins(args.cors_origins.clone()));
    }
    config = config
        .insecure_no_auth(args.insecure_no_auth)
        .allowed_hosts(args.allowed_hosts.iter().cloned());
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        config = config.auth_token(token);
    }
    // Before anything is bound: a refused address is never listened on.
    let resolved = tokio::net::lookup_host((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot resolve --host {}", args.host))?;
    for candidate in resolved {
        config.check_exposure(candidate)?;
    }
    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|error| {
            let hint = match error.kind() {
                ErrorKind::AddrInUse => {
                    ": the port is taken (is another `eventflow serve` running?); pick another \
                     with --port"
                }
                ErrorKind::PermissionDenied => ": permission denied; pick a port above 1023",
                _ => "",
            };
            anyhow::anyhow!(
                "cannot listen on {}:{}{hint} ({error})",
                args.host,
                args.port
            )
        })?;
    let addr = listener.local_addr()?;
    config = config.addr(addr);
    if let Some(ttl) = args.lease_ttl {
        config = config.lease_ttl(ttl);
    }
    if let Some(every) = args.poll_interval {
        config = config.poll_interval(every);
    }
    if let Some(id) = &args.worker_id {
        config = config.worker_id(id.clone());
    }
    let store_name = eventflow_server::redact_url(&args.database_url);
    let store_hint = if is_postgres_url(&args.database_url) {
        "is Postgres running, and does the URL name a database that exists?"
    } else {
        "sqlite:PATH creates the file if missing, not its folder; or use postgres://... or memory"
    };
    config = match &args.schema {
        Some(schema) => {
            if !is_postgres_url(&args.database_url) {
                bail!("--schema needs a postgres:// --database-url, not {store_name}");
            }
            let store = PostgresStore::connect_schema(&args.database_url, schema)
                .await
                .with_context(|| {
                    format!("cannot open the store {store_name} (schema {schema}; {store_hint})")
                })?;
            config.store(Arc::new(store))
        }
        None => config.store_url(args.database_url.clone()),
    };

    let workflows = eventflow_demo::demo_workflows();
    let names: Vec<String> = workflows.iter().map(|w| w.name().to_owned()).collect();
    let mut builder = Server::builder(config);
    for workflow in workflows {
        builder = builder.workflow(workflow);
    }
    let server = builder.build().await.map_err(|error| match error {
        // Say which store, and what to check, instead of the server's bare "cannot open the
        // store"; the store's error follows as the cause.
        ServerError::Store(error) => anyhow::Error::new(error)
            .context(format!("cannot open the store {store_name} ({store_hint})")),
        error => anyhow::Error::new(error),
    })?;

    let url = format!("http://{addr}");
    if out.json {
        out.json_line(&json!({
            "url": url,
            "workflows": names,
            "store": store_name,
            "schema": args.schema,
        }));
    } else {
        let client_url = if url == crate::DEFAULT_URL {
            String::new()
        } else {
            format!(" --url {url}")
        };
        out.line(format!("eventflow serving on {url} (store: {store_name})"));
        out.line(format!("workflows: {}", names.join(", ")));
        out.line("try, in another shell:");
        for example in [
            "workflows",
            "run quickstart query=\"What is quantum computing?\"",
            "run streaming prompt=\"Why are workflows event-driven?\"",
            "run hitl query=\"A customer asks for a refund of a damaged order\"",
            "draw branching",
        ] {
            out.line(format!("  eventflow{client_url} {example}"));
        }
        out.line("Ctrl-C stops the server; runs stay in the store and go on when it restarts.");
    }

    server
        .serve_with_shutdown(listener, shutdown_signal())
        .await
        .context("the server stopped with an error")?;
    if !out.json {
        eprintln!("eventflow server stopped");
    }
    Ok(ExitCode::SUCCESS)
}
