//! Placeholder for the `branching` example; being written.
fn main() {}
