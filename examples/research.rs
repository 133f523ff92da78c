//! Research: the reference's "Hands-On Exercise" — a multi-step research workflow that
//! classifies the topic, gathers from three sources in parallel, evaluates each source's
//! quality, asks a human to approve the weak ones, and synthesizes a report with citations.
//!
//! - `classify_topic` (`StartEvent` -> `TopicEvent { topic, category }`): the model picks the
//!   category when one is configured, keyword rules otherwise.
//! - `gather_sources` (`TopicEvent` -> `Vec<SourceEvent>`): three searches run concurrently and
//!   each becomes a `SourceEvent { source, content, quality }` (returning a `Vec` fans out):
//!   `web`, a stand-in for a web search (keyword search over the pages in `examples/data/web/`,
//!   so the example needs no network), `vector` (a `VectorStoreIndex` over `docs/` and
//!   `README.md`) and `bm25` (BM25 over the same files). Quality is deterministic: the share of
//!   the topic's terms that the source's passages contain.
//! - `evaluate_quality` (`SourceEvent` + `Context` -> `EvaluatedEvent`): a source under the
//!   threshold (0.6) is shown to a human with `ctx.wait_for_event::<HumanResponseEvent>()`, its
//!   question published as an `InputRequiredEvent` carrying the source's name, and the answer
//!   matched back by that name (`.matching("source", ..)`), so several questions can be open at
//!   once.
//! - `synthesize` (`EvaluatedEvent` -> `StopEvent`): `ctx.collect_events(ev, 3)` waits for all
//!   three sources, then writes the report from the accepted and approved sources, citing each
//!   passage by file and byte offsets; rejected sources are left out and listed as such.
//!
//! Offline (no `OPENAI_BASE_URL`, or `--offline`): keyword classification, a hashing embedding
//! for the vector index (`MockEmbedding`, labelled as not a model), and extractive findings (the
//! sentence of each cited passage that best matches the topic), labelled as such.
//!
//! ```text
//! cargo run --example research -- --approve all     # approve every low-quality source
//! cargo run --example research -- --approve none    # reject them
//! cargo run --example research                      # ask on stdin (yes/no per source)
//! cargo run --example research -- --topic "How does BM25 rank documents?" --approve all
//! ```
//!
//! With a model server (any OpenAI-compatible API), the chat model classifies the topic and
//! writes the report, and the embedding model, when set, embeds the vector index:
//!
//! ```text
//! # OpenAI
//! OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-... \
//!   EVENTFLOW_LLM_MODEL=gpt-4o-mini EVENTFLOW_EMBEDDING_MODEL=text-embedding-3-small \
//!   cargo run --example research -- --approve all
//! # Ollama
//! OPENAI_BASE_URL=http://localhost:11434/v1 \
//!   EVENTFLOW_LLM_MODEL=llama3.2 EVENTFLOW_EMBEDDING_MODEL=nomic-embed-text \
//!   cargo run --example research -- --approve all
//! # vLLM (no embedding model: the vector index uses the offline hashing embedding)
//! OPENAI_BASE_URL=http://localhost:8000/v1 EVENTFLOW_LLM_MODEL=<served model> \
//!   cargo run --example research -- --approve all
//! ```
//!
//! `--verbose` prints the engine's step trace.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use eventflow::prelude::*;
use eventflow_examples::{arg, client_from_env, load_folder, load_project_docs, workspace_root};
use eventflow_llm::{
    Bm25Retriever, Document, Embedding, Llm, LlmError, MockEmbedding, Node, NodeParser,
    OpenAiClient, Retriever, VectorStoreIndex,
};
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};

const DEFAULT_TOPIC: &str = "How the eventflow reducer resumes runs from snapshots";
/// Sources whose quality is below this are shown to a human.
const QUALITY_THRESHOLD: f32 = 0.6;
/// How many passages each source contributes.
const PASSAGES_PER_SOURCE: usize = 2;
const CHUNK_SIZE: usize = 700;
const CHUNK_OVERLAP: usize = 100;
/// Node metadata: whether the node begins inside a fenced code block of its document.
const META_STARTS_IN_CODE: &str = "starts_in_code";

/// The categories a topic is classified into, with the keywords that vote for each (offline).
const CATEGORIES: &[(&str, &[&str])] = &[
    (
        "software engineering",
        &[
            "api",
            "async",
            "bug",
            "code",
            "compiler",
            "crate",
            "database",
            "deploy",
            "engine",
            "eventflow",
            "reducer",
            "run",
            "runtime",
            "rust",
            "server",
            "snapshot",
            "software",
            "step",
            "test",
            "thread",
            "tokio",
            "workflow",
        ],
    ),
    (
        "machine learning",
        &[
            "agent",
            "bm25",
            "classifier",
            "embedding",
            "language",
            "llm",
            "model",
            "neural",
            "prompt",
            "rag",
            "ranking",
            "retrieval",
            "training",
            "vector",
        ],
    ),
    (
        "science",
        &[
            "biology",
            "cell",
            "chemistry",
            "climate",
            "energy",
            "ocean",
            "physics",
            "planet",
            "quantum",
            "species",
            "volcano",
        ],
    ),
    (
        "business",
        &[
            "customer", "finance", "market", "pricing", "revenue", "sales", "startup", "strategy",
        ],
    ),
];
/// The category of a topic that matches none of the others.
const GENERAL: &str = "general";

