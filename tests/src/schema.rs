//! Checks an API answer against the JSON Schema the OpenAPI document gives for it.
//!
//! Written here rather than taken from a validator crate: the tests need the subset the
//! document uses (`$ref`, `type`, `properties`, `required`, `additionalProperties`,
//! `items`, `enum`, `const`, `oneOf`, `anyOf`, `allOf`, `true`/`false`, bounds and lengths), and one rule no
//! validator applies by default: an object schema that lists `properties` is closed, so
//! a field the API returns but the document does not list is an error. That is what
//! keeps the document saying what the API returns. (`pattern` is not checked.)

use serde_json::{Map, Value};

/// Every way `value` differs from `schema`, as `path: what` lines; empty when it fits.
/// `components` is the document's `components.schemas`, for `$ref`s.
pub fn check(value: &Value, schema: &Value, components: &Map<String, Value>) -> Vec<String> {
    let mut errors = Vec::new();
    walk(value, schema, components, "$", &mut errors);
    errors
}

fn walk(v: &Value, s: &Value, c: &Map<String, Value>, path: &str, errors: &mut Vec<String>) {
    let mut fail = |what: String| errors.push(format!("{path}: {what}"));
    // `true` takes anything (a derived schema says so of free-form JSON), `false` nothing.
    if let Value::Bool(any) = s {
        if !any {
            fail(format!("{v} is not allowed here"));
        }
        return;
    }
    if let Some(r) = s["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        match c.get(name) {
            Some(target) => walk(v, target, c, path, errors),
            None => fail(format!("no schema {r}")),
        }
        return;
    }
    if let Some(k) = s.get("const") {
        if v != k {
            fail(format!("{v} is not {k}"));
        }
    }
    if let Some(options) = s["enum"].as_array() {
        if !options.contains(v) {
            fail(format!(
                "{v} is not one of {}",
                Value::Array(options.clone())
            ));
        }
    }
    if let Some(types) = types_of(s) {
        let fits = types.iter().any(|t| match t.as_str() {
            "null" => v.is_null(),
            "boolean" => v.is_boolean(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "string" => v.is_string(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            _ => false,
        });
        if !fits {
            fail(format!("{v} is not of type {types:?}"));
            return;
        }
    }
    if let Some(x) = v.as_f64() {
        if s["minimum"].as_f64().is_some_and(|m| x < m)
            || s["maximum"].as_f64().is_some_and(|m| x > m)
        {
            fail(format!(
                "{x} is outside [{}, {}]",
                s["minimum"], s["maximum"]
            ));
        }
    }
    if let Some(text) = v.as_str() {
        let n = text.chars().count() as u64;
        if s["minLength"].as_u64().is_some_and(|m| n < m)
            || s["maxLength"].as_u64().is_some_and(|m| n > m)
        {
            fail(format!(
                "{n} characters is outside [{}, {}]",
                s["minLength"], s["maxLength"]
            ));
        }
    }
    if let Some(items) = v.as_array() {
        let n = items.len() as u64;
        if s["minItems"].as_u64().is_some_and(|m| n < m)
            || s["maxItems"].as_u64().is_some_and(|m| n > m)
        {
            errors.push(format!(
                "{path}: {n} items is outside [{}, {}]",
                s["minItems"], s["maxItems"]
            ));
        }
        if let Some(item) = s.get("items") {
            for (i, x) in items.iter().enumerate() {
                walk(x, item, c, &format!("{path}[{i}]"), errors);
            }
        }
    }
    if let Some(obj) = v.as_object() {
        for r in s["required"].as_array().into_iter().flatten() {
            if let Some(k) = r.as_str().filter(|k| !obj.contains_key(*k)) {
                errors.push(format!("{path}: {k} is required"));
            }
        }
        let props = s["properties"].as_object();
        for (k, x) in obj {
            let here = format!("{path}.{k}");
            match (props.and_then(|p| p.get(k)), s.get("additionalProperties")) {
                (Some(p), _) => walk(x, p, c, &here, errors),
                (None, Some(Value::Bool(true))) => {}
                (None, Some(extra)) if extra.is_object() => walk(x, extra, c, &here, errors),
                // Closed: a schema listing properties says every field there is.
                (None, _) if props.is_some() => errors.push(format!("{here}: not in the schema")),
                (None, _) => {}
            }
        }
    }
    for (i, part) in s["allOf"].as_array().into_iter().flatten().enumerate() {
        let mut e = Vec::new();
        walk(v, part, c, path, &mut e);
        if !e.is_empty() {
            errors.push(format!("{path}: does not fit allOf[{i}]: {}", e.join("; ")));
        }
    }
    for (key, exactly_one) in [("oneOf", true), ("anyOf", false)] {
        if let Some(options) = s[key].as_array() {
            let fitting = options
                .iter()
                .filter(|o| {
                    let mut e = Vec::new();
                    walk(v, o, c, path, &mut e);
                    e.is_empty()
                })
                .count();
            let ok = if exactly_one {
                fitting == 1
            } else {
                fitting >= 1
            };
            if !ok {
                errors.push(format!(
                    "{path}: {v} fits {fitting} of {key}'s {} options",
                    options.len()
                ));
            }
        }
    }
}

fn types_of(s: &Value) -> Option<Vec<String>> {
    match &s["type"] {
        Value::String(t) => Some(vec![t.clone()]),
        Value::Array(ts) => Some(
            ts.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_checker_finds_what_differs() {
        let c = Map::new();
        let s = json!({"type": "object", "required": ["a"], "properties": {
            "a": {"type": "integer", "minimum": 0},
            "b": {"type": ["string", "null"]},
            "c": {"type": "array", "items": {"enum": ["x", "y"]}},
        }});
        assert!(check(&json!({"a": 1, "b": null, "c": ["x"]}), &s, &c).is_empty());
        let e = check(&json!({"a": -1, "b": 2, "c": ["z"], "d": true}), &s, &c);
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e.iter().any(|x| x.starts_with("$.d: not in the schema")));
        assert_eq!(check(&json!({}), &s, &c), vec!["$: a is required"]);
        let one = json!({"oneOf": [{"type": "integer"}, {"type": "number"}]});
        assert_eq!(check(&json!(1), &one, &c).len(), 1, "1 fits both");
        assert!(check(&json!(1.5), &one, &c).is_empty());
    }
}
