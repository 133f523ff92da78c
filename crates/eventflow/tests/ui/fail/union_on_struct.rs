use eventflow::prelude::*;

#[derive(EventUnion)]
struct Input {
    start: StartEvent,
}

fn main() {}
