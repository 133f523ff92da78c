use eventflow::prelude::*;

fn main() {
    let _step = Step::new("x", |ev: StartEvent| async move { ev.kwargs().len() });
}
