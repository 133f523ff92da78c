//! Text as the sources and the extractive findings see it: terms, quality, sentences.

use std::collections::HashSet;

use eventflow_llm::Bm25Retriever;

/// The distinct terms of a text, as BM25 sees them (lowercase, no stopwords, stemmed).
pub(crate) fn term_set(text: &str) -> HashSet<String> {
    Bm25Retriever::tokenize(text).into_iter().collect()
}

/// The share of the topic's distinct terms that occur in `content` (0 when the topic has none).
pub(crate) fn quality(topic: &str, content: &str) -> f32 {
    let wanted = term_set(topic);
    if wanted.is_empty() {
        return 0.0;
    }
    let found = term_set(content);
    wanted.intersection(&found).count() as f32 / wanted.len() as f32
}

/// The sentence of `text` sharing the most terms with `topic` (the first on a tie), on one line.
pub(crate) fn best_sentence(topic: &str, text: &str, starts_in_code: bool) -> String {
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
    pub(crate) fn list_item(line: &str) -> Option<&str> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
