//! Drawing: the graph read from step signatures, and its Mermaid, DOT and HTML renderings,
//! with and without the path of a run.

use std::collections::BTreeSet;

use eventflow::graph::{NodeId, WorkflowGraph};
use eventflow::prelude::*;
use eventflow::{EventRole, RunPath};

// ---- A workflow with every shape of step signature -------------------------------------------

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Task {
    n: u32,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Done {
    n: u32,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Gathered {
    total: u32,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Small {
    total: u32,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Large {
    total: u32,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Draft {
    total: u32,
    round: u32,
}

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Refine {
    total: u32,
    round: u32,
}

/// Progress for whoever watches the run: sent with the context, accepted by no step.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(outbound)]
struct Progress {
    round: u32,
}

/// A branch: `size` emits one or the other.
#[derive(EventUnion)]
enum Size {
    Small(Small),
    Large(Large),
}

/// A loop's entry: `polish` starts from either branch, or from `Refine` going round again.
#[derive(EventUnion)]
enum PolishInput {
    Small(Small),
    Large(Large),
    Refine(Refine),
}

#[derive(EventUnion)]
enum Verdict {
    Refine(Refine),
    Stop(StopEvent),
}

/// How many times `check` sends a draft back before accepting it.
const ROUNDS: u32 = 3;

fn shapes() -> Workflow {
    Workflow::builder("shapes")
        // Vec<E>: a fan-out.
        .add_step("split", |ev: StartEvent| async move {
            let n: u32 = ev.get("n")?;
            Ok::<_, EventFieldError>((0..n).map(|n| Task { n }).collect::<Vec<_>>())
        })
        .add_step("work", |ev: Task| async move { Done { n: ev.n * 10 } })
        // Option<E>: nothing until every task is in.
        .add_step("gather", |ctx: Context, ev: Done| async move {
            ctx.collect_events(ev, 3).map(|all| Gathered {
                total: all.iter().map(|d| d.n).sum(),
            })
        })
        // A union output: the branch.
        .add_step("size", |ev: Gathered| async move {
            if ev.total < 100 {
                Size::from(Small { total: ev.total })
            } else {
                Size::from(Large { total: ev.total })
            }
        })
        // A union input that closes the loop.
        .add_step("polish", |ev: PolishInput| async move {
            match ev {
                PolishInput::Small(Small { total }) | PolishInput::Large(Large { total }) => {
                    Draft { total, round: 0 }
                }
                PolishInput::Refine(r) => Draft {
                    total: r.total,
                    round: r.round + 1,
                },
            }
        })
        // An event sent with the context, declared with `emits`.
        .step(
            Step::new("check", |ctx: Context, ev: Draft| async move {
                ctx.send_event(Progress { round: ev.round })?;
                Ok::<_, BoxError>(if ev.round < ROUNDS {
                    Verdict::from(Refine {
                        total: ev.total,
                        round: ev.round,
                    })
                } else {
                    Verdict::from(StopEvent::new(ev.total))
                })
            })
            .emits::<Progress>(),
        )
        .build()
        .unwrap()
}

fn step(name: &str) -> NodeId {
    NodeId::Step(name.into())
}

fn event(name: &str) -> NodeId {
    NodeId::Event(name.into())
}

fn edge_set(graph: &WorkflowGraph) -> BTreeSet<(NodeId, NodeId)> {
    graph
        .edges
        .iter()
        .map(|e| (e.from.clone(), e.to.clone()))
        .collect()
}

#[test]
fn graph_matches_the_step_signatures() {
    let graph = shapes().graph();
    assert_eq!(graph.name, "shapes");
    let ids: Vec<NodeId> = graph.nodes.iter().map(|n| n.id.clone()).collect();
    let steps = ["split", "work", "gather", "size", "polish", "check"];
    let mut expected: Vec<NodeId> = steps.iter().map(|s| step(s)).collect();
    // Events in order of first appearance in the signatures.
    for name in [
        "StartEvent",
        "Task",
        "Done",
        "Gathered",
        "Small",
        "Large",
        "Refine",
        "Draft",
        "StopEvent",
        "Progress",
    ] {
        expected.push(event(name));
    }
    assert_eq!(ids, expected);

    let expected_edges: BTreeSet<(NodeId, NodeId)> = [
        (event("StartEvent"), step("split")),
        (step("split"), event("Task")),
        (event("Task"), step("work")),
        (step("work"), event("Done")),
        (event("Done"), step("gather")),
        (step("gather"), event("Gathered")),
        (event("Gathered"), step("size")),
        (step("size"), event("Small")),
        (step("size"), event("Large")),
        (event("Small"), step("polish")),
        (event("Large"), step("polish")),
        (event("Refine"), step("polish")),
        (step("polish"), event("Draft")),
        (event("Draft"), step("check")),
        (step("check"), event("Refine")),
        (step("check"), event("StopEvent")),
        (step("check"), event("Progress")),
    ]
    .into_iter()
    .collect();
    assert_eq!(edge_set(&graph), expected_edges);
    assert_eq!(
        graph.edges.len(),
        expected_edges.len(),
        "no duplicate edges"
    );
    assert!(graph.edges.iter().all(|e| e.count.is_none()));
    assert_eq!(
        graph.node(&step("work")).unwrap().num_workers,
        Some(eventflow::DEFAULT_NUM_WORKERS)
    );
    assert_eq!(
        graph.node(&event("StartEvent")).unwrap().role,
        Some(EventRole::Start)
    );
}

// ---- The same graph from #[workflow] ---------------------------------------------------------

struct Loop;

#[workflow(name = "loop")]
impl Loop {
    #[step]
    async fn polish(&self, ev: PolishInput) -> Draft {
        match ev {
            PolishInput::Small(Small { total }) | PolishInput::Large(Large { total }) => {
                Draft { total, round: 0 }
            }
            PolishInput::Refine(r) => Draft {
                total: r.total,
                round: r.round + 1,
            },
        }
    }

    #[step]
    async fn start(&self, ev: StartEvent) -> Result<Size> {
        let total: u32 = ev.get("total")?;
        Ok(if total < 100 {
            Small { total }.into()
        } else {
            Large { total }.into()
        })
    }

    #[step(num_workers = 1, emits(Progress))]
    async fn check(&self, ctx: &Context, ev: Draft) -> Result<Verdict> {
        ctx.send_event(Progress { round: ev.round })?;
        Ok(if ev.round < ROUNDS {
            Refine {
                total: ev.total,
                round: ev.round,
            }
            .into()
        } else {
            StopEvent::new(ev.total).into()
        })
    }
}

#[test]
fn workflow_macro_reads_the_same_signatures() {
    let graph = Loop.into_workflow().unwrap().graph();
    assert_eq!(graph.name, "loop");
    let edges = edge_set(&graph);
    for expected in [
        (event("Refine"), step("polish")),
        (event("Small"), step("polish")),
        (step("start"), event("Large")),
        (step("check"), event("Refine")),
        (step("check"), event("Progress")),
    ] {
        assert!(edges.contains(&expected), "{expected:?} missing: {edges:?}");
    }
    assert_eq!(edges.len(), 11);
    assert_eq!(graph.node(&step("check")).unwrap().num_workers, Some(1));
}

// ---- Mermaid and DOT -------------------------------------------------------------------------

/// The Mermaid/DOT id of a node whose name is plain ASCII letters.
fn slug(id: &NodeId) -> String {
    match id {
        NodeId::Step(name) => format!("step_{name}"),
        NodeId::Event(name) => format!("event_{name}"),
        other => other.name().to_owned(),
    }
}

#[test]
fn mermaid_has_each_node_and_edge_once() {
    let graph = shapes().graph();
    let mermaid = graph.to_mermaid();
    assert!(mermaid.starts_with("flowchart TD\n"), "{mermaid}");
    let lines: Vec<&str> = mermaid.lines().map(str::trim).collect();
    for node in &graph.nodes {
        let id = slug(&node.id);
        let opening = if node.role.is_none() { "(\"" } else { "[/\"" };
        let definitions = lines
            .iter()
            .filter(|l| l.starts_with(&format!("{id}{opening}")))
            .count();
        assert_eq!(definitions, 1, "{id} in:\n{mermaid}");
    }
    for edge in &graph.edges {
        let line = format!("{} --> {}", slug(&edge.from), slug(&edge.to));
        assert_eq!(
            lines.iter().filter(|l| **l == line).count(),
            1,
            "{line}:\n{mermaid}"
        );
    }
    let arrows = lines.iter().filter(|l| l.contains("-->")).count();
    assert_eq!(arrows, graph.edges.len(), "{mermaid}");
    // The many-worker annotation only shows for a non-default count.
    let loop_mermaid = Loop.into_workflow().unwrap().graph().to_mermaid();
    assert!(
        loop_mermaid.contains("step_check(\"check ×1\")"),
        "{loop_mermaid}"
    );
}

#[test]
fn dot_is_a_balanced_digraph() {
    let graph = shapes().graph();
    let dot = graph.to_dot();
    assert!(dot.starts_with("digraph \"shapes\" {"), "{dot}");
    assert!(dot.trim_end().ends_with('}'), "{dot}");
    let mut depth = 0_i32;
    for c in dot.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        assert!(depth >= 0, "{dot}");
    }
    assert_eq!(depth, 0, "{dot}");
    for edge in &graph.edges {
        let line = format!("    {} -> {};", slug(&edge.from), slug(&edge.to));
        assert_eq!(dot.lines().filter(|l| *l == line).count(), 1, "{line}");
    }
    for node in &graph.nodes {
        assert!(dot.contains(&format!("    {} [label=", slug(&node.id))));
    }
}

// ---- HTML ------------------------------------------------------------------------------------

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "Q&A<draft>")]
struct Tricky {
    text: String,
}

fn tricky() -> Workflow {
    Workflow::builder("a <tricky> & \"quoted\" workflow")
        .add_step("ask <politely> & wait", |ev: StartEvent| async move {
            Ok::<_, EventFieldError>(Tricky {
                text: ev.get("text")?,
            })
        })
        .add_step(
            "answer",
            |ev: Tricky| async move { StopEvent::new(ev.text) },
        )
        .build()
        .unwrap()
}

/// Nothing in the page is fetched: no scripts, no remote `src`/`href`, no `url()` but fragment
/// references to the page's own markers.
fn assert_self_contained(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("<svg"), "{html}");
    assert!(html.trim_end().ends_with("</html>"), "{html}");
    let lower = html.to_lowercase();
    assert!(!lower.contains("<script"), "{html}");
    assert!(
        !lower.contains("http://") && !lower.contains("https://"),
        "{html}"
    );
    assert!(
        !lower.contains("src=") && !lower.contains("<link"),
        "{html}"
    );
    assert!(!lower.contains("@import"), "{html}");
    for (at, _) in lower.match_indices("url(") {
        assert!(lower[at..].starts_with("url(#"), "{}", &lower[at..at + 40]);
    }
    for (at, _) in lower.match_indices("href=") {
        assert!(
            lower[at..].starts_with("href=\"#"),
            "{}",
            &lower[at..at + 40]
        );
    }
}

#[test]
fn html_is_self_contained_and_draws_every_node() {
    let graph = shapes().graph();
    let html = graph.to_html();
    assert_self_contained(&html);
    assert!(html.contains("<h1>shapes</h1>"), "{html}");
    for node in &graph.nodes {
        let text = format!(">{}</text>", node.id.name());
        assert_eq!(html.matches(&text).count(), 1, "{text}");
    }
    assert_eq!(
        html.matches("<path class=\"edge\"").count(),
        graph.edges.len()
    );
    assert!(html.contains("<marker id=\"arrow\""));
    assert!(html.contains("<details>"));
    // The Mermaid text, escaped, for copying.
    let mermaid = graph
        .to_mermaid()
        .replace('"', "&quot;")
        .replace('>', "&gt;");
    assert!(html.contains(&mermaid), "{html}");
}

#[test]
fn html_escapes_names() {
    let html = tricky().graph().to_html();
    assert_self_contained(&html);
    assert!(html.contains(">Q&amp;A&lt;draft&gt;</text>"), "{html}");
    assert!(
        html.contains(">ask &lt;politely&gt; &amp; wait</text>"),
        "{html}"
    );
    assert!(
        html.contains("<h1>a &lt;tricky&gt; &amp; &quot;quoted&quot; workflow</h1>"),
        "{html}"
    );
    assert!(!html.contains("Q&A<draft>"), "{html}");
    assert!(!html.contains("<politely>"), "{html}");
    assert!(!html.contains("<tricky>"), "{html}");
}

#[test]
fn html_draws_events_from_and_to_the_outside() {
    let workflow = Workflow::builder("approval")
        .step(
            Step::new("ask", |ctx: Context, _: StartEvent| async move {
                ctx.write_event_to_stream(InputRequiredEvent::new("ok?"));
            })
            .emits::<InputRequiredEvent>(),
        )
        .add_step("decide", |ev: HumanResponseEvent| async move {
            StopEvent::new(ev.response)
        })
        .build()
        .unwrap();
    let graph = workflow.graph();
    let html = graph.to_html();
    assert_self_contained(&html);
    assert!(html.contains("external event"), "{html}");
    assert!(html.contains("outbound event"), "{html}");
    assert!(html.contains(">HumanResponseEvent</text>"), "{html}");
    assert!(html.contains("outside world"), "{html}");

    // The graph crosses the human: the question goes to the outside world, the answer comes
    // from it, so start and stop are connected.
    let edges = edge_set(&graph);
    assert!(edges.contains(&(event("InputRequiredEvent"), NodeId::Outside)));
    assert!(edges.contains(&(NodeId::Outside, event("HumanResponseEvent"))));
    let mermaid = graph.to_mermaid();
    assert!(
        mermaid.contains("event_InputRequiredEvent --> outside")
            && mermaid.contains("outside --> event_HumanResponseEvent"),
        "{mermaid}"
    );
    assert!(
        graph
            .to_dot()
            .contains("outside [label=\"outside\", shape=hexagon")
    );
    // A run's path leaves those edges unlabelled.
    let with_path = graph.with_path(&RunPath::default());
    assert!(with_path.edges.iter().all(|edge| (edge.count.is_none())
        == (edge.from == NodeId::Outside || edge.to == NodeId::Outside)));
}

// ---- With the path of a run ------------------------------------------------------------------

#[tokio::test]
async fn path_counts_the_loop_and_the_fan_out() -> anyhow::Result<()> {
    let workflow = shapes();
    let output = workflow.run(json!({ "n": 3 })).await?;
    // 0 + 10 + 20 = 30: the small branch, then three rounds of refinement.
    assert_eq!(output.result::<u32>()?, 30);
    let path = output.path();
    assert_eq!(
        path.count(&event("Refine"), &step("polish")),
        u64::from(ROUNDS)
    );
    assert_eq!(path.count(&step("split"), &event("Task")), 3);
    assert_eq!(path.count(&step("gather"), &event("Gathered")), 1);
    assert_eq!(path.count(&step("size"), &event("Large")), 0);
    assert_eq!(path.step_runs("polish"), 1 + u64::from(ROUNDS));

    let graph = workflow.graph().with_path(path);
    assert!(graph.edges.iter().all(|e| e.count.is_some()));
    let count = |from: NodeId, to: NodeId| {
        graph
            .edges
            .iter()
            .find(|e| e.from == from && e.to == to)
            .and_then(|e| e.count)
    };
    assert_eq!(count(event("Refine"), step("polish")), Some(3));
    assert_eq!(count(step("check"), event("Progress")), Some(4));
    assert_eq!(count(event("Large"), step("polish")), Some(0));

    let mermaid = graph.to_mermaid();
    assert!(
        mermaid.contains("event_Refine -->|3×| step_polish"),
        "{mermaid}"
    );
    assert!(
        mermaid.contains("step_split -->|3×| event_Task"),
        "{mermaid}"
    );
    assert!(mermaid.contains("step_size -.-> event_Large"), "{mermaid}");
    let dot = graph.to_dot();
    assert!(
        dot.contains("event_Refine -> step_polish [label=\"3×\", penwidth=2];"),
        "{dot}"
    );

    let html = graph.to_html();
    assert_self_contained(&html);
    let unused = graph.edges.iter().filter(|e| e.count == Some(0)).count();
    let fired = graph.edges.len() - unused;
    assert_eq!(unused, 2, "size -> Large and Large -> polish");
    assert_eq!(html.matches("<path class=\"edge unused\"").count(), unused);
    assert_eq!(html.matches("<path class=\"edge fired\"").count(), fired);
    assert_eq!(html.matches("<text class=\"count\"").count(), fired);
    // split -> Task -> work -> Done -> gather fan out 3 ways; check -> Refine -> polish loops 3 times.
    assert_eq!(html.matches(">3×</text>").count(), 6, "{html}");
    // polish -> Draft -> check -> Progress: once, then once per round.
    assert_eq!(html.matches(">4×</text>").count(), 3, "{html}");
    // The branch not taken fades; the one taken does not.
    assert!(
        html.contains("<g class=\"node idle\" id=\"event_Large\">"),
        "{html}"
    );
    assert!(
        html.contains("<g class=\"node\" id=\"event_Small\">"),
        "{html}"
    );
    Ok(())
}

#[tokio::test]
async fn path_of_a_macro_workflow_shows_the_loop() -> anyhow::Result<()> {
    let workflow = Loop.into_workflow()?;
    let output = workflow.run(json!({ "total": 500 })).await?;
    assert_eq!(output.result::<u32>()?, 500);
    let html = workflow.graph().with_path(output.path()).to_html();
    assert_self_contained(&html);
    assert!(html.contains(">3×</text>"), "{html}");
    assert!(
        html.contains("<g class=\"node idle\" id=\"event_Small\">"),
        "{html}"
    );
    Ok(())
}
