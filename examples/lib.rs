//! Helpers shared by the examples: reading `--flag value` arguments.

/// The value following `--name` on the command line, if given.
pub fn arg(args: &[String], name: &str) -> Option<String> {
    let flag = format!("--{name}");
    args.iter()
        .position(|a| *a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}