/// The topic and its category.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct TopicEvent {
    topic: String,
    category: String,
}

/// A passage found by a source: the file it comes from and where.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Passage {
    /// The file, relative to the workspace root.
    file: String,
    /// Byte offsets in the file: `&file[start..end] == text`.
    start: usize,
    end: usize,
    text: String,
    /// Whether the passage begins inside a fenced code block of its file.
    starts_in_code: bool,
}

/// What one source found, and how well it covers the topic.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct SourceEvent {
    source: String,
    /// The passages' texts, best first.
    content: String,
    /// The share of the topic's terms that the content contains, from 0 to 1.
    quality: f32,
    passages: Vec<Passage>,
}

/// What became of a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Verdict {
    /// At or above the threshold.
    Accepted,
    /// Below the threshold, approved by the reviewer.
    Approved,
    /// Below the threshold, rejected by the reviewer.
    Rejected,
    /// The source found nothing.
    Empty,
}

impl Verdict {
    fn included(self) -> bool {
        matches!(self, Verdict::Accepted | Verdict::Approved)
    }

    fn describe(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::Approved => "below the threshold, approved by the reviewer",
            Verdict::Rejected => "below the threshold, rejected by the reviewer",
            Verdict::Empty => "found nothing",
        }
    }
}

/// A source after its evaluation.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
struct EvaluatedEvent {
    source: SourceEvent,
    verdict: Verdict,
}

/// A passage as cited in the report: `[number]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Citation {
    number: usize,
    file: String,
    start: usize,
    end: usize,
    text: String,
    starts_in_code: bool,
    /// The sources that found it.
    found_by: Vec<String>,
}

/// How a source fared.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SourceOutcome {
    source: String,
    description: String,
    quality: f32,
    verdict: Verdict,
    passages: Vec<Passage>,
}

/// The run's result.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ResearchReport {
    topic: String,
    category: String,
    classified_by: String,
    threshold: f32,
    /// Every source, in the order they are searched.
    sources: Vec<SourceOutcome>,
    /// The passages of the included sources, numbered.
    citations: Vec<Citation>,
    /// The body of the report, citing `[n]`.
    findings: String,
    /// Who wrote the findings.
    written_by: String,
}

impl ResearchReport {
    fn render(&self) -> String {
        let mut out = format!(
            "# Research report: {}\n\nCategory: {} (classified by {})\n\n## Findings\n\n{}\n\n{}\n",
            self.topic, self.category, self.classified_by, self.written_by, self.findings
        );
        out.push_str("\n## Sources\n\n");
        if self.citations.is_empty() {
            out.push_str("None.\n");
        }
        for c in &self.citations {
            out.push_str(&format!(
                "[{}] {}, bytes {}..{} (found by {})\n",
                c.number,
                c.file,
                c.start,
                c.end,
                c.found_by.join(", ")
            ));
        }
        out.push_str(&format!(
            "\n## Source evaluation (quality threshold {:.2})\n\n",
            self.threshold
        ));
        for s in &self.sources {
            out.push_str(&format!(
                "- {}: {} — quality {:.2}, {}\n",
                s.source,
                s.description,
                s.quality,
                s.verdict.describe()
            ));
        }
        out.push_str("\n## Excluded sources\n\n");
        let excluded: Vec<&SourceOutcome> = self
            .sources
            .iter()
            .filter(|s| !s.verdict.included())
            .collect();
        if excluded.is_empty() {
            out.push_str("None.\n");
        }
        for s in excluded {
            let passages: Vec<String> = s
                .passages
                .iter()
                .map(|p| format!("{} bytes {}..{}", p.file, p.start, p.end))
                .collect();
            let passages = if passages.is_empty() {
                "no passages".to_owned()
            } else {
                passages.join("; ")
            };
            out.push_str(&format!(
                "- {} (quality {:.2}, {}): {passages}\n",
                s.source,
                s.quality,
                s.verdict.describe()
            ));
        }
        out
    }
}

/// A place to search.
struct Source {
    name: &'static str,
    description: String,
    retriever: Arc<dyn Retriever>,
}

/// The reference's `ResearchWorkflow`: three sources, the model when one is configured, and the
/// quality threshold.
struct ResearchWorkflow {
    sources: Vec<Source>,
    llm: Option<Arc<dyn Llm>>,
    threshold: f32,
}

