use eventflow::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    async fn start(&self, ev: impl Event) -> StopEvent {
        let _ = ev;
        StopEvent::new(())
    }
}

fn main() {}
