use eventflow::prelude::*;

#[derive(EventUnion)]
enum Input {
    First(StartEvent),
    Second(StartEvent),
}

fn main() {}
