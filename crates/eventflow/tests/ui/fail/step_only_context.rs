use eventflow::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    async fn start(&self, ctx: &Context) -> StopEvent {
        let _ = ctx;
        StopEvent::new(())
    }
}

fn main() {}
