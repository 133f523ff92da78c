use eventflow::prelude::*;

#[derive(Event, Clone, Serialize, Deserialize)]
#[event(begin)]
struct Begin {
    query: String,
}

fn main() {}
