//! Documents, the nodes they are split into, and the [`NodeParser`] that splits them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use text_splitter::{Characters, ChunkConfig, MarkdownSplitter, TextSplitter};

use crate::LlmError;

/// The metadata key of a document's or node's source (a path relative to the loaded folder).
pub const META_SOURCE: &str = "source";
/// The metadata key of a document's file name.
pub const META_FILE_NAME: &str = "file_name";
/// The metadata key of the id of the document a node comes from.
pub const META_DOCUMENT_ID: &str = "document_id";
/// The metadata key of a node's start: a byte offset into its document's text.
pub const META_START_OFFSET: &str = "start_offset";
/// The metadata key of a node's end: a byte offset into its document's text (exclusive).
pub const META_END_OFFSET: &str = "end_offset";
/// The metadata key of a node's position among its document's nodes (0, 1, ...).
pub const META_CHUNK_INDEX: &str = "chunk_index";

/// A text and what is known about it, before it is split into [`Node`]s.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// A stable id; [`Document::load_dir`] uses the path relative to the folder.
    pub id: String,
    /// The whole text.
    pub text: String,
    /// What is known about the text (`source`, `file_name`, anything else).
    pub metadata: Map<String, Value>,
}

impl Document {
    /// A document with no metadata.
    pub fn new(id: impl Into<String>, text: impl Into<String>) -> Self {
        Document {
            id: id.into(),
            text: text.into(),
            metadata: Map::new(),
        }
    }

    /// The document with one more metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The `source` metadata, if any.
    pub fn source(&self) -> Option<&str> {
        self.metadata.get(META_SOURCE).and_then(Value::as_str)
    }

    /// Whether the text is Markdown, judged by the extension of its `source` or `file_name`
    /// (`.md`, `.markdown`).
    pub fn is_markdown(&self) -> bool {
        [META_SOURCE, META_FILE_NAME]
            .iter()
            .filter_map(|key| self.metadata.get(*key).and_then(Value::as_str))
            .any(|name| has_extension(Path::new(name), &["md", "markdown"]))
    }

    /// Loads one file (of any extension; Markdown if it ends in `.md` or `.markdown`). Its id and
    /// `source` metadata are `path` as given, with `/` separators; `file_name` is its file name.
    ///
    /// # Errors
    ///
    /// [`LlmError::Io`], naming the path, when it cannot be read (including when it is not
    /// UTF-8).
    pub fn load_file(path: impl AsRef<Path>) -> Result<Document, LlmError> {
        let path = path.as_ref();
        Self::read(path, path)
    }

    /// Reads `path` into a document whose id and source are `relative` with `/` separators.
    fn read(path: &Path, relative: &Path) -> Result<Document, LlmError> {
        let text = std::fs::read_to_string(path).map_err(|source| io_error(path, source))?;
        let mut source = relative.to_string_lossy().into_owned();
        if std::path::MAIN_SEPARATOR != '/' {
            source = source.replace(std::path::MAIN_SEPARATOR, "/");
        }
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Document::new(source.clone(), text)
            .with_metadata(META_SOURCE, source)
            .with_metadata(META_FILE_NAME, file_name))
    }

    /// Loads every `.txt`, `.md` and `.markdown` file under `dir`, recursively, in sorted path
    /// order; hidden files and folders (names starting with `.`) and symbolic links to folders
    /// are skipped.
    ///
    /// Each document's id and `source` metadata is its path relative to `dir` with `/`
    /// separators (`guide/intro.md`); `file_name` is its file name. This reads the files
    /// synchronously.
    ///
    /// # Errors
    ///
    /// [`LlmError::Io`], naming the path, when `dir` or a file in it cannot be read (including a
    /// file that is not UTF-8).
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Vec<Document>, LlmError> {
        let dir = dir.as_ref();
        let meta = std::fs::metadata(dir).map_err(|source| io_error(dir, source))?;
        if !meta.is_dir() {
            return Err(io_error(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            ));
        }
        let mut files = Vec::new();
        collect_files(dir, &mut files)?;
        files.sort();
        files
            .into_iter()
            .map(|path| Self::read(&path, path.strip_prefix(dir).unwrap_or(&path)))
            .collect()
    }
}

