//! [`VectorStoreIndex`]: nodes and their embeddings in memory, searched by cosine similarity.

use std::collections::HashMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use futures::future::BoxFuture;
use instant_distance::HnswMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::retriever::TopK;
use crate::{Document, Embedding, LlmError, Node, NodeParser, NodeWithScore, Retriever};

/// The `format` field of a saved index's header line.
pub const VECTOR_INDEX_FORMAT: &str = "eventflow-llm/vector-index";
/// The version of the saved-index format this build writes and reads.
pub const VECTOR_INDEX_FORMAT_VERSION: u32 = 1;

/// How a [`VectorStoreIndex`] embeds and searches.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorIndexConfig {
    /// Above this many vectors, searches go through an approximate (HNSW) index instead of
    /// comparing the query with every vector. Exact search over 20 000 vectors of 1 536
    /// dimensions takes some milliseconds; the approximate index answers in well under one.
    pub approximate_threshold: usize,
    /// How many texts are sent to the embedding model at once.
    pub embed_batch_size: usize,
    /// The HNSW `ef` search parameter: candidates kept while searching (more is slower and
    /// more accurate). Approximate search serves `top_k` up to this; larger `top_k` are exact.
    pub ef_search: usize,
    /// The HNSW `ef` construction parameter.
    pub ef_construction: usize,
    /// The seed of the HNSW level generator.
    pub seed: u64,
}

impl Default for VectorIndexConfig {
    fn default() -> Self {
        VectorIndexConfig {
            approximate_threshold: 20_000,
            embed_batch_size: 64,
            ef_search: 100,
            ef_construction: 100,
            seed: 0x5eed_e7e1_f10e,
        }
    }
}

/// An in-memory vector index: nodes, their embeddings (L2-normalized) and cosine-similarity
/// search, as LlamaIndex's `VectorStoreIndex`.
///
/// Searches are exact (every vector compared, the best `top_k` kept in a bounded heap) until the
/// index holds more than [`VectorIndexConfig::approximate_threshold`] vectors; then they go
/// through an HNSW index (`instant-distance`), built on the first search and rebuilt on the first
/// search after an insert. [`VectorStoreIndex::search_exact`] is always available.
///
/// Cloning is cheap and clones share the same nodes: an insert through one is seen by all, and
/// by the retrievers made by [`VectorStoreIndex::as_retriever`].
#[derive(Clone)]
pub struct VectorStoreIndex {
    shared: Arc<Shared>,
}

