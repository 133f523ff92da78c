//! Placeholder for the `refinement` example; being written.
fn main() {}
