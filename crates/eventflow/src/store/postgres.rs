//! The Postgres store (placeholder until implemented).
