use eventflow::prelude::*;

#[derive(Event, Clone, Deserialize)]
struct NoSerialize {
    query: String,
}

fn main() {}
