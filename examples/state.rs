//! Placeholder for the `state` example; being written.
fn main() {}