impl ResearchWorkflow {
    /// The topic's category and who chose it.
    async fn classify(&self, topic: &str) -> Result<(String, String), LlmError> {
        let Some(llm) = &self.llm else {
            return Ok((classify_by_keywords(topic), "keyword rules".to_owned()));
        };
        let names: Vec<&str> = category_names().collect();
        let prompt = format!(
            "Classify the research topic below into exactly one of these categories: {}.\n\
             Answer with the category name only.\n\nTopic: {topic}",
            names.join(", ")
        );
        let completion = llm.complete(&prompt).await?;
        let answer = completion.text.to_lowercase();
        Ok(match names.iter().find(|name| answer.contains(*name)) {
            Some(name) => ((*name).to_owned(), format!("model {}", completion.model)),
            None => (
                GENERAL.to_owned(),
                format!(
                    "model {}, whose answer {:?} is none of the categories",
                    completion.model,
                    completion.text.trim()
                ),
            ),
        })
    }

    /// Searches one source for the topic.
    async fn search(&self, source: &Source, topic: &str) -> Result<SourceEvent, LlmError> {
        let found = source.retriever.retrieve(topic).await?;
        let passages: Vec<Passage> = found
            .into_iter()
            .map(|scored| {
                let node = scored.node;
                let range = node.offsets().unwrap_or_default();
                Passage {
                    file: node.source().unwrap_or("?").to_owned(),
                    start: range.start,
                    end: range.end,
                    starts_in_code: node.metadata.get(META_STARTS_IN_CODE)
                        == Some(&serde_json::Value::Bool(true)),
                    text: node.text,
                }
            })
            .collect();
        let content: Vec<&str> = passages.iter().map(|p| p.text.as_str()).collect();
        let content = content.join("\n\n");
        Ok(SourceEvent {
            source: source.name.to_owned(),
            quality: quality(topic, &content),
            content,
            passages,
        })
    }

    fn description(&self, source: &str) -> String {
        self.sources
            .iter()
            .find(|s| s.name == source)
            .map_or_else(String::new, |s| s.description.clone())
    }

    fn position(&self, source: &str) -> usize {
        self.sources
            .iter()
            .position(|s| s.name == source)
            .unwrap_or(usize::MAX)
    }

    /// The findings and who wrote them.
    async fn write_findings(
        &self,
        topic: &TopicEvent,
        citations: &[Citation],
    ) -> Result<(String, String), LlmError> {
        if citations.is_empty() {
            return Ok((
                "No source was included, so there are no findings.".to_owned(),
                "Nobody: every source was rejected or found nothing.".to_owned(),
            ));
        }
        let Some(llm) = &self.llm else {
            let findings: Vec<String> = citations
                .iter()
                .map(|c| {
                    format!(
                        "- {} [{}]",
                        best_sentence(&topic.topic, &c.text, c.starts_in_code),
                        c.number
                    )
                })
                .collect();
            return Ok((
                findings.join("\n"),
                "Extractive: no model server configured (set OPENAI_BASE_URL for a written \
                 synthesis); below is the sentence of each cited passage that best matches the \
                 topic."
                    .to_owned(),
            ));
        };
        let sources: Vec<String> = citations
            .iter()
            .map(|c| {
                format!(
                    "[{}] {} (bytes {}..{})\n{}",
                    c.number, c.file, c.start, c.end, c.text
                )
            })
            .collect();
        let prompt = format!(
            "Write a short research report (at most three paragraphs) on the topic below, using \
             only the numbered sources. Cite the sources you use by their numbers in square \
             brackets, like [1]. The topic's category is {}.\n\n\
             Sources:\n\n{}\n\n\
             Topic: {}\n\
             Report:",
            topic.category,
            sources.join("\n\n"),
            topic.topic
        );
        let completion = llm.complete(&prompt).await?;
        Ok((
            completion.text.trim().to_owned(),
            format!(
                "Written by model {} from the cited passages.",
                completion.model
            ),
        ))
    }
}

#[workflow]
impl ResearchWorkflow {
    #[step]
    async fn classify_topic(&self, ctx: &Context, ev: StartEvent) -> Result<TopicEvent> {
        let topic: String = ev.get("topic")?;
        let (category, classified_by) = self.classify(&topic).await?;
        ctx.set("classified_by", classified_by)?;
        Ok(TopicEvent { topic, category })
    }

    #[step]
    async fn gather_sources(&self, ctx: &Context, ev: TopicEvent) -> Result<Vec<SourceEvent>> {
        ctx.set("topic", &ev)?;
        // All sources at once (the reference's `asyncio.gather`); one event per source.
        let searches = self.sources.iter().map(|s| self.search(s, &ev.topic));
        Ok(futures::future::try_join_all(searches).await?)
    }

