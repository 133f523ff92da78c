//! What the examples share: helpers for reading `--flag value` arguments, the model client the
//! environment configures, and loading this project's own documents to retrieve from. The
//! workflows that several examples run and `eventflow serve --demo` serves are in the
//! `eventflow-demo` crate (`crates/eventflow-demo`).

#![warn(missing_docs)]

use std::path::{Path, PathBuf};

use eventflow_llm::{Document, META_SOURCE, OpenAiClient};

/// The value following `--name` on the command line, if given.
pub fn arg(args: &[String], name: &str) -> Option<String> {
    let flag = format!("--{name}");
    args.iter()
        .position(|a| *a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The client configured by the environment, if `OPENAI_BASE_URL` is set (and `offline` is not).
pub fn client_from_env(offline: bool) -> anyhow::Result<Option<OpenAiClient>> {
    let configured = std::env::var(OpenAiClient::BASE_URL_VAR).is_ok_and(|v| !v.trim().is_empty());
    if offline || !configured {
        return Ok(None);
    }
    let client = OpenAiClient::from_env()?;
    if client.model().is_none() {
        anyhow::bail!(
            "{} is set but {} is not: name the chat model to use (gpt-4o-mini, llama3.2, ...), \
             or pass --offline",
            OpenAiClient::BASE_URL_VAR,
            OpenAiClient::MODEL_VAR
        );
    }
    Ok(Some(client))
}

/// The workspace root, where `docs/`, `README.md` and `examples/data/` are.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `document` with `name` as its id and source.
fn named(mut document: Document, name: String) -> Document {
    document
        .metadata
        .insert(META_SOURCE.into(), name.clone().into());
    document.id = name;
    document
}

/// Every text and Markdown file under `root/folder`, named by its path relative to `root`.
pub fn load_folder(root: &Path, folder: &str) -> anyhow::Result<Vec<Document>> {
    Ok(Document::load_dir(root.join(folder))?
        .into_iter()
        .map(|document| {
            let name = format!("{folder}/{}", document.id);
            named(document, name)
        })
        .collect())
}

/// `docs/` (recursively) and `README.md` under `root`, named by their paths relative to `root`.
pub fn load_project_docs(root: &Path) -> anyhow::Result<Vec<Document>> {
    let mut documents = load_folder(root, "docs")?;
    documents.push(named(
        Document::load_file(root.join("README.md"))?,
        "README.md".to_owned(),
    ));
    Ok(documents)
}
