use eventflow::prelude::*;

#[derive(Event, Serialize, Deserialize)]
struct NoClone {
    query: String,
}

fn main() {}
