//! Dotted paths into the context's key/value state, as the reference's state store reads them:
//! `user.name` is the `name` field of the object under `user`, and `items.0` the first element
//! of the array under `items`. A path's first segment is the top-level key, which is what a
//! durable run journals when a step writes anywhere below it.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// The context's key/value state: top-level keys, JSON values below.
type KeyValues = HashMap<String, Value>;

/// Where a write along a path cannot go: `at` (a prefix of the path) holds a value that is
/// neither an object nor an array with that index.
#[derive(Debug)]
pub(crate) struct NotAContainer {
    pub(crate) at: String,
}

/// The top-level key of `path`.
pub(crate) fn top_key(path: &str) -> &str {
    path.split('.').next().unwrap_or(path)
}

/// The value at `path`, if there is one.
pub(crate) fn lookup<'a>(kv: &'a KeyValues, path: &str) -> Option<&'a Value> {
    let mut segments = path.split('.');
    let mut value = kv.get(segments.next()?)?;
    for segment in segments {
        value = child(value, segment)?;
    }
    Some(value)
}

/// Writes `new` at `path`, creating the objects on the way that do not exist.
pub(crate) fn insert(kv: &mut KeyValues, path: &str, new: Value) -> Result<(), NotAContainer> {
    let Some((parent, last)) = path.rsplit_once('.') else {
        kv.insert(path.to_owned(), new);
        return Ok(());
    };
    let mut segments = parent.split('.');
    let first = segments.next().unwrap_or(parent);
    let mut value = kv
        .entry(first.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    let mut walked = first.len();
    for segment in segments {
        walked += 1 + segment.len();
        value = child_or_new(value, segment).ok_or_else(|| NotAContainer {
            at: parent[..walked - segment.len() - 1].to_owned(),
        })?;
    }
    match value {
        Value::Object(fields) => {
            fields.insert(last.to_owned(), new);
            Ok(())
        }
        Value::Array(items) => match index(last).and_then(|at| items.get_mut(at)) {
            Some(slot) => {
                *slot = new;
                Ok(())
            }
            None => Err(NotAContainer {
                at: parent.to_owned(),
            }),
        },
        _ => Err(NotAContainer {
            at: parent.to_owned(),
        }),
    }
}

/// Removes the value at `path` and returns it (an array element is removed, the rest shift).
pub(crate) fn remove(kv: &mut KeyValues, path: &str) -> Option<Value> {
    let Some((parent, last)) = path.rsplit_once('.') else {
        return kv.remove(path);
    };
    let mut segments = parent.split('.');
    let mut value = kv.get_mut(segments.next()?)?;
    for segment in segments {
        value = child_mut(value, segment)?;
    }
    match value {
        Value::Object(fields) => fields.remove(last),
        Value::Array(items) => {
            let at = index(last).filter(|at| *at < items.len())?;
            Some(items.remove(at))
        }
        _ => None,
    }
}

fn index(segment: &str) -> Option<usize> {
    segment.parse().ok()
}

fn child<'a>(value: &'a Value, segment: &str) -> Option<&'a Value> {
    match value {
        Value::Object(fields) => fields.get(segment),
        Value::Array(items) => items.get(index(segment)?),
        _ => None,
    }
}

fn child_mut<'a>(value: &'a mut Value, segment: &str) -> Option<&'a mut Value> {
    match value {
        Value::Object(fields) => fields.get_mut(segment),
        Value::Array(items) => items.get_mut(index(segment)?),
        _ => None,
    }
}

/// The child at `segment`, created as an empty object in an object that lacks it.
fn child_or_new<'a>(value: &'a mut Value, segment: &str) -> Option<&'a mut Value> {
    match value {
        Value::Object(fields) => Some(
            fields
                .entry(segment.to_owned())
                .or_insert_with(|| Value::Object(Map::new())),
        ),
        Value::Array(items) => items.get_mut(index(segment)?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> KeyValues {
        match value {
            Value::Object(fields) => fields.into_iter().collect(),
            _ => unreachable!("an object"),
        }
    }

    fn object(kv: &KeyValues) -> Value {
        Value::Object(kv.clone().into_iter().collect())
    }

    #[test]
    fn paths_read_and_write_inside_objects_and_arrays() {
        let mut kv = map(json!({"user": {"name": "Ada"}, "items": [1, 2, 3]}));
        assert_eq!(lookup(&kv, "user.name"), Some(&json!("Ada")));
        assert_eq!(lookup(&kv, "items.1"), Some(&json!(2)));
        assert_eq!(lookup(&kv, "items.9"), None);
        assert_eq!(lookup(&kv, "user.name.first"), None);

        insert(&mut kv, "user.address.city", json!("London")).unwrap();
        insert(&mut kv, "items.0", json!(10)).unwrap();
        insert(&mut kv, "plain", json!(true)).unwrap();
        assert_eq!(
            object(&kv),
            json!({
                "user": {"name": "Ada", "address": {"city": "London"}},
                "items": [10, 2, 3],
                "plain": true
            })
        );

        let error = insert(&mut kv, "user.name.first", json!("A")).unwrap_err();
        assert_eq!(error.at, "user.name");
        let error = insert(&mut kv, "items.7", json!(0)).unwrap_err();
        assert_eq!(error.at, "items");
        let error = insert(&mut kv, "plain.a.b", json!(0)).unwrap_err();
        assert_eq!(error.at, "plain");

        assert_eq!(
            remove(&mut kv, "user.address"),
            Some(json!({"city": "London"}))
        );
        assert_eq!(remove(&mut kv, "items.0"), Some(json!(10)));
        assert_eq!(remove(&mut kv, "nothing.here"), None);
        assert_eq!(
            object(&kv),
            json!({"user": {"name": "Ada"}, "items": [2, 3], "plain": true})
        );
        assert_eq!(top_key("user.name"), "user");
        assert_eq!(top_key("plain"), "plain");
    }
}
