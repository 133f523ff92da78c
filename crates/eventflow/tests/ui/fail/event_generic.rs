use eventflow::prelude::*;

#[derive(Event, Clone, Serialize, Deserialize)]
struct Wrapped<T> {
    value: T,
}

fn main() {}
