use eventflow::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    async fn start(&self, ev: String) -> StopEvent {
        StopEvent::new(ev)
    }
}

fn main() {}
