//! Building a server, and serving it until shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use eventflow::Workflow;
use eventflow::durable::Engine;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{ServerConfig, StoreConfig};
use crate::error::ServerError;
use crate::metrics::Metrics;
use crate::schema::EventSchemas;

/// What every request handler shares.
pub(crate) struct AppState {
    pub(crate) engine: Engine,
    pub(crate) workflows: Vec<Workflow>,
    pub(crate) by_name: HashMap<String, usize>,
    pub(crate) schemas: EventSchemas,
    pub(crate) config: ServerConfig,
    pub(crate) metrics: Arc<Metrics>,
    /// Turns true when the server starts shutting down: streams end, waits give up.
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl AppState {
    pub(crate) fn served(&self, name: &str) -> Option<&Workflow> {
        self.by_name.get(name).map(|&index| &self.workflows[index])
    }

    /// Resolves when the server starts shutting down.
    pub(crate) fn shutting_down(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut shutdown = self.shutdown.clone();
        async move {
            let _ = shutdown.wait_for(|&stopping| stopping).await;
        }
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// Collects the workflows, schemas and configuration of a [`Server`].
///
/// ```no_run
/// use eventflow::prelude::*;
/// use eventflow_server::{Server, ServerConfig};
///
/// # async fn demo(greeter: Workflow, approvals: Workflow) -> Result<(), eventflow_server::ServerError> {
/// // Listening beyond loopback needs a token (or `insecure_no_auth`).
/// let config = ServerConfig::default()
///     .store_url("sqlite:runs.db")
///     .auth_token(std::env::var("EVENTFLOW_TOKEN").unwrap_or_default());
/// Server::builder(config)
///     .workflow(greeter)
///     .workflow(approvals)
///     .build()
///     .await?
///     .serve(([0, 0, 0, 0], 8080))
///     .await
/// # }
/// ```
pub struct ServerBuilder {
    config: ServerConfig,
    workflows: Vec<Workflow>,
    schemas: EventSchemas,
    error: Option<ServerError>,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .field(
                "workflows",
                &self
                    .workflows
                    .iter()
                    .map(Workflow::name)
                    .collect::<Vec<_>>(),
            )
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    fn fail(&mut self, error: ServerError) {
        self.error.get_or_insert(error);
    }

    /// Serves `workflow` under its name. Its start event, `StartEvent` (keyword arguments) or a
    /// typed one (`#[event(start)]`), is decoded from the JSON of run requests.
    pub fn workflow(mut self, workflow: Workflow) -> Self {
        if self
            .workflows
            .iter()
            .any(|served| served.name() == workflow.name())
        {
            self.fail(ServerError::DuplicateWorkflow {
                name: workflow.name().to_owned(),
            });
            return self;
        }
        self.workflows.push(workflow);
        self
    }

    /// Publishes a hand-written JSON Schema for the event type named `name`, in
    /// `/workflows/{name}/schema`, `/events` and `/representation`. It wins over the schema the
    /// type carries ([`eventflow::Event::schema`]: derive `JsonSchema` on the event, with
    /// `#[schemars(crate = "eventflow::schemars")]`, to have one).
    pub fn event_schema_json(mut self, name: &str, schema: Value) -> Self {
        self.schemas.insert(name, schema);
        self
    }

    /// Opens the store and starts the engine (which starts claiming runs of the workflows).
    pub async fn build(self) -> Result<Server, ServerError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let config = self.config;
        if let Some(bad) = config
            .allowed_hosts
            .iter()
            .find(|name| crate::routes::split_host(name).is_none())
        {
            return Err(ServerError::Config(format!(
                "allowed host `{bad}` is not a host name (`name` or `name:port`)"
            )));
        }
        let store = match &config.store {
            StoreConfig::Url(url) => eventflow::store::open(url).await?,
            StoreConfig::Instance(store) => store.clone(),
        };
        let metrics = Arc::new(Metrics::default());
        let mut builder = Engine::builder(store.clone());
        for workflow in &self.workflows {
            builder = builder.workflow(workflow.clone());
        }
        if let Some(id) = &config.worker_id {
            builder = builder.worker_id(id.clone());
        }
        if let Some(every) = config.poll_interval {
            builder = builder.poll_interval(every);
        }
        if let Some(ttl) = config.lease_ttl {
            builder = builder.lease_ttl(ttl);
        }
        let hook_metrics = metrics.clone();
        builder = builder.on_commit(move |commit| {
            for step in &commit.completed {
                hook_metrics.step_attempt(&commit.workflow, &step.step, step.duration, step.failed);
            }
            if let Some(status) = commit.finished {
                hook_metrics.run_finished(&commit.workflow, status.as_str());
            }
        });
        let engine = builder.start().await?;
        let by_name = self
            .workflows
            .iter()
            .enumerate()
            .map(|(index, workflow)| (workflow.name().to_owned(), index))
            .collect();
        let (shutdown_tx, shutdown) = watch::channel(false);
        tracing::info!(
            worker_id = engine.worker_id(),
            workflows = ?self.workflows.iter().map(Workflow::name).collect::<Vec<_>>(),
            "eventflow server ready"
        );
        Ok(Server {
            state: Arc::new(AppState {
                engine,
                workflows: self.workflows,
                by_name,
                schemas: self.schemas,
                config,
                metrics,
                shutdown,
            }),
            shutdown_tx,
        })
    }
}

/// An eventflow server: workflows served over the llama-agents-server HTTP API, runs kept
/// durable in a store. Build one with [`Server::builder`].
pub struct Server {
    state: Arc<AppState>,
    shutdown_tx: watch::Sender<bool>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("engine", &self.state.engine)
            .field("config", &self.state.config)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A builder with `config`: add workflows, then [`ServerBuilder::build`].
    pub fn builder(config: ServerConfig) -> ServerBuilder {
        ServerBuilder {
            config,
            workflows: Vec::new(),
            schemas: EventSchemas::default(),
            error: None,
        }
    }

    /// The durable engine running the server's workflows.
    pub fn engine(&self) -> &Engine {
        &self.state.engine
    }

    /// The server's routes with every layer (auth, limits, CORS, tracing, metrics), to serve
    /// yourself or to nest in a larger axum application. Shutting down is then yours: call
    /// [`Server::shutdown`] after serving stops.
    ///
    /// The listening address is unknown here, so the DNS-rebinding guard (see
    /// [`ServerConfig::allowed_hosts`]) is on whenever there is no token and
    /// [`ServerConfig::insecure_no_auth`] is off.
    pub fn router(&self) -> axum::Router {
        crate::routes::router(self.state.clone(), None)
    }

    /// Serves on `addr` until SIGINT or SIGTERM, then shuts down gracefully.
    ///
    /// Refuses (with [`ServerError::Config`]) a non-loopback address without an auth token,
    /// unless [`ServerConfig::insecure_no_auth`] allows it.
    pub async fn serve(self, addr: impl Into<SocketAddr>) -> Result<(), ServerError> {
        let addr = addr.into();
        self.state.config.check_exposure(addr)?;
        let listener = TcpListener::bind(addr).await?;
        self.serve_with_shutdown(listener, shutdown_signal()).await
    }

    /// Serves on the configured address ([`ServerConfig::addr`]) until SIGINT or SIGTERM.
    pub async fn serve_configured(self) -> Result<(), ServerError> {
        let addr = self.state.config.addr;
        self.serve(addr).await
    }

    /// Serves on `listener` until `signal` resolves, then shuts down gracefully: stops
    /// accepting, ends event streams, answers waiting `run` requests 503, lets in-flight
    /// requests finish, and hands the runs this process drives back to the store.
    pub async fn serve_with_shutdown(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let addr = listener.local_addr()?;
        self.state.config.check_exposure(addr)?;
        tracing::info!(%addr, "listening");
        let router = crate::routes::router(self.state.clone(), Some(addr));
        let trigger = self.shutdown_tx.clone();
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                signal.await;
                tracing::info!("shutting down");
                let _ = trigger.send(true);
            })
            .await;
        self.shutdown().await;
        served?;
        Ok(())
    }

    /// Binds `addr` and serves in the background; the returned handle knows the bound address
    /// (bind port 0 for any free port) and shuts the server down.
    /// Refuses an exposed address as [`Server::serve`] does.
    pub async fn bind(self, addr: impl Into<SocketAddr>) -> Result<RunningServer, ServerError> {
        let addr = addr.into();
        self.state.config.check_exposure(addr)?;
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.serve_with_shutdown(listener, async move {
            let _ = stopped.await;
        }));
        Ok(RunningServer {
            local_addr,
            stop: Some(stop),
            task,
        })
    }

    /// Ends streams and hands the runs this process drives back to the store
    /// ([`Engine::shutdown`]). Called by the `serve` methods when serving stops.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        self.state.engine.clone().shutdown().await;
        tracing::info!("engine stopped; runs handed back to the store");
    }
}

/// A server serving in the background; see [`Server::bind`].
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://<address>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// Shuts the server down gracefully and waits until it has stopped.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(error) => Err(ServerError::Io(std::io::Error::other(error))),
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = futures::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
