use eventflow::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    async fn start(&self, ctx: &mut Context, ev: StartEvent) -> StopEvent {
        let _ = ctx;
        StopEvent::new(ev.kwargs().len())
    }
}

fn main() {}
