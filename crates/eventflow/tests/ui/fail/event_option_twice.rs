use eventflow::prelude::*;

#[derive(Event, Clone, Serialize, Deserialize)]
#[event(schema = json!({"type": "object"}), schema = json!({"type": "array"}))]
struct Twice {
    value: u32,
}

#[derive(Event, Clone, Serialize, Deserialize)]
#[event(name = "app.Named")]
#[event(name = "app.Renamed")]
struct Named {
    value: u32,
}

fn main() {}
