//! The conformance suite (`eventflow_store::testkit`) against every backend of this crate:
//! `memory::…`, `sqlite::…` and `postgres::…`, one test per check.
//!
//! SQLite checks use a fresh file in a temporary directory; Postgres checks a fresh schema of the
//! database named by `DATABASE_URL`; they are ignored unless asked for with `--ignored` (as
//! `bash .ci/run` does), and fail without `DATABASE_URL`.

use std::sync::Arc;
use std::time::Duration;

use eventflow_store::testkit::{BoxError, Fixture};
use eventflow_store::{MemoryStore, PostgresStore, SqliteStore, Store, StoreFuture};
use futures::future::BoxFuture;

/// The memory store: one instance sees all its data, so opening it again is itself.
struct Memory {
    store: Arc<dyn Store>,
}

impl Fixture for Memory {
    fn fresh() -> BoxFuture<'static, Result<Self, BoxError>> {
        Box::pin(async {
            Ok(Memory {
                store: Arc::new(MemoryStore::new()),
            })
        })
    }

    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    fn open_again(&self) -> StoreFuture<'_, Arc<dyn Store>> {
        Box::pin(async { Ok(self.store.clone()) })
    }

    fn open_second_location(&self) -> StoreFuture<'_, Arc<dyn Store>> {
        Box::pin(async { Ok(self.store.clone()) })
    }

    fn wakeups_cross_instances(&self) -> bool {
        true
    }
}

/// A SQLite file in a temporary directory, removed with the fixture.
struct Sqlite {
    store: Arc<dyn Store>,
    dir: tempfile::TempDir,
}

impl Fixture for Sqlite {
    fn fresh() -> BoxFuture<'static, Result<Self, BoxError>> {
        Box::pin(async {
            let dir = tempfile::tempdir()?;
            let store = SqliteStore::open(dir.path().join("store.db")).await?;
            Ok(Sqlite {
                store: Arc::new(store),
                dir,
            })
        })
    }

    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    fn open_again(&self) -> StoreFuture<'_, Arc<dyn Store>> {
        Box::pin(async {
            let store = SqliteStore::open(self.dir.path().join("store.db")).await?;
            Ok(Arc::new(store) as Arc<dyn Store>)
        })
    }

    fn open_second_location(&self) -> StoreFuture<'_, Arc<dyn Store>> {
        Box::pin(async {
            let store = SqliteStore::open(self.dir.path().join("second.db")).await?;
            Ok(Arc::new(store) as Arc<dyn Store>)
        })
    }

    /// SQLite's wake-ups stay in their process.
    fn wakeups_cross_instances(&self) -> bool {
        false
    }
}

/// A fresh schema of the database of `DATABASE_URL` (and a second one next to it), dropped
/// afterwards.
struct Postgres {
    store: Arc<dyn Store>,
    url: String,
    schema: String,
}

impl Fixture for Postgres {
    fn fresh() -> BoxFuture<'static, Result<Self, BoxError>> {
        Box::pin(async {
            let url = std::env::var("DATABASE_URL")
                .map_err(|_| "the Postgres tests need DATABASE_URL (see the README)")?;
            let schema = format!("ef_conf_{}", uuid::Uuid::new_v4().simple());
            let store = PostgresStore::connect_schema(&url, &schema).await?;
            Ok(Postgres {
                store: Arc::new(store),
                url,
                schema,
            })
        })
    }

    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    fn open_again(&self) -> StoreFuture<'_, Arc<dyn Store>> {
        Box::pin(async {
            let store = PostgresStore::connect_schema(&self.url, &self.schema).await?;
            Ok(Arc::new(store) as Arc<dyn Store>)
        })
    }

    fn open_second_location(&self) -> StoreFuture<'_, Arc<dyn Store>> {
        Box::pin(async {
            let second = format!("{}_2", self.schema);
            let store = PostgresStore::connect_schema(&self.url, &second).await?;
            Ok(Arc::new(store) as Arc<dyn Store>)
        })
    }

    /// Through `LISTEN/NOTIFY`.
    fn wakeups_cross_instances(&self) -> bool {
        true
    }

    /// Drops both schemas (best effort: a leftover schema only takes space).
    fn clean_up(self) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let Postgres { store, url, schema } = self;
            drop(store);
            let drop_schemas = async {
                use sqlx::Connection as _;
                let mut connection = sqlx::PgConnection::connect(&url).await?;
                for schema in [schema.clone(), format!("{schema}_2")] {
                    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                        .execute(&mut connection)
                        .await?;
                }
                connection.close().await
            };
            if let Ok(Err(error)) =
                tokio::time::timeout(Duration::from_secs(10), drop_schemas).await
            {
                eprintln!("could not drop schema {schema}: {error}");
            }
        })
    }
}

mod memory {
    eventflow_store::conformance_tests!(super::Memory);
}

mod sqlite {
    eventflow_store::conformance_tests!(super::Sqlite);
}

mod postgres {
    eventflow_store::conformance_tests!(
        super::Postgres,
        #[ignore = "needs Postgres: DATABASE_URL, and --ignored (bash .ci/run runs them)"]
    );
}
