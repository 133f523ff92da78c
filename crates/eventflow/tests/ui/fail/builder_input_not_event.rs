use eventflow::prelude::*;

fn main() {
    let _step = Step::new("x", |ev: String| async move { ev });
}
