use eventflow::prelude::*;

struct W;

#[workflow]
impl W {
    #[step]
    async fn start(&self, ev: StartEvent) -> Result<String> {
        let text: String = ev.get("text")?;
        Ok(text)
    }
}

fn main() {}
