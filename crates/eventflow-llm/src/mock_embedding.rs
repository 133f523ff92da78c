//! [`MockEmbedding`]: a deterministic hashing embedding for tests and offline runs.

use futures::future::BoxFuture;

use crate::{Embedding, LlmError};

/// A deterministic **hashing embedding for tests and offline runs — not a model**.
///
/// It knows nothing about meaning: each text becomes a bag of its words (the same lowercase,
/// stopword-free, lightly stemmed terms as [`Bm25Retriever::tokenize`](crate::Bm25Retriever::tokenize))
/// and of their character trigrams, each feature hashed (FNV-1a) into one of `dimensions`
/// buckets with a hashed sign (the "hashing trick"), weighted `1 + ln(count)`, and the vector
/// L2-normalized. Texts sharing words therefore get a high cosine similarity, texts sharing
/// none about zero. The same text always gives the same vector, on every platform and run.
///
/// A text with no terms (empty, only punctuation or stopwords) gives the zero vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MockEmbedding {
    dimensions: usize,
}

impl MockEmbedding {
    /// The default number of dimensions.
    pub const DEFAULT_DIMENSIONS: usize = 256;

    /// Trigram features weigh this much relative to whole words.
    const TRIGRAM_WEIGHT: f32 = 0.3;

    /// A mock embedding with `dimensions` dimensions (at least 1; 0 is taken as 1).
    pub fn new(dimensions: usize) -> Self {
        MockEmbedding {
            dimensions: dimensions.max(1),
        }
    }

    /// The number of dimensions of its vectors.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// The vector of one text (what [`Embedding::embed`] returns for it).
    pub fn vector(&self, text: &str) -> Vec<f32> {
        // A BTreeMap: a fixed summation order, so the vector is the same to the last bit.
        let mut counts: std::collections::BTreeMap<String, u32> = std::collections::BTreeMap::new();
        for term in crate::bm25::terms(text) {
            *counts.entry(term).or_default() += 1;
        }
        let mut vector = vec![0.0f32; self.dimensions];
        let mut add = |feature: &[u8], weight: f32| {
            let hash = fnv1a(feature);
            let bucket = (hash % self.dimensions as u64) as usize;
            let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
            vector[bucket] += sign * weight;
        };
        for (term, count) in &counts {
            let weight = 1.0 + (*count as f32).ln();
            let mut word = Vec::with_capacity(term.len() + 2);
            word.push(b'w');
            word.extend_from_slice(term.as_bytes());
            add(&word, weight);
            // Trigrams of the word padded with spaces, so "index" and "indices" share some.
            let chars: Vec<char> = format!(" {term} ").chars().collect();
            for window in chars.windows(3) {
                let gram: String = window.iter().collect();
                let mut feature = Vec::with_capacity(gram.len() + 1);
                feature.push(b'g');
                feature.extend_from_slice(gram.as_bytes());
                add(&feature, weight * Self::TRIGRAM_WEIGHT);
            }
        }
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            vector.iter_mut().for_each(|x| *x /= norm);
        }
        vector
    }
}

impl Default for MockEmbedding {
    /// [`MockEmbedding::DEFAULT_DIMENSIONS`] dimensions.
    fn default() -> Self {
        MockEmbedding::new(Self::DEFAULT_DIMENSIONS)
    }
}

impl Embedding for MockEmbedding {
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, LlmError>> {
        Box::pin(async move { Ok(texts.iter().map(|t| self.vector(t)).collect()) })
    }
}

/// 64-bit FNV-1a: stable across platforms and Rust versions, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    std::hash::Hasher::write(&mut hasher, bytes);
    std::hash::Hasher::finish(&hasher)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn deterministic_normalized_and_similar_for_shared_words() {
        let e = MockEmbedding::default();
        let a = e.vector("The vector index stores embeddings");
        assert_eq!(a, e.vector("The vector index stores embeddings"));
        assert_eq!(a.len(), 256);
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-5);
        let near = e.vector("an index of embedding vectors");
        let far = e.vector("bread baking with sourdough starter");
        assert!(cosine(&a, &near) > 0.5, "{}", cosine(&a, &near));
        assert!(cosine(&a, &far).abs() < 0.3, "{}", cosine(&a, &far));
    }

    #[test]
    fn empty_text_is_the_zero_vector_and_stable_hash() {
        let e = MockEmbedding::new(8);
        assert_eq!(e.vector("  the, of! "), vec![0.0; 8]);
        assert_eq!(MockEmbedding::new(0).dimensions(), 1);
        // FNV-1a test vector: fixed forever.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[tokio::test]
    async fn implements_embedding() {
        let e = MockEmbedding::new(16);
        let texts = vec!["one".to_owned(), "two".to_owned()];
        let vectors = e.embed(&texts).await.unwrap();
        assert_eq!(vectors, vec![e.vector("one"), e.vector("two")]);
        assert_eq!(e.embed_one("one").await.unwrap(), e.vector("one"));
    }
}