fn io_error(path: &Path, source: std::io::Error) -> LlmError {
    LlmError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| extensions.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), LlmError> {
    let entries = std::fs::read_dir(dir).map_err(|source| io_error(dir, source))?;
    for entry in entries {
        let entry = entry.map_err(|source| io_error(dir, source))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let file_type = entry
            .file_type()
            .map_err(|source| io_error(&path, source))?;
        if file_type.is_dir() {
            collect_files(&path, out)?;
            continue;
        }
        // A symbolic link counts when it points to a file; links to folders are not followed
        // (they could make a cycle).
        let is_file = file_type.is_file()
            || (file_type.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_file()));
        if is_file && has_extension(&path, &["txt", "md", "markdown"]) {
            out.push(path);
        }
    }
    Ok(())
}

/// A piece of a [`Document`]: what is embedded, indexed and retrieved.
///
/// Nodes made by a [`NodeParser`] carry their document's metadata plus `document_id`,
/// `chunk_index`, `start_offset` and `end_offset`, the byte range of the node's text in the
/// document's text: `&document.text[start..end] == node.text`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// A stable id: `{document id}#{chunk index}` for nodes made by a [`NodeParser`].
    pub id: String,
    /// The text.
    pub text: String,
    /// The document's metadata and the node's position in it.
    pub metadata: Map<String, Value>,
}

impl Node {
    /// A node with no metadata.
    pub fn new(id: impl Into<String>, text: impl Into<String>) -> Self {
        Node {
            id: id.into(),
            text: text.into(),
            metadata: Map::new(),
        }
    }

    /// The node with one more metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The `source` metadata (the document's path), if any.
    pub fn source(&self) -> Option<&str> {
        self.metadata.get(META_SOURCE).and_then(Value::as_str)
    }

    /// The id of the document the node comes from, if known.
    pub fn document_id(&self) -> Option<&str> {
        self.metadata.get(META_DOCUMENT_ID).and_then(Value::as_str)
    }

    /// The byte range of the node's text in its document's text, if known.
    pub fn offsets(&self) -> Option<std::ops::Range<usize>> {
        let get = |key| {
            self.metadata
                .get(key)
                .and_then(Value::as_u64)
                .map(|n| n as usize)
        };
        Some(get(META_START_OFFSET)?..get(META_END_OFFSET)?)
    }
}

/// Splits documents into [`Node`]s of at most `chunk_size` characters, consecutive nodes sharing
/// up to `chunk_overlap` characters.
///
/// Splitting follows the text's structure (the `text-splitter` crate): Markdown documents
/// ([`Document::is_markdown`]) are split at headings, blocks and then sentences; other texts at
/// paragraphs, lines, sentences and words. Chunks are trimmed of surrounding whitespace;
/// whitespace-only documents give no nodes.
#[derive(Debug)]
pub struct NodeParser {
    chunk_size: usize,
    chunk_overlap: usize,
    text: TextSplitter<Characters>,
    markdown: MarkdownSplitter<Characters>,
}

impl NodeParser {
    /// The default chunk size, in characters.
    pub const DEFAULT_CHUNK_SIZE: usize = 1000;
    /// The default overlap, in characters.
    pub const DEFAULT_CHUNK_OVERLAP: usize = 150;

    /// A parser making chunks of at most `chunk_size` characters overlapping by up to
    /// `chunk_overlap` characters.
    ///
    /// # Errors
    ///
    /// [`LlmError::Config`] when `chunk_size` is 0 or `chunk_overlap` is not smaller than it.
    pub fn new(chunk_size: usize, chunk_overlap: usize) -> Result<Self, LlmError> {
        if chunk_size == 0 {
            return Err(LlmError::Config("chunk size must be at least 1".into()));
        }
        let config = || {
            ChunkConfig::new(chunk_size)
                .with_overlap(chunk_overlap)
                .map_err(|e| {
                    LlmError::Config(format!(
                        "chunk overlap {chunk_overlap} with chunk size {chunk_size}: {e}"
                    ))
                })
        };
        Ok(NodeParser {
            chunk_size,
            chunk_overlap,
            text: TextSplitter::new(config()?),
            markdown: MarkdownSplitter::new(config()?),
        })
    }

