//! `${name}` substitution in strings: a whole-string `${name}` takes the variable's value with
//! its type (a list stays a list); inside longer strings a scalar is spliced in as text.
//! `$${` writes a literal `${`.

use serde_json::Value;

/// Why a substitution failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubstError {
    /// `${name}` names no variable.
    Unknown(String),
    /// `${name}` is a list or mapping spliced into a longer string.
    NotScalar(String),
    /// `${` without a closing `}` or with an invalid name.
    Malformed(String),
}

/// Renders a scalar as text the way it appears in names and strings (`1`, `0.5`, `true`).
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(crate::cache::key::number_text(n)),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Substitutes variables in one string, looking names up with `lookup`.
pub fn interpolate<'v>(
    text: &str,
    lookup: &impl Fn(&str) -> Option<&'v Value>,
) -> Result<Value, SubstError> {
    if let Some(name) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) {
        if !name.contains(['$', '{', '}']) {
            return lookup(name)
                .cloned()
                .ok_or_else(|| SubstError::Unknown(name.to_owned()));
        }
    }
    if !text.contains('$') {
        return Ok(Value::String(text.to_owned()));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let end = after.find('}').ok_or_else(|| {
                SubstError::Malformed(format!("`${{` without a closing `}}` in {text:?}"))
            })?;
            let name = &after[..end];
            if name.is_empty() || name.contains(['$', '{']) {
                return Err(SubstError::Malformed(format!(
                    "`${{{name}}}` is not a variable name"
                )));
            }
            let value = lookup(name).ok_or_else(|| SubstError::Unknown(name.to_owned()))?;
            out.push_str(
                &scalar_text(value).ok_or_else(|| SubstError::NotScalar(name.to_owned()))?,
            );
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

/// Where inside a value a substitution failed (`inputs.text`, `[2]`), and why.
pub type SubstFailure = (String, SubstError);

/// Substitutes variables in every string of `value` (keys are left alone).
pub fn substitute<'v>(
    value: &Value,
    lookup: &impl Fn(&str) -> Option<&'v Value>,
) -> Result<Value, SubstFailure> {
    substitute_at(value, lookup, "")
}

fn substitute_at<'v>(
    value: &Value,
    lookup: &impl Fn(&str) -> Option<&'v Value>,
    path: &str,
) -> Result<Value, SubstFailure> {
    Ok(match value {
        Value::String(s) => interpolate(s, lookup).map_err(|e| (path.to_owned(), e))?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| substitute_at(v, lookup, &super::locate::element(path, i)))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    Ok((
                        k.clone(),
                        substitute_at(v, lookup, &super::locate::child(path, k))?,
                    ))
                })
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> serde_json::Map<String, Value> {
        json!({"data": "/d", "seeds": [1, 2], "lr": 0.0005, "n": 3})
            .as_object()
            .unwrap()
            .clone()
    }

    fn sub(text: &str) -> Result<Value, SubstError> {
        let vars = vars();
        interpolate(text, &|name| vars.get(name))
    }

    #[test]
    fn whole_string_keeps_type() {
        assert_eq!(sub("${seeds}"), Ok(json!([1, 2])));
        assert_eq!(sub("${n}"), Ok(json!(3)));
    }

    #[test]
    fn splices_scalars_and_escapes() {
        assert_eq!(sub("${data}/x-${n}-${lr}"), Ok(json!("/d/x-3-0.0005")));
        assert_eq!(
            sub("cost $5 and $${HOME}"),
            Ok(json!("cost $5 and ${HOME}"))
        );
    }

    #[test]
    fn reports_unknown_nonscalar_and_malformed() {
        assert_eq!(sub("${nope}/x"), Err(SubstError::Unknown("nope".into())));
        assert_eq!(
            sub("a ${seeds}"),
            Err(SubstError::NotScalar("seeds".into()))
        );
        assert!(matches!(sub("a ${data"), Err(SubstError::Malformed(_))));
    }

    #[test]
    fn substitute_reports_the_failing_path() {
        let vars = vars();
        let err = substitute(&json!({"a": ["ok", "${x}"]}), &|n| vars.get(n)).unwrap_err();
        assert_eq!(err.0, "a[1]");
    }
}

/// The variable names a value mentions as `${name}` (for resolving variables in order).
pub fn mentioned(value: &Value) -> Vec<String> {
    let mut names = Vec::new();
    collect_mentions(value, &mut names);
    names
}

fn collect_mentions(value: &Value, names: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(at) = rest.find('$') {
                rest = &rest[at..];
                if let Some(after) = rest.strip_prefix("$${") {
                    rest = after;
                } else if let Some(after) = rest.strip_prefix("${") {
                    match after.find('}') {
                        Some(end) => {
                            names.push(after[..end].to_owned());
                            rest = &after[end + 1..];
                        }
                        None => break,
                    }
                } else {
                    rest = &rest[1..];
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_mentions(v, names)),
        Value::Object(map) => map.values().for_each(|v| collect_mentions(v, names)),
        _ => {}
    }
}

#[cfg(test)]
mod mention_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_mentions_but_not_escapes() {
        assert_eq!(
            mentioned(&json!(["${a}/x", {"k": "$${b} ${c}"}])),
            ["a", "c"]
        );
    }
}
