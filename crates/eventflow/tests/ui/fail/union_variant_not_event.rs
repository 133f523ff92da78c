use eventflow::prelude::*;

#[derive(EventUnion)]
enum Input {
    Start(StartEvent),
    Text(String),
}

fn main() {}
