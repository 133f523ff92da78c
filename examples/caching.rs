//! Placeholder for the `caching` example; being written.
fn main() {}
