//! Placeholder for the `parallel_search` example; being written.
fn main() {}