    /// Up to three invocations at once: every source can wait for its reviewer at the same time.
    #[step(num_workers = 3)]
    async fn evaluate_quality(&self, ctx: &Context, ev: SourceEvent) -> Result<EvaluatedEvent> {
        let verdict = if ev.passages.is_empty() {
            Verdict::Empty
        } else if ev.quality >= self.threshold {
            Verdict::Accepted
        } else {
            let topic: TopicEvent = ctx.get("topic")?;
            let best = &ev.passages[0];
            let excerpt: String = best.text.chars().take(300).collect();
            let excerpt: Vec<String> = excerpt
                .lines()
                .map(|line| {
                    if line.is_empty() {
                        String::new()
                    } else {
                        format!("    {line}")
                    }
                })
                .collect();
            let question = format!(
                "Source `{}` ({}) scored {:.2} for \"{}\", below the threshold {:.2}.\n\
                 Its best passage ({}, bytes {}..{}):\n{}{}\n\
                 Include this source in the report? (yes/no)",
                ev.source,
                self.description(&ev.source),
                ev.quality,
                topic.topic,
                self.threshold,
                best.file,
                best.start,
                best.end,
                excerpt.join("\n"),
                if best.text.chars().count() > 300 {
                    "…"
                } else {
                    ""
                },
            );
            let answer = ctx
                .wait_for_event::<HumanResponseEvent>()
                .matching("source", &ev.source)
                .prompt(
                    InputRequiredEvent::new(question)
                        .with("source", &ev.source)
                        .with("quality", ev.quality),
                )
                .await?;
            if is_yes(&answer.response) {
                Verdict::Approved
            } else {
                Verdict::Rejected
            }
        };
        Ok(EvaluatedEvent {
            source: ev,
            verdict,
        })
    }

    #[step]
    async fn synthesize(&self, ctx: &Context, ev: EvaluatedEvent) -> Result<Option<StopEvent>> {
        let Some(mut evaluated) = ctx.collect_events(ev, self.sources.len()) else {
            return Ok(None);
        };
        evaluated.sort_by_key(|e| self.position(&e.source.source));
        let topic: TopicEvent = ctx.get("topic")?;
        let classified_by: String = ctx.get("classified_by")?;

        // One citation per distinct passage of the included sources.
        let mut citations: Vec<Citation> = Vec::new();
        for e in evaluated.iter().filter(|e| e.verdict.included()) {
            for p in &e.source.passages {
                let same =
                    |c: &&mut Citation| c.file == p.file && c.start == p.start && c.end == p.end;
                match citations.iter_mut().find(same) {
                    Some(c) => c.found_by.push(e.source.source.clone()),
                    None => citations.push(Citation {
                        number: citations.len() + 1,
                        file: p.file.clone(),
                        start: p.start,
                        end: p.end,
                        text: p.text.clone(),
                        starts_in_code: p.starts_in_code,
                        found_by: vec![e.source.source.clone()],
                    }),
                }
            }
        }
        let (findings, written_by) = self.write_findings(&topic, &citations).await?;
        let sources = evaluated
            .into_iter()
            .map(|e| SourceOutcome {
                description: self.description(&e.source.source),
                source: e.source.source,
                quality: e.source.quality,
                verdict: e.verdict,
                passages: e.source.passages,
            })
            .collect();
        Ok(Some(StopEvent::new(ResearchReport {
            topic: topic.topic,
            category: topic.category,
            classified_by,
            threshold: self.threshold,
            sources,
            citations,
            findings,
            written_by,
        })))
    }
}

fn category_names() -> impl Iterator<Item = &'static str> {
    CATEGORIES
        .iter()
        .map(|(name, _)| *name)
        .chain(std::iter::once(GENERAL))
}

/// The distinct terms of a text, as BM25 sees them (lowercase, no stopwords, stemmed).
fn term_set(text: &str) -> HashSet<String> {
    Bm25Retriever::tokenize(text).into_iter().collect()
}

/// The category whose keywords the topic mentions most (the first on a tie), or `general`.
fn classify_by_keywords(topic: &str) -> String {
    let terms = term_set(topic);
    let mut best = (0, GENERAL);
    for (name, keywords) in CATEGORIES {
        let votes = term_set(&keywords.join(" ")).intersection(&terms).count();
        if votes > best.0 {
            best = (votes, name);
        }
    }
    best.1.to_owned()
}

/// The share of the topic's distinct terms that occur in `content` (0 when the topic has none).
fn quality(topic: &str, content: &str) -> f32 {
    let wanted = term_set(topic);
    if wanted.is_empty() {
        return 0.0;
    }
    let found = term_set(content);
    wanted.intersection(&found).count() as f32 / wanted.len() as f32
}

