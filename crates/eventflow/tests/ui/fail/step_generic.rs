use eventflow::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    async fn start<E: Event>(&self, ev: E) -> StopEvent {
        let _ = ev;
        StopEvent::new(())
    }
}

fn main() {}