struct Shared {
    embedding: Arc<dyn Embedding>,
    store: RwLock<Store>,
    approximate: Mutex<Option<Approximate>>,
    /// Held while an approximate index is built in the background, so concurrent first searches
    /// build it once.
    building: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Store {
    config: VectorIndexConfig,
    nodes: Vec<Node>,
    vectors: Vec<Arc<[f32]>>,
    positions: HashMap<String, usize>,
    dimensions: Option<usize>,
    /// Bumped by every change, to tell a stale approximate index.
    generation: u64,
}

struct Approximate {
    generation: u64,
    map: Arc<HnswMap<HnswPoint, usize>>,
}

/// A normalized vector as the HNSW index sees it; cloning shares the data.
#[derive(Clone)]
struct HnswPoint(Arc<[f32]>);

impl instant_distance::Point for HnswPoint {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - dot(&self.0, &other.0)
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// The vector scaled to length 1 (the zero vector stays zero).
///
/// # Errors
///
/// [`LlmError::InvalidData`] when a component is NaN or infinite.
fn normalized(mut vector: Vec<f32>, what: &str) -> Result<Vec<f32>, LlmError> {
    if vector.iter().any(|x| !x.is_finite()) {
        return Err(LlmError::InvalidData(format!(
            "{what} has a NaN or infinite component"
        )));
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    Ok(vector)
}

impl VectorStoreIndex {
    /// An empty index embedding with `embedding`, with the default configuration.
    pub fn new(embedding: Arc<dyn Embedding>) -> Self {
        Self::with_config(embedding, VectorIndexConfig::default())
    }

    /// An empty index embedding with `embedding`, with `config`.
    pub fn with_config(embedding: Arc<dyn Embedding>, config: VectorIndexConfig) -> Self {
        VectorStoreIndex {
            shared: Arc::new(Shared {
                embedding,
                store: RwLock::new(Store {
                    config,
                    ..Store::default()
                }),
                approximate: Mutex::new(None),
                building: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Splits `documents` with `parser` and indexes the nodes, embedding them in batches.
    ///
    /// # Errors
    ///
    /// The embedding model's error, or [`LlmError::InvalidData`] when it returns the wrong
    /// number of vectors, vectors of different lengths, or NaN.
    pub async fn from_documents(
        documents: &[Document],
        parser: &NodeParser,
        embedding: Arc<dyn Embedding>,
    ) -> Result<Self, LlmError> {
        Self::from_nodes(parser.parse_documents(documents), embedding).await
    }

    /// Indexes `nodes`, embedding them in batches.
    ///
    /// # Errors
    ///
    /// As [`VectorStoreIndex::from_documents`].
    pub async fn from_nodes(
        nodes: Vec<Node>,
        embedding: Arc<dyn Embedding>,
    ) -> Result<Self, LlmError> {
        let index = Self::new(embedding);
        index.insert(nodes).await?;
        Ok(index)
    }

    /// The configuration.
    pub fn config(&self) -> VectorIndexConfig {
        read(&self.shared.store).config.clone()
    }

    /// Changes the configuration (for this index and all its clones).
    pub fn set_config(&self, config: VectorIndexConfig) {
        let mut store = write(&self.shared.store);
        store.config = config;
        // The HNSW parameters may have changed.
        store.generation += 1;
    }

    /// The embedding model the index embeds nodes and queries with.
    pub fn embedding(&self) -> Arc<dyn Embedding> {
        Arc::clone(&self.shared.embedding)
    }

    /// How many nodes it holds.
    pub fn len(&self) -> usize {
        read(&self.shared.store).nodes.len()
    }

    /// Whether it holds no node.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The length of its vectors, once it holds one.
    pub fn dimensions(&self) -> Option<usize> {
        read(&self.shared.store).dimensions
    }

    /// All its nodes, in insertion order.
    pub fn nodes(&self) -> Vec<Node> {
        read(&self.shared.store).nodes.clone()
    }

    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<Node> {
        let store = read(&self.shared.store);
        store.positions.get(id).map(|&p| store.nodes[p].clone())
    }

    /// Splits `documents` with `parser` and inserts the nodes (see [`VectorStoreIndex::insert`]).
    ///
    /// # Errors
    ///
    /// As [`VectorStoreIndex::insert`].
    pub async fn insert_documents(
        &self,
        documents: &[Document],
        parser: &NodeParser,
    ) -> Result<(), LlmError> {
        self.insert(parser.parse_documents(documents)).await
    }

    /// Embeds `nodes` (in batches of [`VectorIndexConfig::embed_batch_size`]) and inserts them.
    /// A node whose id is already in the index replaces the old one.
    ///
    /// Nothing is inserted if any batch fails.
    ///
    /// # Errors
    ///
    /// The embedding model's error, or [`LlmError::InvalidData`] when it returns the wrong
    /// number of vectors, vectors of another length than the index's, or NaN.
    pub async fn insert(&self, nodes: Vec<Node>) -> Result<(), LlmError> {
        if nodes.is_empty() {
            return Ok(());
        }
        let batch_size = read(&self.shared.store).config.embed_batch_size.max(1);
        let mut vectors = Vec::with_capacity(nodes.len());
        let texts: Vec<String> = nodes.iter().map(|n| n.text.clone()).collect();
        for batch in texts.chunks(batch_size) {
            let embedded = self.shared.embedding.embed(batch).await?;
            if embedded.len() != batch.len() {
                return Err(LlmError::InvalidData(format!(
                    "the embedding model returned {} vectors for {} texts",
                    embedded.len(),
                    batch.len()
                )));
            }
            vectors.extend(embedded);
        }
        tracing::debug!(nodes = nodes.len(), "embedded nodes for the vector index");
        self.insert_embedded(nodes, vectors)
    }

    /// Inserts nodes with vectors computed elsewhere (normalized here). A node whose id is
    /// already in the index replaces the old one.
    ///
    /// # Errors
    ///
    /// [`LlmError::InvalidData`] when there are not as many vectors as nodes, a vector's
    /// length differs from the others' (or the index's), or has NaN; nothing is inserted then.
    pub fn insert_embedded(
        &self,
        nodes: Vec<Node>,
        vectors: Vec<Vec<f32>>,
    ) -> Result<(), LlmError> {
        if nodes.len() != vectors.len() {
            return Err(LlmError::InvalidData(format!(
                "{} nodes but {} vectors",
                nodes.len(),
                vectors.len()
            )));
        }
        if nodes.is_empty() {
            return Ok(());
        }
        let mut store = write(&self.shared.store);
        let dimensions = store.dimensions.unwrap_or(vectors[0].len());
        let mut prepared = Vec::with_capacity(vectors.len());
        for (node, vector) in nodes.iter().zip(vectors) {
            if vector.len() != dimensions {
                return Err(LlmError::InvalidData(format!(
                    "the vector of node {:?} has {} dimensions, the index {dimensions}",
                    node.id,
                    vector.len()
                )));
            }
            let vector = normalized(vector, &format!("the vector of node {:?}", node.id))?;
            prepared.push(Arc::<[f32]>::from(vector));
        }
        store.dimensions = Some(dimensions);
        for (node, vector) in nodes.into_iter().zip(prepared) {
            match store.positions.get(&node.id) {
                Some(&position) => {
                    store.nodes[position] = node;
                    store.vectors[position] = vector;
                }
                None => {
                    let position = store.nodes.len();
                    store.positions.insert(node.id.clone(), position);
                    store.nodes.push(node);
                    store.vectors.push(vector);
                }
            }
        }
        store.generation += 1;
        Ok(())
    }

    /// The `top_k` nodes most similar to `query` (embedded with the index's model), best first,
    /// scored by cosine similarity. An empty query, an empty index or `top_k == 0` give an empty
    /// list without calling the model.
    ///
    /// # Errors
    ///
    /// The embedding model's error, or [`LlmError::InvalidData`] when the query's vector does
    /// not have the index's length.
    pub async fn search(&self, query: &str, top_k: usize) -> Result<Vec<NodeWithScore>, LlmError> {
        if query.trim().is_empty() || top_k == 0 || self.is_empty() {
            return Ok(Vec::new());
        }
        let vector = self.shared.embedding.embed_one(query).await?;
        self.search_by_vector(&vector, top_k).await
    }

    /// The `top_k` nodes most similar to `vector`, best first: exact search up to
    /// [`VectorIndexConfig::approximate_threshold`] vectors, approximate beyond (building the
    /// approximate index on a blocking thread when it is missing or stale).
    ///
    /// A zero query vector matches nothing (an empty list).
    ///
    /// # Errors
    ///
    /// [`LlmError::InvalidData`] when `vector` does not have the index's length or has NaN.
    pub async fn search_by_vector(
        &self,
        vector: &[f32],
        top_k: usize,
    ) -> Result<Vec<NodeWithScore>, LlmError> {
        let (len, threshold) = {
            let store = read(&self.shared.store);
            (store.nodes.len(), store.config.approximate_threshold)
        };
        if len > threshold {
            self.build_approximate_index().await;
            self.search_approximate(vector, top_k)
        } else {
            self.search_exact(vector, top_k)
        }
    }

    /// The `top_k` nodes most similar to `vector` by exact search: every vector compared, the
    /// best kept in a heap of `top_k` (ties: earlier inserted first).
    ///
    /// # Errors
    ///
    /// As [`VectorStoreIndex::search_by_vector`].
    pub fn search_exact(
        &self,
        vector: &[f32],
        top_k: usize,
    ) -> Result<Vec<NodeWithScore>, LlmError> {
        let store = read(&self.shared.store);
        let Some(query) = prepare_query(&store, vector, top_k)? else {
            return Ok(Vec::new());
        };
        let mut top = TopK::new(top_k);
        for (position, v) in store.vectors.iter().enumerate() {
            top.push(dot(&query, v), position);
        }
        Ok(top
            .into_sorted()
            .into_iter()
            .map(|s| NodeWithScore::new(store.nodes[s.position].clone(), s.score))
            .collect())
    }

    /// The `top_k` nodes most similar to `vector` by the approximate (HNSW) index, whatever the
    /// index's size; builds the approximate index on this thread when it is missing or stale.
    /// Falls back to exact search when `top_k` exceeds [`VectorIndexConfig::ef_search`] or the
    /// approximate index finds fewer nodes than asked for. Scores are exact cosine similarities.
    ///
    /// # Errors
    ///
    /// As [`VectorStoreIndex::search_by_vector`].
    pub fn search_approximate(
        &self,
        vector: &[f32],
        top_k: usize,
    ) -> Result<Vec<NodeWithScore>, LlmError> {
        {
            let store = read(&self.shared.store);
            if prepare_query(&store, vector, top_k)?.is_none() {
                return Ok(Vec::new());
            }
            if top_k > store.config.ef_search {
                drop(store);
                return self.search_exact(vector, top_k);
            }
        }
        let (generation, map) = self.approximate_index();
        let store = read(&self.shared.store);
        if generation != store.generation {
            // An insert raced with the build: answer exactly rather than build again.
            drop(store);
            return self.search_exact(vector, top_k);
        }
        let Some(query) = prepare_query(&store, vector, top_k)? else {
            return Ok(Vec::new());
        };
        let wanted = top_k.min(store.nodes.len());
        let mut search = instant_distance::Search::default();
        let point = HnswPoint(Arc::from(query.as_slice()));
        let mut found: Vec<NodeWithScore> = map
            .search(&point, &mut search)
            .take(wanted)
            .map(|item| {
                let position = *item.value;
                NodeWithScore::new(
                    store.nodes[position].clone(),
                    dot(&query, &store.vectors[position]),
                )
            })
            .collect();
        if found.len() < wanted {
            drop(store);
            return self.search_exact(vector, top_k);
        }
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(found)
    }

    /// Builds the approximate index now, on a blocking thread (when called within a Tokio
    /// runtime), unless an up-to-date one exists. Searches build it when needed; call this to
    /// pay the cost up front.
    pub async fn build_approximate_index(&self) {
        if self.current_approximate().is_some() {
            return;
        }
        let _guard = self.shared.building.lock().await;
        if self.current_approximate().is_some() {
            return;
        }
        let (generation, points, builder) = self.approximate_inputs();
        let built = match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                match handle
                    .spawn_blocking(move || build_hnsw(points, builder))
                    .await
                {
                    Ok(map) => map,
                    Err(e) => std::panic::resume_unwind(e.into_panic()),
                }
            }
            Err(_) => build_hnsw(points, builder),
        };
        self.store_approximate(generation, built);
    }

    /// The approximate index if it is up to date.
    fn current_approximate(&self) -> Option<(u64, Arc<HnswMap<HnswPoint, usize>>)> {
        let generation = read(&self.shared.store).generation;
        let approximate = self
            .shared
            .approximate
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        approximate
            .as_ref()
            .filter(|a| a.generation == generation)
            .map(|a| (a.generation, Arc::clone(&a.map)))
    }

    /// The approximate index and the generation it was built for, built on this thread if
    /// missing or stale.
    fn approximate_index(&self) -> (u64, Arc<HnswMap<HnswPoint, usize>>) {
        if let Some(current) = self.current_approximate() {
            return current;
        }
        let (generation, points, builder) = self.approximate_inputs();
        let map = build_hnsw(points, builder);
        self.store_approximate(generation, map)
    }

    fn approximate_inputs(&self) -> (u64, Vec<HnswPoint>, instant_distance::Builder) {
        let store = read(&self.shared.store);
        let points = store
            .vectors
            .iter()
            .map(|v| HnswPoint(Arc::clone(v)))
            .collect();
        let builder = instant_distance::Builder::default()
            .ef_search(store.config.ef_search.max(1))
            .ef_construction(store.config.ef_construction.max(1))
            .seed(store.config.seed);
        (store.generation, points, builder)
    }

    fn store_approximate(
        &self,
        generation: u64,
        map: HnswMap<HnswPoint, usize>,
    ) -> (u64, Arc<HnswMap<HnswPoint, usize>>) {
        let map = Arc::new(map);
        let mut approximate = self
            .shared
            .approximate
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let newer = approximate
            .as_ref()
            .is_some_and(|a| a.generation > generation);
        if !newer {
            *approximate = Some(Approximate {
                generation,
                map: Arc::clone(&map),
            });
        }
        (generation, map)
    }

    /// A retriever returning the `top_k` nodes most similar to the query (LlamaIndex's
    /// `index.as_retriever(similarity_top_k=...)`). It shares this index.
    pub fn as_retriever(&self, top_k: usize) -> VectorRetriever {
        VectorRetriever {
            index: self.clone(),
            top_k,
        }
    }

    /// Saves the index to `path` as JSON lines: a header line
    /// (`{"format":"eventflow-llm/vector-index","version":1,"dimensions":...,"count":...}`), then
    /// one line per node with its id, text, metadata and normalized embedding.
    ///
    /// The file is written next to `path` under a temporary name, synced, then renamed over
    /// `path`, so a reader never sees half a file. This writes synchronously.
    ///
    /// # Errors
    ///
    /// [`LlmError::Io`] when the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), LlmError> {
        let path = path.as_ref();
        let file_name = path.file_name().ok_or_else(|| LlmError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
        })?;
        let temporary: PathBuf = path.with_file_name(format!(
            ".{}.tmp-{}-{:016x}",
            file_name.to_string_lossy(),
            std::process::id(),
            fastrand::u64(..)
        ));
        let result = self.write_to(&temporary, path).and_then(|()| {
            std::fs::rename(&temporary, path).map_err(|source| LlmError::Io {
                path: path.to_path_buf(),
                source,
            })
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        result
    }

    /// Writes the index to `temporary`, reporting errors as errors about `path`.
    fn write_to(&self, temporary: &Path, path: &Path) -> Result<(), LlmError> {
        let io = |source| LlmError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::create(temporary).map_err(io)?;
        let mut out = BufWriter::new(file);
        let store = read(&self.shared.store);
        let header = Header {
            format: VECTOR_INDEX_FORMAT.to_owned(),
            version: VECTOR_INDEX_FORMAT_VERSION,
            dimensions: store.dimensions,
            count: store.nodes.len(),
        };
        let to_io = |e: serde_json::Error| std::io::Error::other(e);
        serde_json::to_writer(&mut out, &header).map_err(|e| io(to_io(e)))?;
        out.write_all(b"\n").map_err(io)?;
        for (node, vector) in store.nodes.iter().zip(&store.vectors) {
            let record = RecordRef {
                id: &node.id,
                text: &node.text,
                metadata: &node.metadata,
                embedding: vector,
            };
            serde_json::to_writer(&mut out, &record).map_err(|e| io(to_io(e)))?;
            out.write_all(b"\n").map_err(io)?;
        }
        drop(store);
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)
    }

    /// Loads an index saved by [`VectorStoreIndex::save`], to be queried with `embedding` (which
    /// should be the model the index was built with). The stored vectors are used as they are.
    ///
    /// # Errors
    ///
    /// [`LlmError::Io`] when the file cannot be read; [`LlmError::InvalidData`] naming the file
    /// and line when it is not a saved index, is of another format version, or is damaged
    /// (truncated, wrong vector lengths, duplicate ids, NaN).
    pub fn load(path: impl AsRef<Path>, embedding: Arc<dyn Embedding>) -> Result<Self, LlmError> {
        let path = path.as_ref();
        let io = |source| LlmError::Io {
            path: path.to_path_buf(),
            source,
        };
        let invalid = |line: usize, message: String| {
            LlmError::InvalidData(format!("{}:{line}: {message}", path.display()))
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut lines = std::io::BufReader::new(file).lines();
        let first = lines
            .next()
            .transpose()
            .map_err(io)?
            .ok_or_else(|| invalid(1, "empty file, not a saved vector index".into()))?;
        let header: Value = serde_json::from_str(&first)
            .map_err(|e| invalid(1, format!("not a saved vector index: {e}")))?;
        if header.get("format").and_then(Value::as_str) != Some(VECTOR_INDEX_FORMAT) {
            return Err(invalid(
                1,
                format!("not a saved vector index (no \"format\": \"{VECTOR_INDEX_FORMAT}\")"),
            ));
        }
        match header.get("version").and_then(Value::as_u64) {
            Some(v) if v == u64::from(VECTOR_INDEX_FORMAT_VERSION) => {}
            Some(v) => {
                return Err(invalid(
                    1,
                    format!(
                        "format version {v}, this build reads version {VECTOR_INDEX_FORMAT_VERSION}"
                    ),
                ));
            }
            None => return Err(invalid(1, "no format version".into())),
        }
        let header: Header =
            serde_json::from_value(header).map_err(|e| invalid(1, format!("bad header: {e}")))?;

        let index = Self::new(embedding);
        {
            let mut store = write(&index.shared.store);
            store.dimensions = header.dimensions;
            for (i, line) in lines.enumerate() {
                let number = i + 2;
                let line = line.map_err(io)?;
                if line.trim().is_empty() {
                    continue;
                }
                let record: Record = serde_json::from_str(&line)
                    .map_err(|e| invalid(number, format!("bad node record: {e}")))?;
                if Some(record.embedding.len()) != header.dimensions {
                    return Err(invalid(
                        number,
                        format!(
                            "node {:?} has {} dimensions, the header says {:?}",
                            record.id,
                            record.embedding.len(),
                            header.dimensions
                        ),
                    ));
                }
                if record.embedding.iter().any(|x| !x.is_finite()) {
                    return Err(invalid(
                        number,
                        format!("node {:?} has a non-finite component", record.id),
                    ));
                }
                if store.positions.contains_key(&record.id) {
                    return Err(invalid(
                        number,
                        format!("duplicate node id {:?}", record.id),
                    ));
                }
                let position = store.nodes.len();
                store.positions.insert(record.id.clone(), position);
                store.nodes.push(Node {
                    id: record.id,
                    text: record.text,
                    metadata: record.metadata,
                });
                store.vectors.push(Arc::from(record.embedding));
            }
            if store.nodes.len() != header.count {
                return Err(invalid(
                    header.count + 1,
                    format!(
                        "the header announces {} nodes, the file has {} (truncated?)",
                        header.count,
                        store.nodes.len()
                    ),
                ));
            }
            store.generation += 1;
        }
        Ok(index)
    }
}

/// Checks a query vector against the index and normalizes it; `None` when nothing can match.
fn prepare_query(
    store: &Store,
    vector: &[f32],
    top_k: usize,
) -> Result<Option<Vec<f32>>, LlmError> {
    if top_k == 0 || store.nodes.is_empty() {
        return Ok(None);
    }
    if let Some(dimensions) = store.dimensions
        && dimensions != vector.len()
    {
        return Err(LlmError::InvalidData(format!(
            "the query vector has {} dimensions, the index {dimensions}",
            vector.len()
        )));
    }
    let query = normalized(vector.to_vec(), "the query vector")?;
    if query.iter().all(|&x| x == 0.0) {
        return Ok(None);
    }
    Ok(Some(query))
}

fn build_hnsw(
    points: Vec<HnswPoint>,
    builder: instant_distance::Builder,
) -> HnswMap<HnswPoint, usize> {
    let started = std::time::Instant::now();
    let values: Vec<usize> = (0..points.len()).collect();
    let count = points.len();
    let map = builder.build(points, values);
    tracing::debug!(vectors = count, elapsed = ?started.elapsed(), "built the approximate vector index");
    map
}

impl std::fmt::Debug for VectorStoreIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let store = read(&self.shared.store);
        f.debug_struct("VectorStoreIndex")
            .field("nodes", &store.nodes.len())
            .field("dimensions", &store.dimensions)
            .field("config", &store.config)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    dimensions: Option<usize>,
    count: usize,
}

#[derive(Serialize)]
struct RecordRef<'a> {
    id: &'a str,
    text: &'a str,
    metadata: &'a Map<String, Value>,
    embedding: &'a [f32],
}

#[derive(Deserialize)]
struct Record {
    id: String,
    text: String,
    #[serde(default)]
    metadata: Map<String, Value>,
    embedding: Vec<f32>,
}

/// Retrieves from a [`VectorStoreIndex`] by cosine similarity with the query's embedding; made by
/// [`VectorStoreIndex::as_retriever`].
#[derive(Clone, Debug)]
pub struct VectorRetriever {
    index: VectorStoreIndex,
    top_k: usize,
}

impl VectorRetriever {
    /// How many nodes it returns at most.
    pub fn top_k(&self) -> usize {
        self.top_k
    }

    /// The index it searches.
    pub fn index(&self) -> &VectorStoreIndex {
        &self.index
    }
}

impl Retriever for VectorRetriever {
    fn retrieve<'a>(
        &'a self,
        query: &'a str,
    ) -> BoxFuture<'a, Result<Vec<NodeWithScore>, LlmError>> {
        Box::pin(self.index.search(query, self.top_k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MockEmbedding;

    fn index() -> VectorStoreIndex {
        VectorStoreIndex::new(Arc::new(MockEmbedding::new(4)))
    }

    #[test]
    fn exact_search_ranks_by_cosine_and_normalizes() {
        let index = index();
        index
            .insert_embedded(
                vec![
                    Node::new("x", "x"),
                    Node::new("y", "y"),
                    Node::new("xy", "xy"),
                ],
                vec![
                    vec![2.0, 0.0, 0.0, 0.0],
                    vec![0.0, 3.0, 0.0, 0.0],
                    vec![1.0, 1.0, 0.0, 0.0],
                ],
            )
            .unwrap();
        let got = index.search_exact(&[5.0, 0.0, 0.0, 0.0], 2).unwrap();
        assert_eq!(
            got.iter().map(|n| n.node.id.as_str()).collect::<Vec<_>>(),
            ["x", "xy"]
        );
        assert!((got[0].score - 1.0).abs() < 1e-6);
        assert!((got[1].score - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        // Zero query, top_k 0, wrong length.
        assert!(index.search_exact(&[0.0; 4], 2).unwrap().is_empty());
        assert!(index.search_exact(&[1.0; 4], 0).unwrap().is_empty());
        assert!(matches!(
            index.search_exact(&[1.0; 3], 2),
            Err(LlmError::InvalidData(_))
        ));
    }

    #[test]
    fn insert_replaces_same_id_and_rejects_bad_vectors() {
        let index = index();
        index
            .insert_embedded(vec![Node::new("a", "old")], vec![vec![1.0, 0.0, 0.0, 0.0]])
            .unwrap();
        index
            .insert_embedded(vec![Node::new("a", "new")], vec![vec![0.0, 1.0, 0.0, 0.0]])
            .unwrap();
        assert_eq!(index.len(), 1);
        assert_eq!(index.node("a").unwrap().text, "new");
        let err = index.insert_embedded(vec![Node::new("b", "b")], vec![vec![1.0; 3]]);
        assert!(matches!(err, Err(LlmError::InvalidData(_))));
        let err = index.insert_embedded(vec![Node::new("c", "c")], vec![vec![f32::NAN; 4]]);
        assert!(matches!(err, Err(LlmError::InvalidData(_))));
        let err = index.insert_embedded(vec![Node::new("d", "d")], vec![]);
        assert!(matches!(err, Err(LlmError::InvalidData(_))));
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn approximate_index_is_rebuilt_after_insert() {
        let index = index();
        index
            .insert_embedded(vec![Node::new("a", "a")], vec![vec![1.0, 0.0, 0.0, 0.0]])
            .unwrap();
        let got = index.search_approximate(&[0.0, 1.0, 0.0, 0.0], 1).unwrap();
        assert_eq!(got[0].node.id, "a");
        index
            .insert_embedded(vec![Node::new("b", "b")], vec![vec![0.0, 1.0, 0.0, 0.0]])
            .unwrap();
        let got = index.search_approximate(&[0.0, 1.0, 0.0, 0.0], 1).unwrap();
        assert_eq!(got[0].node.id, "b");
    }

    #[tokio::test]
    async fn the_threshold_switches_to_approximate_search() {
        let index = index();
        index.set_config(VectorIndexConfig {
            approximate_threshold: 1,
            ..VectorIndexConfig::default()
        });
        index
            .insert_embedded(
                vec![Node::new("a", "a"), Node::new("b", "b")],
                vec![vec![1.0, 0.0, 0.0, 0.0], vec![0.0, 1.0, 0.0, 0.0]],
            )
            .unwrap();
        let got = index
            .search_by_vector(&[0.1, 1.0, 0.0, 0.0], 5)
            .await
            .unwrap();
        assert_eq!(
            got.iter().map(|n| n.node.id.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert!(index.current_approximate().is_some());
    }
}