/// The sentence of `text` sharing the most terms with `topic` (the first on a tie), on one line.
fn best_sentence(topic: &str, text: &str, starts_in_code: bool) -> String {
    let wanted = term_set(topic);
    let mut best = (0, 0);
    let sentences = sentences(text, starts_in_code);
    for (i, sentence) in sentences.iter().enumerate() {
        let score = term_set(sentence).intersection(&wanted).count();
        if score > best.0 {
            best = (score, i);
        }
    }
    let Some(sentence) = sentences.get(best.1) else {
        // Nothing but headings and code: the first heading, if any.
        let heading = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with('#') && l.trim_start_matches('#').starts_with(' '));
        return heading.map_or_else(
            || "(only code; see the source)".to_owned(),
            |h| h.trim_start_matches('#').trim().to_owned(),
        );
    };
    // A passage may begin in the middle of a sentence.
    if best.1 == 0 && sentence.starts_with(|c: char| c.is_lowercase()) {
        format!("…{sentence}")
    } else {
        sentence.clone()
    }
}

/// The prose sentences of a Markdown passage: blocks (paragraphs, list items, table rows) joined
/// onto one line without their list markers, then cut after `.`, `!` or `?` followed by a space.
/// Headings and fenced code (from the start, when `starts_in_code`) are left out.
fn sentences(text: &str, starts_in_code: bool) -> Vec<String> {
    /// The text of a list item without its marker.
    fn list_item(line: &str) -> Option<&str> {
        ["- ", "* "]
            .iter()
            .find_map(|marker| line.strip_prefix(marker))
            .or_else(|| {
                let (number, rest) = line.split_once(". ")?;
                (!number.is_empty() && number.chars().all(|c| c.is_ascii_digit())).then_some(rest)
            })
    }
    let mut blocks: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut in_code = starts_in_code;
    for line in text.lines().map(str::trim) {
        let fence = line.starts_with("```");
        let item = list_item(line);
        let skipped = fence || in_code || line.starts_with('#');
        if (line.is_empty() || skipped || item.is_some() || line.starts_with('|'))
            && !current.is_empty()
        {
            blocks.push(std::mem::take(&mut current));
        }
        if fence {
            in_code = !in_code;
        }
        if skipped || line.is_empty() {
            continue;
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(item.unwrap_or(line));
    }
    if !current.is_empty() {
        blocks.push(current);
    }
    let mut out = Vec::new();
    for block in blocks {
        let mut rest = block.as_str();
        // Not after a list number ("1. ").
        let ends_sentence = |rest: &str, i: usize| {
            rest[i + 1..].starts_with(' ') && !rest[..i].chars().all(|c| c.is_ascii_digit())
        };
        while let Some(end) = rest
            .char_indices()
            .find(|&(i, c)| matches!(c, '.' | '!' | '?') && ends_sentence(rest, i))
            .map(|(i, _)| i + 1)
        {
            out.push(rest[..end].trim().to_owned());
            rest = &rest[end..];
        }
        if !rest.trim().is_empty() {
            out.push(rest.trim().to_owned());
        }
    }
    out
}

fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_lowercase().as_str(), "y" | "yes")
}

/// The documents' nodes, each marked with whether it begins inside a fenced code block.
fn split(parser: &NodeParser, documents: &[Document]) -> Vec<Node> {
    let mut nodes = Vec::new();
    for document in documents {
        for mut node in parser.parse(document) {
            let start = node.offsets().map_or(0, |range| range.start);
            let fences = document.text[..start]
                .lines()
                .filter(|line| line.trim_start().starts_with("```"))
                .count();
            node.metadata
                .insert(META_STARTS_IN_CODE.into(), (fences % 2 == 1).into());
            nodes.push(node);
        }
    }
    nodes
}

/// Builds the workflow over the files under `root`. With a client (which must have a chat
/// model), its model classifies and writes; its embedding model, if it has one, embeds the
/// vector index.
async fn setup(root: &Path, client: Option<&OpenAiClient>) -> anyhow::Result<ResearchWorkflow> {
    let parser = NodeParser::new(CHUNK_SIZE, CHUNK_OVERLAP)?;
    let web_folder = "examples/data/web";
    let web = split(&parser, &load_folder(root, web_folder)?);
    let project = split(&parser, &load_project_docs(root)?);

    let (embedding, embedded_by): (Arc<dyn Embedding>, String) =
        match client.and_then(|c| c.embedding_model().map(|m| (c, m.to_owned()))) {
            Some((client, model)) => (Arc::new(client.clone()), format!("{model} embeddings")),
            None => (
                Arc::new(MockEmbedding::default()),
                "an offline hashing embedding, not a model".to_owned(),
            ),
        };
    let index = VectorStoreIndex::from_nodes(project.clone(), embedding)
        .await
        .context("embedding the project's documents failed")?;

    let sources = vec![
        Source {
            name: "web",
            description: format!("web stand-in: keyword search over the pages in {web_folder}"),
            retriever: Arc::new(Bm25Retriever::from_nodes(web, PASSAGES_PER_SOURCE)),
        },
        Source {
            name: "vector",
            description: format!("vector index over docs/ and README.md, {embedded_by}"),
            retriever: Arc::new(index.as_retriever(PASSAGES_PER_SOURCE)),
        },
        Source {
            name: "bm25",
            description: "BM25 over docs/ and README.md".to_owned(),
            retriever: Arc::new(Bm25Retriever::from_nodes(project, PASSAGES_PER_SOURCE)),
        },
    ];
    Ok(ResearchWorkflow {
        sources,
        llm: client.map(|c| Arc::new(c.clone()) as Arc<dyn Llm>),
        threshold: QUALITY_THRESHOLD,
    })
}

