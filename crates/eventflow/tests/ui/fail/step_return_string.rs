use eventflow::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    async fn start(&self, ev: StartEvent) -> String {
        format!("{:?}", ev.kwargs())
    }
}

fn main() {}
