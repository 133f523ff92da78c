use eventflow::prelude::*;

trait Greet {
    fn greet(&self) -> String;
}

struct W;

#[workflow]
impl Greet for W {
    fn greet(&self) -> String {
        String::from("hello")
    }
}

fn main() {}
