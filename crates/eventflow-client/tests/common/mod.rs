//! A real eventflow server on a loopback port (SQLite in a temporary directory), the test
//! workflows, and a TCP proxy that can cut or freeze its connections.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventflow::prelude::*;
use eventflow::store::{SqliteStore, Store};
use eventflow_client::Client;
use eventflow_server::{RunningServer, Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[path = "../../../eventflow-server/tests/common/workflows.rs"]
mod workflows;
pub(crate) use workflows::*;

/// Published by `ticker`, numbered from 1.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Tick {
    pub n: u32,
}

/// `ticker`'s internal loop event.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Next {
    pub n: u32,
}

/// What `ticker`'s `tick` step returns.
#[derive(EventUnion)]
pub(crate) enum TickOutcome {
    Next(Next),
    Done(StopEvent),
}

/// How many ticks `ticker` publishes before and after its question.
pub(crate) const TICKS: u32 = 5;

/// The custom stop event of `invoice`.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(stop)]
pub(crate) struct Invoice {
    pub total_cents: u64,
}

/// Stops with a custom stop event type.
pub(crate) fn invoice() -> Workflow {
    Workflow::builder("invoice")
        .add_step("bill", |_: StartEvent| async {
            Invoice { total_cents: 300 }
        })
        .build()
        .unwrap()
}

/// Publishes `Tick` 1..=TICKS at once, asks to go on, then publishes the next TICKS ticks one
/// step (one commit) at a time, `pause_ms` apart, and stops with the answer.
pub(crate) fn ticker() -> Workflow {
    Workflow::builder("ticker")
        .add_step("start", |ctx: Context, _: StartEvent| async move {
            for n in 1..=TICKS {
                ctx.write_event_to_stream(Tick { n });
            }
            InputRequiredEvent::new("More?")
        })
        .add_step("resume", |_: HumanResponseEvent| async move {
            Next { n: TICKS + 1 }
        })
        .add_step("tick", |ctx: Context, ev: Next| async move {
            tokio::time::sleep(Duration::from_millis(40)).await;
            ctx.write_event_to_stream(Tick { n: ev.n });
            if ev.n == 2 * TICKS {
                TickOutcome::from(StopEvent::new("done"))
            } else {
                TickOutcome::from(Next { n: ev.n + 1 })
            }
        })
        .build()
        .unwrap()
}

pub(crate) struct TestServer {
    pub running: Option<RunningServer>,
    pub url: String,
    pub dir: Arc<tempfile::TempDir>,
}

/// Fast polling, short heartbeats.
pub(crate) fn test_config() -> ServerConfig {
    ServerConfig::default()
        .poll_interval(Duration::from_millis(50))
        .sse_heartbeat(Duration::from_millis(100))
        .cancel_wait(Duration::from_secs(5))
}

/// A server with every test workflow, over a fresh SQLite file.
pub(crate) async fn start(config: ServerConfig) -> TestServer {
    start_in(Arc::new(tempfile::tempdir().unwrap()), config).await
}

/// A server over the SQLite file in `dir`.
pub(crate) async fn start_in(dir: Arc<tempfile::TempDir>, config: ServerConfig) -> TestServer {
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("runs.db")).await.unwrap());
    let server = Server::builder(config.store(store))
        .workflow(greet())
        .workflow(fail())
        .workflow(ask())
        .workflow(orders())
        .workflow(approve())
        .workflow(ticker())
        .workflow(invoice())
        .workflow(pair())
        .build()
        .await
        .unwrap();
    let running = server.bind(([127, 0, 0, 1], 0)).await.unwrap();
    TestServer {
        url: running.url(),
        running: Some(running),
        dir,
    }
}

impl TestServer {
    pub(crate) fn client(&self) -> Client {
        Client::new(&self.url).unwrap()
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.running.as_ref().unwrap().local_addr()
    }

    pub(crate) async fn shutdown(&mut self) {
        if let Some(running) = self.running.take() {
            tokio::time::timeout(Duration::from_secs(10), running.shutdown())
                .await
                .expect("shutdown hung")
                .unwrap();
        }
    }
}

struct Connection {
    task: JoinHandle<()>,
    frozen: Arc<AtomicBool>,
}

/// A TCP proxy in front of a server: [`cut`](Proxy::cut) closes every open connection,
/// [`freeze`](Proxy::freeze) stops forwarding on them while keeping them open; new connections
/// work normally.
pub(crate) struct Proxy {
    addr: SocketAddr,
    upstream: Arc<Mutex<SocketAddr>>,
    connections: Arc<Mutex<Vec<Connection>>>,
    accepted: Arc<AtomicUsize>,
    acceptor: JoinHandle<()>,
}

impl Proxy {
    pub(crate) async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = Arc::new(Mutex::new(upstream));
        let connections: Arc<Mutex<Vec<Connection>>> = Arc::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let acceptor = tokio::spawn({
            let upstream = upstream.clone();
            let connections = connections.clone();
            let accepted = accepted.clone();
            async move {
                loop {
                    let Ok((inbound, _)) = listener.accept().await else {
                        return;
                    };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let target = *upstream.lock().unwrap();
                    let frozen = Arc::new(AtomicBool::new(false));
                    let task = tokio::spawn(relay(inbound, target, frozen.clone()));
                    let mut connections = connections.lock().unwrap();
                    connections.retain(|c| !c.task.is_finished());
                    connections.push(Connection { task, frozen });
                }
            }
        });
        Proxy {
            addr,
            upstream,
            connections,
            accepted,
            acceptor,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Closes every open connection.
    pub(crate) fn cut(&self) {
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.task.abort();
        }
    }

    /// Stops forwarding on every open connection, leaving them open.
    pub(crate) fn freeze(&self) {
        for connection in self.connections.lock().unwrap().iter() {
            connection.frozen.store(true, Ordering::SeqCst);
        }
    }

    /// Sends new connections to `upstream`.
    pub(crate) fn redirect(&self, upstream: SocketAddr) {
        *self.upstream.lock().unwrap() = upstream;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.cut();
    }
}

async fn relay(inbound: TcpStream, target: SocketAddr, frozen: Arc<AtomicBool>) {
    let Ok(outbound) = TcpStream::connect(target).await else {
        return; // Dropping `inbound` closes it: the client sees the server as down.
    };
    let (client_read, client_write) = inbound.into_split();
    let (server_read, server_write) = outbound.into_split();
    tokio::join!(
        pump(client_read, server_write, frozen.clone()),
        pump(server_read, client_write, frozen),
    );
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        if frozen.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
