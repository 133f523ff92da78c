// A generic workflow type: the impl's parameters and bounds carry over.
use std::fmt::Display;

use eventflow::prelude::*;

struct Greeter<T> {
    greeting: T,
}

#[workflow]
impl<T: Display + Send + Sync + 'static> Greeter<T> {
    #[step]
    async fn greet(&self, ev: StartEvent) -> Result<StopEvent> {
        let name: String = ev.get("name")?;
        Ok(StopEvent::new(format!("{}, {name}!", self.greeting)))
    }
}

struct Wrapper<T>(T);

// Bounds in a `where` clause, and a lifetime-free type with a `Default` bound.
#[workflow(name = "wrapper")]
impl<T> Wrapper<T>
where
    T: Default + Send + Sync + 'static,
{
    #[step]
    async fn run(&self, _ev: StartEvent) -> StopEvent {
        let _ = &self.0;
        StopEvent::new(())
    }
}

fn main() {
    let workflow = Greeter { greeting: "Hello" }.into_workflow().unwrap();
    assert_eq!(workflow.name(), "Greeter");
    let workflow = Greeter {
        greeting: String::from("Hi"),
    }
    .into_workflow()
    .unwrap();
    assert_eq!(workflow.steps()[0].name(), "greet");
    let workflow = Wrapper(0_u8).into_workflow().unwrap();
    assert_eq!(workflow.name(), "wrapper");
}
