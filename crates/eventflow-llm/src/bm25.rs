//! [`Bm25Retriever`]: keyword retrieval with Okapi BM25, no model needed.

use std::collections::HashMap;

use futures::future::BoxFuture;

use crate::retriever::TopK;
use crate::{LlmError, Node, NodeWithScore, Retriever};

/// Common English words that carry little meaning for retrieval.
const STOPWORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
    "because", "been", "before", "being", "between", "both", "but", "by", "can", "could", "did",
    "do", "does", "doing", "during", "each", "for", "from", "further", "had", "has", "have",
    "having", "he", "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is",
    "it", "its", "itself", "just", "me", "more", "most", "my", "no", "nor", "not", "of", "off",
    "on", "once", "only", "or", "other", "our", "ours", "out", "over", "own", "same", "she",
    "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "then",
    "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up",
    "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why",
    "will", "with", "would", "you", "your", "yours", "s", "t",
];

/// Strips a few common English suffixes so that `indexes`, `indexed` and `indexing` meet.
///
/// Deliberately light (no dictionary, no Porter rules): it only has to be applied the same way
/// to documents and queries. Non-ASCII words are left as they are.
fn stem(word: &str) -> String {
    if !word.is_ascii() {
        return word.to_owned();
    }
    let mut w = word;
    let n = |w: &str| w.len();
    // Plurals.
    let plural;
    if n(w) > 4 && w.ends_with("ies") {
        plural = format!("{}y", &w[..n(w) - 3]);
        w = &plural;
    } else if n(w) > 4
        && ["sses", "xes", "ches", "shes"]
            .iter()
            .any(|s| w.ends_with(s))
    {
        w = &w[..n(w) - 2];
    } else if n(w) > 3 && w.ends_with('s') && !["ss", "us", "is"].iter().any(|s| w.ends_with(s)) {
        w = &w[..n(w) - 1];
    }
    // Verb forms.
    if n(w) > 5 && w.ends_with("ing") {
        w = &w[..n(w) - 3];
    } else if n(w) > 4 && w.ends_with("ed") {
        w = &w[..n(w) - 2];
    }
    // A final "e" or "y": "store"/"stored", "query"/"queries".
    if n(w) > 3 && (w.ends_with('e') || w.ends_with('y')) {
        w = &w[..n(w) - 1];
    }
    w.to_owned()
}

/// The terms of a text as BM25 and [`MockEmbedding`](crate::MockEmbedding) see them: lowercase
/// runs of alphanumeric characters, without English stopwords, lightly stemmed.
pub(crate) fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .map(|w| stem(&w))
        .collect()
}

/// Ranks nodes by Okapi BM25 over their words: keyword retrieval that works with no model server.
///
/// Text is tokenized by [`Bm25Retriever::tokenize`]. The score of a node for a query is the sum
/// over the distinct query terms `t` of
/// `idf(t) · tf · (k1 + 1) / (tf + k1 · (1 − b + b · len / avg_len))` with
/// `idf(t) = ln(1 + (N − n(t) + 0.5) / (n(t) + 0.5))` (never negative), `k1 = 1.2`,
/// `b = 0.75`. Nodes sharing no term with the query are not returned.
#[derive(Clone, Debug)]
pub struct Bm25Retriever {
    nodes: Vec<Node>,
    /// For each term, the nodes containing it and how often.
    postings: HashMap<String, Vec<(u32, u32)>>,
    lengths: Vec<u32>,
    average_length: f32,
    top_k: usize,
    k1: f32,
    b: f32,
}

impl Bm25Retriever {
    /// The default `k1`.
    pub const DEFAULT_K1: f32 = 1.2;
    /// The default `b`.
    pub const DEFAULT_B: f32 = 0.75;

