//! Helpers shared by the examples: reading `--flag value` arguments, and the model client the
//! environment configures.

use eventflow_llm::OpenAiClient;

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
