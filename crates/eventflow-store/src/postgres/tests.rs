//! The Postgres store's own tests: what the conformance suite cannot see (wake-ups across
//! stores and lost connections, schemas, corrupt rows, notification payloads).

use serde_json::json;

use super::notify::foreign_run_id;
use super::*;

/// An event message, as any test sends.
fn mail() -> Mail {
    Mail::event(EventJson {
        name: "e".into(),
        value: json!({}),
    })
}

/// The database of the Postgres tests; they are `#[ignore]`d, so they run only when asked
/// for (`--ignored`), and then without a database they fail.
fn database_url() -> String {
    std::env::var("DATABASE_URL").expect("the Postgres tests need DATABASE_URL (see the README)")
}

/// A store in a fresh schema of the database of `DATABASE_URL`.
async fn fresh(name: &str) -> (PostgresStore, String, String) {
    let url = database_url();
    let schema = format!("ef_pg_{name}_{:08x}", fastrand::u32(..));
    let store = PostgresStore::connect_schema(&url, &schema).await.unwrap();
    (store, url, schema)
}

async fn drop_schema(url: &str, schema: &str) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&mut conn)
        .await
        .unwrap();
}

fn key() -> WorkflowKey {
    WorkflowKey {
        name: "flow".into(),
        fingerprint: "f1".into(),
    }
}

fn new_run(run_id: &str, owner: Option<&str>) -> NewRun {
    NewRun {
        run_id: run_id.into(),
        workflow: key(),
        idempotency_key: None,
        start: json!({"start": run_id}),
        owner: owner.map(Into::into),
    }
}

/// The backend pids of the store's pooled connections and of its schema's listeners.
async fn backends(store: &PostgresStore) -> Vec<i32> {
    let mut conns = Vec::new();
    while let Some(conn) = store.pool.try_acquire() {
        conns.push(conn);
    }
    let mut pids = Vec::new();
    for conn in &mut conns {
        pids.push(
            sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut **conn)
                .await
                .unwrap(),
        );
    }
    // The listeners of every store of the schema.
    let listeners: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE query = 'LISTEN \"' || $1 || '\"'",
    )
    .bind(&store.channel)
    .fetch_all(&mut *conns[0])
    .await
    .unwrap();
    assert!(!listeners.is_empty(), "no listener");
    pids.extend(listeners);
    pids
}

async fn next_wakeup(wakeups: &mut broadcast::Receiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(10), wakeups.recv())
        .await
        .expect("a wake-up within 10 s")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Postgres: DATABASE_URL, and --ignored (bash .ci/run runs them)"]
async fn wakeups_cross_stores_and_survive_lost_connections() {
    let (first, url, schema) = fresh("notify").await;
    let second = PostgresStore::connect_schema(&url, &schema).await.unwrap();
    let mut own = first.wakeups();
    let mut other = second.wakeups();
    first.create_run(new_run("r", Some("w"))).await.unwrap();
    // The writer signals itself at once, and its listener does not repeat it.
    assert_eq!(own.try_recv().unwrap(), "r");
    assert_eq!(next_wakeup(&mut other).await, "r");
    second.send("r", "m", mail()).await.unwrap();
    assert_eq!(next_wakeup(&mut own).await, "r");
    assert_eq!(other.try_recv().unwrap(), "r");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(own.try_recv().is_err() && other.try_recv().is_err());

    // Kill every connection of the second store, its listener's included: it recovers.
    let pids = backends(&second).await;
    let mut admin = PgConnection::connect(&url).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid")
        .bind(&pids)
        .execute(&mut admin)
        .await
        .unwrap();
    assert!(second.get_run("r").await.unwrap().is_some());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    loop {
        n += 1;
        first.send("r", &format!("again{n}"), mail()).await.unwrap();
        if let Ok(Ok(run_id)) = tokio::time::timeout(Duration::from_millis(500), other.recv()).await
        {
            assert_eq!(run_id, "r");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no wake-up after reconnecting"
        );
    }
    // Dropped stores stop listening.
    let channel = first.channel.clone();
    drop((first, second));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listening: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN \"' || $1 || '\"'",
        )
        .bind(&channel)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if listening == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop_schema(&url, &schema).await;
}

/// A value beyond one of the database's limits (here a unique key longer than a B-tree index
/// row may be) is refused for good: not transient, so neither a worker nor a client retries
/// it, and the store keeps working.
#[tokio::test]
#[ignore = "needs Postgres: DATABASE_URL, and --ignored (bash .ci/run runs them)"]
async fn a_limit_of_the_database_is_refused_not_transient() {
    let (store, url, schema) = fresh("refused").await;
    let huge = NewRun {
        // Random, so that Postgres cannot compress it below the limit.
        idempotency_key: Some((0..10_000).map(|_| fastrand::alphanumeric()).collect()),
        ..new_run("huge", None)
    };
    let refused = store.create_run(huge).await.unwrap_err();
    assert!(matches!(refused, StoreError::Refused(_)), "{refused:?}");
    assert!(!refused.is_transient());
    assert!(matches!(
        store.create_run(new_run("fine", None)).await.unwrap(),
        Created::New(None)
    ));
    drop_schema(&url, &schema).await;
}

/// Migrations that do not match this version's (a checksum changed, as when another version of
/// the migration ran) are refused for good: opening fails, and not as a transient error that
/// a supervisor would retry forever.
#[tokio::test]
#[ignore = "needs Postgres: DATABASE_URL, and --ignored (bash .ci/run runs them)"]
async fn mismatched_migrations_are_refused_not_transient() {
    let (store, url, schema) = fresh("migrations").await;
    sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00'::bytea")
        .execute(&store.pool)
        .await
        .unwrap();
    drop(store);
    let refused = PostgresStore::connect_schema(&url, &schema)
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(refused, StoreError::Refused(_)), "{refused:?}");
    assert!(!refused.is_transient());
    drop_schema(&url, &schema).await;
}

