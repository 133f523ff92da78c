//! The workflow: its steps, and the model calls and searches they make.

use std::sync::Arc;

use eventflow::prelude::*;
use eventflow_llm::{Llm, LlmError};

use crate::classify::{GENERAL, category_names, classify_by_keywords};
use crate::events::{EvaluatedEvent, Passage, SourceEvent, TopicEvent, Verdict};
use crate::report::{Citation, ResearchReport, SourceOutcome};
use crate::sources::{META_STARTS_IN_CODE, Source};
use crate::text::{best_sentence, quality};

/// Sources whose quality is below this are shown to a human.
pub(crate) const QUALITY_THRESHOLD: f32 = 0.6;

/// The reference's `ResearchWorkflow`: three sources, the model when one is configured, and the
/// quality threshold.
pub(crate) struct ResearchWorkflow {
    pub(crate) sources: Vec<Source>,
    pub(crate) llm: Option<Arc<dyn Llm>>,
    pub(crate) threshold: f32,
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

fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_lowercase().as_str(), "y" | "yes")
}
