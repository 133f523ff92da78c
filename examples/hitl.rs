//! Placeholder for the `hitl` example; being written.
fn main() {}