#[tokio::test]
#[ignore = "needs Postgres: DATABASE_URL, and --ignored (bash .ci/run runs them)"]
async fn bad_data_is_corrupt() {
    let (store, url, schema) = fresh("corrupt").await;
    let Created::New(Some(lease)) = store.create_run(new_run("r", Some("w"))).await.unwrap() else {
        panic!("not created");
    };
    sqlx::query("DELETE FROM journal WHERE run_id = 'r'")
        .execute(&store.pool)
        .await
        .unwrap();
    assert!(matches!(
        store.load(&lease).await,
        Err(StoreError::Corrupt(_))
    ));
    sqlx::query("ALTER TABLE runs DROP CONSTRAINT runs_status_check")
        .execute(&store.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE runs SET status = 'bogus'")
        .execute(&store.pool)
        .await
        .unwrap();
    assert!(matches!(
        store.get_run("r").await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.send("r", "m", mail()).await,
        Err(StoreError::Corrupt(_))
    ));
    drop(store);
    drop_schema(&url, &schema).await;
}

/// A TCP proxy to the database that can cut every connection and refuse new ones.
struct Proxy {
    url: String,
    down: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Proxy {
    async fn start(url: &str) -> Proxy {
        use sqlx::ConnectOptions;
        use tokio::net::{TcpListener, TcpStream};

        let options = PgConnectOptions::from_str(url).unwrap();
        let upstream = format!("{}:{}", options.get_host(), options.get_port());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut proxied = options.to_url_lossy();
        proxied.set_host(Some("127.0.0.1")).unwrap();
        proxied
            .set_port(Some(listener.local_addr().unwrap().port()))
            .unwrap();
        let (down, watch) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let mut watch = watch.clone();
                if *watch.borrow() {
                    continue;
                }
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watch.wait_for(|down| *down) => {}
                    }
                });
            }
        });
        Proxy {
            url: proxied.to_string(),
            down,
            task,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Postgres: DATABASE_URL, and --ignored (bash .ci/run runs them)"]
async fn recovers_from_a_lost_database() {
    let (direct, url, schema) = fresh("outage").await;
    let proxy = Proxy::start(&url).await;
    let store = PostgresStore::connect_schema(&proxy.url, &schema)
        .await
        .unwrap();
    let mut wakeups = store.wakeups();
    store.create_run(new_run("r", None)).await.unwrap();
    assert_eq!(wakeups.recv().await.unwrap(), "r");

    proxy.down.send_replace(true);
    let failed = store.get_run("r").await.unwrap_err();
    assert!(failed.is_transient(), "{failed:?}");
    let failed = store.send("r", "m0", mail()).await.unwrap_err();
    assert!(failed.is_transient(), "{failed:?}");

    proxy.down.send_replace(false);
    assert!(store.get_run("r").await.unwrap().is_some());
    assert_eq!(store.send("r", "m1", mail()).await.unwrap(), Sent::Accepted);
    assert_eq!(wakeups.recv().await.unwrap(), "r");
    // The listener is back too: another store's notifications arrive again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for n in 0.. {
        direct
            .send("r", &format!("again{n}"), mail())
            .await
            .unwrap();
        if let Ok(Ok(run_id)) =
            tokio::time::timeout(Duration::from_millis(500), wakeups.recv()).await
        {
            assert_eq!(run_id, "r");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listener is not back"
        );
    }
    drop((store, direct));
    proxy.task.abort();
    drop_schema(&url, &schema).await;
}

#[tokio::test]
#[ignore = "needs Postgres: DATABASE_URL, and --ignored (bash .ci/run runs them)"]
async fn connect_uses_the_default_schema() {
    let url = database_url();
    // The URL picks the default schema, so that the test leaves `public` alone.
    let schema = format!("ef_pg_default_{:08x}", fastrand::u32(..));
    let mut admin = PgConnection::connect(&url).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(&mut admin)
        .await
        .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{separator}options=-c%20search_path%3D{schema}");
    let store = PostgresStore::connect(&scoped).await.unwrap();
    assert_eq!(store.channel, schema_channel(&schema));
    store.create_run(new_run("r", None)).await.unwrap();
    let runs: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{schema}\".runs"))
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(runs, 1);
    // Connecting again finds the migrations applied.
    drop(store);
    let store = PostgresStore::connect(&scoped).await.unwrap();
    assert!(store.get_run("r").await.unwrap().is_some());
    drop(store);
    drop_schema(&url, &schema).await;
}

#[tokio::test]
async fn bad_schema_names_are_refused() {
    for schema in ["", "a-b", "a\"b", "x y", &"s".repeat(64)] {
        let refused = PostgresStore::connect_schema("postgres://nowhere", schema).await;
        assert!(refused.is_err(), "{schema:?}");
    }
    assert!(schema_channel(&"s".repeat(63)).len() <= MAX_IDENTIFIER);
    assert_eq!(schema_channel("abc"), "eventflow_wakeup_abc");
    // What earlier versions named the channel of a long schema: stores of different versions
    // sharing a schema must still hear each other.
    assert_eq!(
        schema_channel(&"s".repeat(63)),
        "eventflow_wakeup_64515d96d7bbe874"
    );
}

#[test]
fn payloads() {
    let me = "0123456789abcdef0123456789abcdef";
    let other = "fedcba9876543210fedcba9876543210";
    assert_eq!(foreign_run_id(&format!("{me}:r"), me), None);
    assert_eq!(foreign_run_id(&format!("{other}:a:b"), me), Some("a:b"));
    assert_eq!(foreign_run_id("plain:run", me), Some("plain:run"));
}