    /// The largest chunk, in characters.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// The overlap between consecutive chunks, in characters.
    pub fn chunk_overlap(&self) -> usize {
        self.chunk_overlap
    }

    /// The byte ranges of the chunks of `text`, in order; `markdown` picks the Markdown-aware
    /// splitter.
    pub fn split_text(&self, text: &str, markdown: bool) -> Vec<std::ops::Range<usize>> {
        let ranges = |(offset, chunk): (usize, &str)| offset..offset + chunk.len();
        if markdown {
            self.markdown.chunk_indices(text).map(ranges).collect()
        } else {
            self.text.chunk_indices(text).map(ranges).collect()
        }
    }

    /// The nodes of one document.
    pub fn parse(&self, document: &Document) -> Vec<Node> {
        self.split_text(&document.text, document.is_markdown())
            .into_iter()
            .enumerate()
            .map(|(index, range)| {
                let mut metadata = document.metadata.clone();
                metadata.insert(META_DOCUMENT_ID.into(), document.id.clone().into());
                metadata.insert(META_CHUNK_INDEX.into(), index.into());
                metadata.insert(META_START_OFFSET.into(), range.start.into());
                metadata.insert(META_END_OFFSET.into(), range.end.into());
                Node {
                    id: format!("{}#{index}", document.id),
                    text: document.text[range].to_owned(),
                    metadata,
                }
            })
            .collect()
    }

    /// The nodes of several documents, in order.
    pub fn parse_documents(&self, documents: &[Document]) -> Vec<Node> {
        documents.iter().flat_map(|d| self.parse(d)).collect()
    }
}

impl Default for NodeParser {
    /// [`NodeParser::DEFAULT_CHUNK_SIZE`] characters overlapping by
    /// [`NodeParser::DEFAULT_CHUNK_OVERLAP`].
    fn default() -> Self {
        NodeParser::new(Self::DEFAULT_CHUNK_SIZE, Self::DEFAULT_CHUNK_OVERLAP)
            .expect("the default chunk configuration is valid")
    }
}

impl Clone for NodeParser {
    fn clone(&self) -> Self {
        NodeParser::new(self.chunk_size, self.chunk_overlap)
            .expect("a parser's configuration was valid when it was made")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_exact_for_text_and_markdown() {
        let text = "# Title\n\nFirst paragraph with some words. Another sentence here.\n\n\
                    ## Section\n\nMore text — with ünïcödé — and more, and more, and more words.\n";
        let parser = NodeParser::new(40, 10).unwrap();
        for markdown in [false, true] {
            let doc = Document::new("d", text)
                .with_metadata(META_SOURCE, if markdown { "d.md" } else { "d.txt" });
            assert_eq!(doc.is_markdown(), markdown);
            let nodes = parser.parse(&doc);
            assert!(nodes.len() > 2);
            for (i, node) in nodes.iter().enumerate() {
                let range = node.offsets().unwrap();
                assert_eq!(&doc.text[range], node.text);
                assert!(node.text.chars().count() <= 40);
                assert_eq!(node.id, format!("d#{i}"));
                assert_eq!(node.document_id(), Some("d"));
            }
        }
    }

    #[test]
    fn bad_configuration_is_an_error() {
        assert!(matches!(NodeParser::new(0, 0), Err(LlmError::Config(_))));
        assert!(matches!(NodeParser::new(10, 10), Err(LlmError::Config(_))));
        assert!(NodeParser::new(10, 9).is_ok());
    }

    #[test]
    fn blank_documents_give_no_nodes() {
        let parser = NodeParser::default();
        assert!(parser.parse(&Document::new("e", "")).is_empty());
        assert!(parser.parse(&Document::new("w", "  \n\t ")).is_empty());
    }
}