/// Who answers the workflow's questions.
enum Approvals {
    /// `--approve all`: yes to every question.
    All,
    /// `--approve none`: no to every question.
    None,
    /// A line of standard input per question.
    Stdin(Lines<BufReader<Stdin>>),
    /// Yes for the listed sources, no for the others (tests).
    #[cfg(test)]
    Only(Vec<&'static str>),
}

impl Approvals {
    fn from_flag(value: Option<&str>) -> anyhow::Result<Self> {
        Ok(match value {
            Some("all") => Approvals::All,
            Some("none") => Approvals::None,
            Some(other) => bail!("--approve takes `all` or `none`, not {other:?}"),
            None => Approvals::Stdin(BufReader::new(tokio::io::stdin()).lines()),
        })
    }

    async fn answer(&mut self, source: &str, question: &str) -> anyhow::Result<String> {
        println!("\n{question}");
        let fixed = |answer: &str| {
            println!("> {answer}");
            Ok(answer.to_owned())
        };
        match self {
            Approvals::All => fixed("yes"),
            Approvals::None => fixed("no"),
            #[cfg(test)]
            Approvals::Only(approved) => fixed(if approved.contains(&source) {
                "yes"
            } else {
                "no"
            }),
            Approvals::Stdin(lines) => {
                print!("> ");
                std::io::stdout().flush()?;
                let line = lines.next_line().await?.with_context(|| {
                    format!(
                        "standard input closed before the question about `{source}` was \
                         answered; pass --approve all or --approve none to run without a reviewer"
                    )
                })?;
                if !std::io::stdin().is_terminal() {
                    println!("{line}");
                }
                Ok(line.trim().to_owned())
            }
        }
    }
}

/// A question the workflow asked.
#[derive(Debug)]
struct Question {
    source: String,
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "main prints it when it is asked")
    )]
    prompt: String,
}

/// One run: the report and the questions asked on the way.
#[derive(Debug)]
struct Session {
    report: ResearchReport,
    questions: Vec<Question>,
}

