use eventflow::prelude::*;

#[derive(EventUnion)]
enum Input {
    Start(StartEvent),
    Stop { event: StopEvent },
}

fn main() {}
