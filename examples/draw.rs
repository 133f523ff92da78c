//! Placeholder for the `draw` example; being written.
fn main() {}
