//! Placeholder for the `rate_limit` example; being written.
fn main() {}
