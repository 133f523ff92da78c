use eventflow::prelude::*;

#[derive(Event, Clone, Serialize, Deserialize)]
#[event(name = "")]
struct Unnamed {
    value: u32,
}

fn main() {}
