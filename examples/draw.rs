//! Draw: the reference's workflow visualisation (`draw_all_possible_flows` and
//! `draw_most_recent_execution`).
//!
//! ```text
//! cargo run --example draw -- --out target/eventflow-draw
//! ```
//!
//! Writes the graph of a small research workflow (fan-out, fan-in, a review loop and a branch)
//! as Mermaid, Graphviz DOT and a self-contained HTML page, then runs the workflow once and
//! writes the path that run took, each edge labelled with how often it fired. The graph comes
//! from the step signatures alone, so drawing needs no run; only the last-run files do.

use std::path::{Path, PathBuf};

use eventflow::prelude::*;
use eventflow_examples::arg;

/// One search to run for the question.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct SearchEvent {
    question: String,
    source: String,
}

/// What one search found.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct SearchResult {
    question: String,
    source: String,
    finding: String,
}

/// Every finding, gathered: the material for the first draft.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Notes {
    question: String,
    findings: Vec<String>,
}

/// A draft answer, with how many times it has been revised.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Draft {
    text: String,
    revision: u32,
}

/// The reviewer's request for another revision.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct Revise {
    draft: Draft,
    comment: String,
}

/// What `write` accepts: the gathered notes the first time, a review comment after that.
#[derive(EventUnion)]
enum WriteInput {
    Notes(Notes),
    Revise(Revise),
}

/// What `review` decides: revise again, or publish.
#[derive(EventUnion)]
enum Verdict {
    Revise(Revise),
    Done(StopEvent),
}

const SOURCES: &[&str] = &["encyclopedia", "papers", "forums"];

/// Drafts are accepted once they have been revised this often.
const REVISIONS: u32 = 2;

struct Research;

#[workflow]
impl Research {
    #[step]
    async fn plan(&self, ev: StartEvent) -> Result<Vec<SearchEvent>> {
        let question: String = ev.get("question")?;
        Ok(SOURCES
            .iter()
            .map(|source| SearchEvent {
                question: question.clone(),
                source: (*source).to_owned(),
            })
            .collect())
    }

    #[step(num_workers = 2)]
    async fn search(&self, ev: SearchEvent) -> SearchResult {
        SearchResult {
            finding: format!("the {} say something about {}", ev.source, ev.question),
            question: ev.question,
            source: ev.source,
        }
    }

    #[step]
    async fn gather(&self, ctx: &Context, ev: SearchResult) -> Result<Option<Notes>> {
        let Some(results) = ctx.collect_events(ev, SOURCES.len()) else {
            return Ok(None);
        };
        ctx.set("sources", results.len())?;
        Ok(Some(Notes {
            question: results[0].question.clone(),
            findings: results.into_iter().map(|r| r.finding).collect(),
        }))
    }

    #[step]
    async fn write(&self, ev: WriteInput) -> Draft {
        match ev {
            WriteInput::Notes(notes) => Draft {
                text: format!("{}: {}.", notes.question, notes.findings.join("; ")),
                revision: 0,
            },
            WriteInput::Revise(revise) => Draft {
                text: format!("{} [{}]", revise.draft.text, revise.comment),
                revision: revise.draft.revision + 1,
            },
        }
    }

    #[step]
    async fn review(&self, ev: Draft) -> Verdict {
        if ev.revision >= REVISIONS {
            StopEvent::new(ev.text).into()
        } else {
            Revise {
                comment: format!("revision {} requested", ev.revision + 1),
                draft: ev,
            }
            .into()
        }
    }
}

/// Writes the drawings into `out` (created if missing), runs the workflow once and writes that
/// run's path; returns the files written.
async fn run(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out)?;
    let workflow = Research.into_workflow()?;
    let graph = workflow.graph();
    let output = workflow
        .run(json!({ "question": "how bees navigate" }))
        .await?;
    let last_run = workflow.graph().with_path(output.path());
    let files = [
        ("workflow.mmd", graph.to_mermaid()),
        ("workflow.dot", graph.to_dot()),
        ("workflow.html", graph.to_html()),
        ("last_run.mmd", last_run.to_mermaid()),
        ("last_run.html", last_run.to_html()),
    ];
    let mut written = Vec::new();
    for (name, text) in files {
        let path = out.join(name);
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = arg(&args, "out").unwrap_or_else(|| "target/eventflow-draw".to_owned());
    for path in run(Path::new(&out)).await? {
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    /// A directory of its own under the system's temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let unique = format!(
                "eventflow-{name}-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            );
            TempDir(std::env::temp_dir().join(unique).join("nested"))
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            if let Some(parent) = self.0.parent() {
                let _ = std::fs::remove_dir_all(parent);
            }
        }
    }

    fn read(dir: &TempDir, name: &str) -> String {
        std::fs::read_to_string(dir.0.join(name)).unwrap()
    }

    #[tokio::test]
    async fn writes_the_graph_and_the_last_run() {
        let dir = TempDir::new("draw");
        let written = super::run(&dir.0).await.unwrap();
        let names: Vec<_> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "workflow.mmd",
                "workflow.dot",
                "workflow.html",
                "last_run.mmd",
                "last_run.html"
            ]
        );
        assert!(written.iter().all(|path| path.is_file()));

        let mermaid = read(&dir, "workflow.mmd");
        assert!(mermaid.starts_with("flowchart"), "{mermaid}");
        for step in ["plan", "search", "gather", "write", "review"] {
            assert!(mermaid.contains(&format!("step_{step}(")), "{mermaid}");
        }
        assert!(
            mermaid.contains("step_review --> event_Revise"),
            "{mermaid}"
        );
        assert!(mermaid.contains("event_Revise --> step_write"), "{mermaid}");
        assert!(mermaid.contains("search ×2"), "{mermaid}");

        let dot = read(&dir, "workflow.dot");
        assert!(dot.starts_with("digraph"), "{dot}");
        assert!(dot.trim_end().ends_with('}'), "{dot}");

        let html = read(&dir, "workflow.html");
        assert!(html.contains("<svg") && !html.contains("<script"), "{html}");
        assert!(!html.contains("http://") && !html.contains("https://"));

        // Three searches fanned out and back in; the review loop went round twice.
        let run = read(&dir, "last_run.mmd");
        assert!(run.contains("step_plan -->|3×| event_SearchEvent"), "{run}");
        assert!(
            run.contains("event_SearchResult -->|3×| step_gather"),
            "{run}"
        );
        assert!(run.contains("step_gather -->|1×| event_Notes"), "{run}");
        assert!(run.contains("event_Revise -->|2×| step_write"), "{run}");
        assert!(run.contains("step_review -->|1×| event_StopEvent"), "{run}");
        let run_html = read(&dir, "last_run.html");
        assert!(run_html.contains(">2×</text>"), "{run_html}");
        assert!(run_html.contains(">3×</text>"), "{run_html}");
    }
}
