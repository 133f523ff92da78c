//! Parsing what the command line gives: `key=value` fields and durations.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Map, Value};

/// The JSON object of `key=value` arguments. A value is JSON when it parses as JSON (`n=3`,
/// `ok=true`, `tags=["a"]`, `name="Ada"` with the quotes), a string otherwise (`name=Ada`).
pub(crate) fn parse_fields(fields: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut object = Map::new();
    for field in fields {
        let Some((key, value)) = field.split_once('=') else {
            bail!("expected key=value, got `{field}` (e.g. query=\"What is Rust?\")");
        };
        let key = key.trim();
        if key.is_empty() {
            bail!("`{field}` has no key before `=`");
        }
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        if object.insert(key.to_owned(), value).is_some() {
            bail!("`{key}` is given twice");
        }
    }
    Ok(object)
}

/// A duration: `500ms`, `2s`, `1.5s`, `3m`, `1h`, or a number of seconds (`10`).
pub(crate) fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .with_context(|| format!("`{text}` is not a duration (e.g. 500ms, 2s, 1m)"))?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => bail!("unknown unit `{other}` in `{text}`: use ms, s, m or h"),
    };
    Duration::try_from_secs_f64(seconds).with_context(|| format!("`{text}` is out of range"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(args: &[&str]) -> anyhow::Result<Value> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        parse_fields(&args).map(Value::Object)
    }

    #[test]
    fn values_are_json_when_they_parse_else_strings() {
        assert_eq!(
            fields(&[
                "query=What is Rust?",
                "n=3",
                "ok=true",
                "tags=[\"a\",1]",
                "quoted=\"Ada\"",
                "nothing=null",
                "empty=",
                "eq=a=b",
                "obj={\"k\": 1}",
            ])
            .unwrap(),
            json!({
                "query": "What is Rust?", "n": 3, "ok": true, "tags": ["a", 1],
                "quoted": "Ada", "nothing": null, "empty": "", "eq": "a=b", "obj": {"k": 1}
            })
        );
        assert_eq!(fields(&[]).unwrap(), json!({}));
    }

    #[test]
    fn malformed_fields_are_refused_with_the_reason() {
        let error = fields(&["query"]).unwrap_err().to_string();
        assert!(error.contains("expected key=value"), "{error}");
        let error = fields(&["=3"]).unwrap_err().to_string();
        assert!(error.contains("no key"), "{error}");
        let error = fields(&["a=1", "a=2"]).unwrap_err().to_string();
        assert!(error.contains("twice"), "{error}");
    }

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("3m").unwrap(), Duration::from_secs(180));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("2 days").is_err());
    }
}
