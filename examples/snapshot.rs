//! Placeholder for the `snapshot` example; being written.
fn main() {}
