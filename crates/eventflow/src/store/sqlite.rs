//! The SQLite store (placeholder until implemented).
