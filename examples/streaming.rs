//! Placeholder for the `streaming` example; being written.
fn main() {}
