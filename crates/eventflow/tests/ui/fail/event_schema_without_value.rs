use eventflow::prelude::*;

#[derive(Event, Clone, Serialize, Deserialize)]
#[event(schema)]
struct Described {
    value: u32,
}

fn main() {}
