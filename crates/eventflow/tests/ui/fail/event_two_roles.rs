use eventflow::prelude::*;

#[derive(Event, Clone, Serialize, Deserialize)]
#[event(start, stop)]
struct Both {
    query: String,
}

fn main() {}