    /// Indexes `nodes`; [`Retriever::retrieve`] returns at most `top_k` of them.
    pub fn from_nodes(nodes: Vec<Node>, top_k: usize) -> Self {
        let mut postings: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
        let mut lengths = Vec::with_capacity(nodes.len());
        for (position, node) in nodes.iter().enumerate() {
            let terms = terms(&node.text);
            lengths.push(terms.len() as u32);
            let mut counts: HashMap<String, u32> = HashMap::new();
            for term in terms {
                *counts.entry(term).or_default() += 1;
            }
            for (term, count) in counts {
                postings
                    .entry(term)
                    .or_default()
                    .push((position as u32, count));
            }
        }
        let total: u64 = lengths.iter().map(|&l| u64::from(l)).sum();
        let average_length = if lengths.is_empty() {
            0.0
        } else {
            total as f32 / lengths.len() as f32
        };
        Bm25Retriever {
            nodes,
            postings,
            lengths,
            average_length,
            top_k,
            k1: Self::DEFAULT_K1,
            b: Self::DEFAULT_B,
        }
    }

    /// The retriever with other BM25 parameters.
    pub fn with_params(mut self, k1: f32, b: f32) -> Self {
        self.k1 = k1;
        self.b = b;
        self
    }

    /// The retriever returning at most `top_k` nodes.
    pub fn with_top_k(mut self, top_k: usize) -> Self {
        self.top_k = top_k;
        self
    }

    /// How many nodes [`Retriever::retrieve`] returns at most.
    pub fn top_k(&self) -> usize {
        self.top_k
    }

    /// The indexed nodes.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The terms BM25 sees in a text: lowercase runs of letters and digits, without a small list
    /// of English stopwords, with a light suffix stemming (`indexes`, `indexing` → `index`).
    pub fn tokenize(text: &str) -> Vec<String> {
        terms(text)
    }

    /// The best `top_k` nodes for `query`, best first, with their BM25 scores.
    pub fn search(&self, query: &str, top_k: usize) -> Vec<NodeWithScore> {
        if top_k == 0 || self.nodes.is_empty() {
            return Vec::new();
        }
        let mut query_terms = terms(query);
        query_terms.sort();
        query_terms.dedup();
        let n = self.nodes.len() as f32;
        let mut scores: HashMap<u32, f32> = HashMap::new();
        for term in &query_terms {
            let Some(postings) = self.postings.get(term) else {
                continue;
            };
            let df = postings.len() as f32;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(position, tf) in postings {
                let tf = tf as f32;
                let length = self.lengths[position as usize] as f32;
                let norm = if self.average_length > 0.0 {
                    1.0 - self.b + self.b * length / self.average_length
                } else {
                    1.0
                };
                *scores.entry(position).or_default() +=
                    idf * tf * (self.k1 + 1.0) / (tf + self.k1 * norm);
            }
        }
        let mut top = TopK::new(top_k);
        for (position, score) in scores {
            top.push(score, position as usize);
        }
        top.into_sorted()
            .into_iter()
            .map(|s| NodeWithScore::new(self.nodes[s.position].clone(), s.score))
            .collect()
    }
}

impl Retriever for Bm25Retriever {
    fn retrieve<'a>(
        &'a self,
        query: &'a str,
    ) -> BoxFuture<'a, Result<Vec<NodeWithScore>, LlmError>> {
        Box::pin(async move { Ok(self.search(query, self.top_k)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_lowercases_drops_stopwords_and_stems() {
        assert_eq!(
            Bm25Retriever::tokenize("The Indexes, indexing and INDEXED; it's 42 queries!"),
            vec!["index", "index", "index", "42", "quer"]
        );
        assert_eq!(stem("query"), stem("queries"));
        assert_eq!(stem("store"), stem("stored"));
        assert_eq!(stem("plays"), stem("play"));
        assert_eq!(stem("class"), "class");
        assert_eq!(stem("status"), "status");
        assert!(Bm25Retriever::tokenize("the of and").is_empty());
    }

    #[test]
    fn ranks_by_bm25() {
        let nodes = vec![
            Node::new("a", "cats purr and cats sleep"),
            Node::new("b", "dogs bark loudly at night"),
            Node::new("c", "a cat and a dog play"),
        ];
        let bm25 = Bm25Retriever::from_nodes(nodes, 2);
        let got = bm25.search("why do cats purr", 2);
        assert_eq!(got[0].node.id, "a");
        assert_eq!(got.len(), 2);
        assert!(got[0].score > got[1].score && got[1].score > 0.0);
        assert!(bm25.search("", 5).is_empty());
        assert!(bm25.search("zebra", 5).is_empty());
        assert!(
            Bm25Retriever::from_nodes(Vec::new(), 3)
                .search("cats", 3)
                .is_empty()
        );
    }
}
