// Every supported shape of a `#[step]` signature, chained into one valid workflow that is then
// run, so the macro is checked to pass the context and the event in the right places.
use eventflow::prelude::*;

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct A(u32);
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct B(u32);
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct C(u32);
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct D(u32);
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct E(u32);
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct F(u32);
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct G(u32);
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct H(u32);
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct I(u32);
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct J(u32);

#[derive(EventUnion)]
enum DOrE {
    D(D),
    E(E),
}

#[derive(EventUnion)]
enum Tail {
    J(J),
    Stop(eventflow::StopEvent),
}

struct Shapes;

#[workflow]
impl Shapes {
    // The event only.
    #[step]
    async fn event_only(&self, ev: StartEvent) -> A {
        A(ev.get("n").unwrap_or(1))
    }

    // `&Context`, then the event; `Option<E>`.
    #[step]
    async fn context_ref(&self, ctx: &Context, ev: A) -> Option<B> {
        ctx.set("seen", ev.0).unwrap();
        Some(B(ev.0))
    }

    // `Context` by value; `Vec<E>`.
    #[step]
    async fn context_owned(&self, ctx: Context, ev: B) -> Vec<C> {
        let _ = ctx.run_id();
        vec![C(ev.0)]
    }

    // The event, then the context (a fully qualified `Context`); a union of events as output.
    #[step]
    async fn context_last(&self, mut ev: C, _ctx: &eventflow::Context) -> DOrE {
        ev.0 += 1;
        if ev.0 % 2 == 0 {
            D(ev.0).into()
        } else {
            E(ev.0).into()
        }
    }

    // A union of events as input; `Result<_, anyhow::Error>`.
    #[step]
    async fn union_input(&self, ev: DOrE) -> Result<F, anyhow::Error> {
        let n = match ev {
            DOrE::D(d) => d.0,
            DOrE::E(e) => e.0,
        };
        anyhow::ensure!(n > 0, "n must be positive");
        Ok(F(n))
    }

    // `Result<_, std::io::Error>`; a typed receiver, a lifetime and a pattern.
    #[step]
    async fn io_result<'a>(self: &'a Self, F(n): F) -> std::io::Result<G> {
        let _ = self;
        Ok(G(n))
    }

    // `eventflow::Result<_>` (the prelude's `Result`, errors boxed).
    #[step]
    async fn boxed_result(&self, ev: G) -> eventflow::Result<H> {
        let n: u32 = ev.0.to_string().parse()?;
        Ok(H(n))
    }

    // No return type: emits nothing itself, sends `I` through the context.
    #[step(emits(I))]
    async fn sends(&self, ctx: &Context, ev: H) {
        ctx.send_event(I(ev.0)).unwrap();
    }

    // `-> ()` spelled out.
    #[step(emits(J))]
    async fn unit(&self, ctx: &Context, ev: I) -> () {
        ctx.send_event(J(ev.0)).unwrap();
    }

    // `Result` of a union; a wildcard name for an unused context.
    #[step]
    async fn finish(&self, _: &Context, ev: J) -> Result<Tail> {
        Ok(if ev.0 > 100 {
            J(ev.0 - 1).into()
        } else {
            StopEvent::new(ev.0).into()
        })
    }

    // Methods without `#[step]` are left alone.
    #[allow(dead_code)]
    fn helper(&self) -> u32 {
        7
    }
}

fn main() {
    let workflow = Shapes.into_workflow().unwrap();
    let names: Vec<&str> = workflow.steps().iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "event_only",
            "context_ref",
            "context_owned",
            "context_last",
            "union_input",
            "io_result",
            "boxed_result",
            "sends",
            "unit",
            "finish",
        ]
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let output = runtime
        .block_on(async { workflow.run(json!({ "n": 3 })).await })
        .unwrap();
    assert_eq!(output.result::<u32>().unwrap(), 4);
}