/// Runs the workflow on `topic`, answering its questions from `approvals`.
async fn research(
    workflow: ResearchWorkflow,
    topic: &str,
    approvals: &mut Approvals,
    verbose: bool,
) -> anyhow::Result<Session> {
    let workflow = workflow.into_workflow()?.verbose(verbose);
    let handler = workflow.run(json!({ "topic": topic }));
    let mut questions = Vec::new();
    let mut events = handler.stream_events();
    while let Some(event) = events.next().await {
        let Some(question) = event.downcast_ref::<InputRequiredEvent>() else {
            continue;
        };
        let answered = async {
            let source: String = question.get("source")?;
            let answer = approvals.answer(&source, &question.prefix).await?;
            handler.send_event(HumanResponseEvent::new(answer).with("source", &source))?;
            anyhow::Ok(source)
        };
        match answered.await {
            Ok(source) => questions.push(Question {
                source,
                prompt: question.prefix.clone(),
            }),
            Err(error) => {
                // Dropping the handler would leave the run waiting; stop it.
                handler.cancel();
                return Err(error);
            }
        }
    }
    let report = handler.await?.result()?;
    Ok(Session { report, questions })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let topic = arg(&args, "topic").unwrap_or_else(|| DEFAULT_TOPIC.to_owned());
    let mut approvals = Approvals::from_flag(arg(&args, "approve").as_deref())?;
    let client = client_from_env(flag("--offline"))?;

    let workflow = setup(&workspace_root(), client.as_ref()).await?;
    match &client {
        Some(client) => println!(
            "Model server: {} (chat model {})",
            client.base_url(),
            client.model().unwrap_or_default()
        ),
        None => {
            println!("Model server: none (offline): keyword classification, extractive findings")
        }
    }
    println!("Sources:");
    for source in &workflow.sources {
        println!("  {}: {}", source.name, source.description);
    }
    println!("Topic: {topic}");

    let session = research(workflow, &topic, &mut approvals, flag("--verbose")).await?;
    println!("\n{}", session.report.render());
    let asked: Vec<&str> = session
        .questions
        .iter()
        .map(|q| q.source.as_str())
        .collect();
    println!(
        "Questions asked: {}{}",
        asked.len(),
        if asked.is_empty() {
            String::new()
        } else {
            format!(" (about {})", asked.join(", "))
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use eventflow_llm::MockLlm;

    use super::*;

    async fn offline() -> ResearchWorkflow {
        setup(&workspace_root(), None).await.unwrap()
    }

    /// Checks that every citation points at its text in its file, and that the findings cite
    /// every citation and nothing else.
    fn assert_citations_hold(report: &ResearchReport) {
        let root = workspace_root();
        for c in &report.citations {
            let file = std::fs::read_to_string(root.join(&c.file)).unwrap();
            assert_eq!(file[c.start..c.end], c.text, "[{}] {}", c.number, c.file);
            assert!(
                report.findings.contains(&format!("[{}]", c.number)),
                "{}",
                report.findings
            );
        }
        let n = report.citations.len();
        assert!(!report.findings.contains(&format!("[{}]", n + 1)));
    }

    fn outcome<'a>(report: &'a ResearchReport, source: &str) -> &'a SourceOutcome {
        report.sources.iter().find(|s| s.source == source).unwrap()
    }

    /// Whether the report cites a passage of the source.
    fn cites(report: &ResearchReport, source: &str) -> bool {
        report
            .citations
            .iter()
            .any(|c| c.found_by.iter().any(|s| s == source))
    }

    #[tokio::test]
    async fn the_web_stand_in_is_weak_on_the_default_topic_and_the_docs_are_strong() {
        // The premise of the two tests below: the local "web" pages say nothing about eventflow.
        let session = research(offline().await, DEFAULT_TOPIC, &mut Approvals::All, false)
            .await
            .unwrap();
        let report = &session.report;
        let names: Vec<&str> = report.sources.iter().map(|s| s.source.as_str()).collect();
        assert_eq!(names, ["web", "vector", "bm25"]);
        let web = outcome(report, "web");
        assert!(!web.passages.is_empty());
        assert!(web.quality < QUALITY_THRESHOLD, "{}", web.quality);
        assert!(
            web.passages
                .iter()
                .all(|p| p.file.starts_with("examples/data/web/"))
        );
        for docs in ["vector", "bm25"] {
            let docs = outcome(report, docs);
            assert_eq!(docs.verdict, Verdict::Accepted, "{docs:?}");
            assert!(
                docs.passages
                    .iter()
                    .all(|p| p.file.starts_with("docs/") || p.file == "README.md")
            );
        }
        assert_eq!(report.category, "software engineering");
        assert_eq!(report.classified_by, "keyword rules");
    }

    #[tokio::test]
    async fn approve_all_includes_the_low_quality_sources() {
        let session = research(offline().await, DEFAULT_TOPIC, &mut Approvals::All, false)
            .await
            .unwrap();
        let report = &session.report;
        let low: Vec<&SourceOutcome> = report
            .sources
            .iter()
            .filter(|s| s.verdict != Verdict::Empty && s.quality < QUALITY_THRESHOLD)
            .collect();
        assert!(!low.is_empty());
        assert_eq!(
            session.questions.len(),
            low.len(),
            "{:?}",
            session.questions
        );
        for source in low {
            assert_eq!(source.verdict, Verdict::Approved);
            assert!(cites(report, &source.source), "{} not cited", source.source);
            let question = session
                .questions
                .iter()
                .find(|q| q.source == source.source)
                .unwrap();
            assert!(
                question
                    .prompt
                    .contains(&format!("Source `{}`", source.source))
            );
        }
        assert!(report.render().contains("## Excluded sources\n\nNone."));
        assert!(
            report
                .written_by
                .starts_with("Extractive: no model server configured")
        );
        assert_citations_hold(report);
    }

    #[tokio::test]
    async fn approve_none_excludes_them_and_lists_them() {
        let session = research(offline().await, DEFAULT_TOPIC, &mut Approvals::None, false)
            .await
            .unwrap();
        let report = &session.report;
        let web = outcome(report, "web");
        assert_eq!(web.verdict, Verdict::Rejected);
        assert!(!cites(report, "web"));
        assert!(
            report
                .citations
                .iter()
                .all(|c| !c.file.starts_with("examples/data/web/"))
        );
        // Still cited: the accepted sources.
        assert!(cites(report, "vector") && cites(report, "bm25"));
        let rendered = report.render();
        let excluded = rendered.split("## Excluded sources").nth(1).unwrap();
        assert!(excluded.contains("- web (quality"), "{rendered}");
        assert!(excluded.contains(&web.passages[0].file), "{rendered}");
        assert_citations_hold(report);
    }

    #[tokio::test]
    async fn answers_are_matched_to_their_source() {
        // Every source below the threshold: three questions open at once.
        let mut workflow = offline().await;
        workflow.threshold = 1.01;
        let mut approvals = Approvals::Only(vec!["vector"]);
        let session = research(workflow, DEFAULT_TOPIC, &mut approvals, false)
            .await
            .unwrap();
        let mut asked: Vec<&str> = session
            .questions
            .iter()
            .map(|q| q.source.as_str())
            .collect();
        asked.sort_unstable();
        assert_eq!(asked, ["bm25", "vector", "web"]);
        let verdicts: Vec<(&str, Verdict)> = session
            .report
            .sources
            .iter()
            .map(|s| (s.source.as_str(), s.verdict))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("web", Verdict::Rejected),
                ("vector", Verdict::Approved),
                ("bm25", Verdict::Rejected)
            ]
        );
        assert!(
            session
                .report
                .citations
                .iter()
                .all(|c| c.found_by.contains(&"vector".to_owned()))
        );
        assert_citations_hold(&session.report);
    }

    #[tokio::test]
    async fn a_topic_nothing_matches_gives_an_empty_report() {
        let session = research(
            offline().await,
            "zyzzyva quokka",
            &mut Approvals::All,
            false,
        )
        .await
        .unwrap();
        // The hashing embedding still finds nearest passages, but they share no term.
        assert!(session.report.sources.iter().all(|s| s.quality == 0.0));
        assert_eq!(outcome(&session.report, "web").verdict, Verdict::Empty);
        assert_eq!(session.report.category, GENERAL);
    }

    #[tokio::test]
    async fn with_a_model_it_classifies_and_writes_from_the_included_sources_only() {
        let llm = MockLlm::new()
            .respond_to("Classify the research topic", "Machine learning")
            .respond_to(
                "Write a short research report",
                "Snapshots keep the reducer state [1].",
            );
        let mut workflow = offline().await;
        workflow.llm = Some(Arc::new(llm.clone()));
        let session = research(workflow, DEFAULT_TOPIC, &mut Approvals::None, false)
            .await
            .unwrap();
        let report = &session.report;
        assert_eq!(report.category, "machine learning");
        assert_eq!(report.classified_by, format!("model {}", MockLlm::MODEL));
        // The mock's answer is shown as it is, marker included: it never passes for a model.
        assert_eq!(
            report.findings,
            "[mock-llm] Snapshots keep the reducer state [1]."
        );

        let requests = llm.requests();
        assert_eq!(requests.len(), 2);
        let prompt = requests[1].last_user_message().unwrap();
        assert!(prompt.contains(&format!("Topic: {DEFAULT_TOPIC}")));
        assert!(prompt.contains("The topic's category is machine learning"));
        for c in &report.citations {
            assert!(prompt.contains(&c.text));
        }
        for p in &outcome(report, "web").passages {
            assert!(
                !prompt.contains(&p.text),
                "a rejected passage reached the model"
            );
        }
    }

    #[test]
    fn quality_is_the_share_of_topic_terms_found() {
        assert_eq!(
            quality("snapshots of runs", "A run resumes from its snapshot."),
            1.0
        );
        assert_eq!(quality("snapshots of runs", "A run."), 0.5);
        assert_eq!(quality("snapshots of runs", "Nothing here."), 0.0);
        assert_eq!(quality("the of and", "anything"), 0.0);
    }

    #[test]
    fn sentences_follow_markdown_blocks() {
        let text = "# Title\nFirst sentence. Second\nsentence!\n\n- item one. more\n1. numbered\n\
                    ```text\ncode. more code\n```\n| a | b |";
        assert_eq!(
            sentences(text, false),
            [
                "First sentence.",
                "Second sentence!",
                "item one.",
                "more",
                "numbered",
                "| a | b |"
            ]
        );
        assert_eq!(
            best_sentence("title", "## The Title\n```\ncode\n```", false),
            "The Title"
        );
        assert_eq!(
            best_sentence(
                "second sentence",
                "First one. The second sentence. Third.",
                false
            ),
            "The second sentence."
        );
        assert_eq!(
            best_sentence("cut", "cut in the middle. Next.", false),
            "…cut in the middle."
        );
        assert_eq!(best_sentence("nothing", "First. Second.", false), "First.");
        assert_eq!(sentences("inside. code\n```\nProse.", true), ["Prose."]);
        assert_eq!(
            best_sentence("x", "code.\n```", true),
            "(only code; see the source)"
        );
    }

    #[test]
    fn classification_by_keywords() {
        assert_eq!(classify_by_keywords(DEFAULT_TOPIC), "software engineering");
        assert_eq!(
            classify_by_keywords("How does BM25 ranking work?"),
            "machine learning"
        );
        assert_eq!(classify_by_keywords("Why do volcanoes erupt?"), "science");
        assert_eq!(classify_by_keywords("The best pasta recipes"), GENERAL);
    }
}
