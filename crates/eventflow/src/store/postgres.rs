//! Placeholder in this checkout; implemented in the store-backends worktree.

use super::StoreError;

/// Placeholder.
pub struct PostgresStore;

impl PostgresStore {
    /// Placeholder.
    pub async fn connect(_url: &str) -> Result<Self, StoreError> {
        Err(StoreError::Unsupported("placeholder".into()))
    }
}
impl super::Store for PostgresStore {
    fn create_run(&self, _: super::NewRun) -> super::StoreFuture<'_, super::Created> {
        unimplemented!()
    }
    fn get_run<'a>(&'a self, _: &'a str) -> super::StoreFuture<'a, Option<super::RunRecord>> {
        unimplemented!()
    }
    fn list_runs<'a>(
        &'a self,
        _: &'a super::RunFilter,
    ) -> super::StoreFuture<'a, Vec<super::RunRecord>> {
        unimplemented!()
    }
    fn heartbeat<'a>(
        &'a self,
        _: &'a str,
        _: &'a [super::WorkflowKey],
    ) -> super::StoreFuture<'a, ()> {
        unimplemented!()
    }
    fn claim<'a>(
        &'a self,
        _: &'a str,
        _: &'a super::ClaimOptions,
    ) -> super::StoreFuture<'a, Vec<super::Claim>> {
        unimplemented!()
    }
    fn claim_run<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a super::ClaimOptions,
    ) -> super::StoreFuture<'a, Option<super::Claim>> {
        unimplemented!()
    }
    fn load<'a>(&'a self, _: &'a super::Lease) -> super::StoreFuture<'a, super::LoadedRun> {
        unimplemented!()
    }
    fn inbox<'a>(
        &'a self,
        _: &'a super::Lease,
    ) -> super::StoreFuture<'a, Vec<super::InboxMessage>> {
        unimplemented!()
    }
    fn commit<'a>(&'a self, _: &'a super::Lease, _: super::Commit) -> super::StoreFuture<'a, ()> {
        unimplemented!()
    }
    fn send<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: serde_json::Value,
    ) -> super::StoreFuture<'a, super::Sent> {
        unimplemented!()
    }
    fn events_after<'a>(
        &'a self,
        _: &'a str,
        _: u64,
        _: usize,
    ) -> super::StoreFuture<'a, Vec<(u64, serde_json::Value)>> {
        unimplemented!()
    }
    fn unpark<'a>(&'a self, _: &'a str) -> super::StoreFuture<'a, bool> {
        unimplemented!()
    }
    fn purge<'a>(&'a self, _: &'a str) -> super::StoreFuture<'a, bool> {
        unimplemented!()
    }
    fn wakeups(&self) -> tokio::sync::broadcast::Receiver<String> {
        unimplemented!()
    }
}
impl PostgresStore {
    /// Placeholder.
    pub async fn connect_schema(_url: &str, _schema: &str) -> Result<Self, StoreError> {
        Err(StoreError::Unsupported("placeholder".into()))
    }
}
