//! JSON assertions on a response body: a dotted path and a check on the value found there.

use serde_json::Value;

use crate::config::{JsonAssertion, JsonCheck};

/// Maximum length of the excerpt of a found value quoted in a failure message, in characters.
const EXCERPT_CHARS: usize = 60;

/// Checks every assertion against `body` in order and returns the message of the first one
/// that fails, such as `data.id: expected an integer, found string "42"`.
pub fn check_all(body: &Value, assertions: &[JsonAssertion]) -> Result<(), String> {
    for assertion in assertions {
        check(body, assertion)?;
    }
    Ok(())
}

/// Checks one assertion against `body`.
pub fn check(body: &Value, assertion: &JsonAssertion) -> Result<(), String> {
    let path = assertion.path.as_str();
    let Some(value) = lookup(body, path) else {
        return Err(format!(
            "{path}: expected {}, found nothing",
            expectation(assertion.check)
        ));
    };
    if satisfies(value, assertion.check) {
        Ok(())
    } else {
        Err(format!(
            "{path}: expected {}, found {}",
            expectation(assertion.check),
            describe(value)
        ))
    }
}

/// Returns the value at a dotted path. A segment selects an object member by name, or an
/// array element when it is a decimal index. The empty path selects the whole body.
pub fn lookup<'a>(body: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(body);
    }
    let mut current = body;
    for segment in path.split('.') {
        current = match current {
            Value::Object(members) => members.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

fn satisfies(value: &Value, check: JsonCheck) -> bool {
    match check {
        JsonCheck::Present => !value.is_null(),
        JsonCheck::String => value.is_string(),
        JsonCheck::Integer => value.is_i64() || value.is_u64(),
        JsonCheck::Number => value.is_number(),
        JsonCheck::Boolean => value.is_boolean(),
        JsonCheck::Array => value.is_array(),
        JsonCheck::Object => value.is_object(),
        JsonCheck::NonEmpty => match value {
            Value::String(text) => !text.is_empty(),
            Value::Array(items) => !items.is_empty(),
            Value::Object(members) => !members.is_empty(),
            _ => false,
        },
    }
}

fn expectation(check: JsonCheck) -> &'static str {
    match check {
        JsonCheck::Present => "a value that is not null",
        JsonCheck::String => "a string",
        JsonCheck::Integer => "an integer",
        JsonCheck::Number => "a number",
        JsonCheck::Boolean => "a boolean",
        JsonCheck::Array => "an array",
        JsonCheck::Object => "an object",
        JsonCheck::NonEmpty => "a non-empty string, array or object",
    }
}

/// Describes a value by its JSON type and a short excerpt, so a failure message stays one
/// line even when the value is a large object.
fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".to_owned(),
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(items) => return format!("array of {} elements", items.len()),
        Value::Object(members) => return format!("object with {} members", members.len()),
    };
    let text = value.to_string();
    let excerpt: String = text.chars().take(EXCERPT_CHARS).collect();
    if excerpt.len() < text.len() {
        format!("{kind} {excerpt}...")
    } else {
        format!("{kind} {excerpt}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn assertion(path: &str, check: JsonCheck) -> JsonAssertion {
        JsonAssertion {
            path: path.to_owned(),
            check,
        }
    }

    fn body() -> Value {
        json!({
            "data": [{"id": 7, "email": "a@example.com", "score": 1.5, "tags": [], "ok": true}],
            "metadata": {"paging": {"total_count": 12, "next_page": null}},
            "empty": ""
        })
    }

    #[test]
    fn lookup_follows_members_and_indexes() {
        let body = body();
        assert_eq!(lookup(&body, "data.0.id"), Some(&json!(7)));
        assert_eq!(
            lookup(&body, "metadata.paging.total_count"),
            Some(&json!(12))
        );
        assert_eq!(lookup(&body, ""), Some(&body));
    }

    #[test]
    fn lookup_misses_return_none() {
        let body = body();
        assert_eq!(lookup(&body, "data.1.id"), None);
        assert_eq!(lookup(&body, "data.first"), None);
        assert_eq!(lookup(&body, "data.0.id.more"), None);
        assert_eq!(lookup(&body, "missing"), None);
    }

    #[test]
    fn checks_pass_on_matching_values() {
        let body = body();
        let cases = [
            ("data.0.id", JsonCheck::Integer),
            ("data.0.id", JsonCheck::Number),
            ("data.0.score", JsonCheck::Number),
            ("data.0.email", JsonCheck::String),
            ("data.0.email", JsonCheck::NonEmpty),
            ("data.0.ok", JsonCheck::Boolean),
            ("data", JsonCheck::Array),
            ("data", JsonCheck::NonEmpty),
            ("metadata", JsonCheck::Object),
            ("empty", JsonCheck::Present),
        ];
        for (path, check) in cases {
            assert_eq!(
                super::check(&body, &assertion(path, check)),
                Ok(()),
                "{path} {check:?}"
            );
        }
    }

    #[test]
    fn checks_fail_on_other_values() {
        let body = body();
        let cases = [
            ("data.0.score", JsonCheck::Integer),
            ("data.0.email", JsonCheck::Number),
            ("data.0.tags", JsonCheck::NonEmpty),
            ("empty", JsonCheck::NonEmpty),
            ("data.0.id", JsonCheck::NonEmpty),
            ("metadata.paging.next_page", JsonCheck::Present),
            ("data", JsonCheck::Object),
            ("metadata", JsonCheck::Array),
            ("data.0.id", JsonCheck::Boolean),
        ];
        for (path, check) in cases {
            assert!(
                super::check(&body, &assertion(path, check)).is_err(),
                "{path} {check:?}"
            );
        }
    }

    #[test]
    fn failure_names_path_and_found_value() {
        let body = json!({"data": {"id": "42"}});
        let message = super::check(&body, &assertion("data.id", JsonCheck::Integer)).unwrap_err();
        assert_eq!(
            message,
            r#"data.id: expected an integer, found string "42""#
        );
    }

    #[test]
    fn failure_on_missing_path_says_nothing_found() {
        let message = check_all(&body(), &[assertion("data.0.name", JsonCheck::Present)]);
        assert_eq!(
            message,
            Err("data.0.name: expected a value that is not null, found nothing".into())
        );
    }

    #[test]
    fn failure_truncates_long_values() {
        let long = "x".repeat(500);
        let body = json!({ "name": long });
        let message = super::check(&body, &assertion("name", JsonCheck::Integer)).unwrap_err();
        assert!(message.len() < 120, "{message}");
        assert!(message.ends_with("..."), "{message}");
    }

    #[test]
    fn check_all_stops_at_first_failure() {
        let assertions = [
            assertion("data", JsonCheck::Array),
            assertion("data.0.email", JsonCheck::Integer),
            assertion("missing", JsonCheck::Present),
        ];
        let message = check_all(&body(), &assertions).unwrap_err();
        assert!(message.starts_with("data.0.email:"), "{message}");
    }
}
