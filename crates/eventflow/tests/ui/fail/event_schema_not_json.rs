use eventflow::prelude::*;

#[derive(Event, Clone, Serialize, Deserialize)]
#[event(schema = "object")]
struct Described {
    value: u32,
}

fn main() {}
