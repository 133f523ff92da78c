//! Compile-time checks: what the compiler can catch about events, unions and steps is caught,
//! with a message that says what is wrong and what to write instead.
//!
//! `tests/ui/fail/*.rs` must each fail to compile with the error in the `.stderr` next to it;
//! `tests/ui/pass/*.rs` must compile (and run). Regenerate the expected output with
//! `TRYBUILD=overwrite cargo test -p eventflow --test compile_fail`, then read every changed
//! `.stderr` as a user would.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}
