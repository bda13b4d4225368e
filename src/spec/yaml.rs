//! Reads YAML text with serde_yaml into JSON values (the model params are handled in),
//! turning syntax errors into located diagnostics.

use serde_json::{Map, Number, Value};
use serde_yaml::Value as Yaml;

use super::diag::Location;
use super::locate::{child, element};

/// A problem converting YAML: a syntax error or a value JSON cannot hold.
#[derive(Debug)]
pub struct YamlError {
    /// Where, if known.
    pub location: Option<Location>,
    /// The path of the offending node, if it was a value problem.
    pub path: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Parses a document; an empty document is `null`.
pub fn parse(text: &str) -> Result<Value, YamlError> {
    let yaml: Yaml = serde_yaml::from_str(text).map_err(|err| {
        let location = err.location().map(|l| Location {
            line: l.line(),
            col: l.column(),
        });
        let message = err.to_string();
        let message = match message.find(" at line ") {
            Some(cut) => message[..cut].to_owned(),
            None => message,
        };
        YamlError {
            location,
            path: None,
            message: format!("invalid YAML: {message}"),
        }
    })?;
    to_json(&yaml, "")
}

/// Parses a `--set` value the way YAML would read a flow value (`3`, `0.1`, `[1, 2]`,
/// `{a: 1}`); anything else that is not a plain scalar is taken as literal text.
pub fn parse_scalar(text: &str) -> Result<Value, YamlError> {
    let flow = text.trim_start().starts_with(['[', '{']);
    match serde_yaml::from_str::<Yaml>(text) {
        Ok(yaml)
            if flow || !matches!(yaml, Yaml::Sequence(_) | Yaml::Mapping(_) | Yaml::Tagged(_)) =>
        {
            to_json(&yaml, "")
        }
        Err(err) if flow => Err(YamlError {
            location: None,
            path: None,
            message: format!("invalid YAML value: {err}"),
        }),
        _ => Ok(Value::String(text.to_owned())),
    }
}

fn to_json(yaml: &Yaml, path: &str) -> Result<Value, YamlError> {
    let bad = |message: String| YamlError {
        location: None,
        path: Some(path.to_owned()),
        message,
    };
    Ok(match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                Value::Number(
                    Number::from_f64(f)
                        .ok_or_else(|| bad(format!("the number {n} is not finite")))?,
                )
            }
        }
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| to_json(item, &element(path, i)))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Mapping(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let key = match key {
                    Yaml::String(s) => s.clone(),
                    Yaml::Number(n) => n.to_string(),
                    Yaml::Bool(b) => b.to_string(),
                    _ => return Err(bad("mapping keys must be plain names".to_owned())),
                };
                let value = to_json(value, &child(path, &key))?;
                out.insert(key, value);
            }
            Value::Object(out)
        }
        Yaml::Tagged(tagged) => {
            return Err(bad(format!(
                "YAML tags such as `{}` are not supported",
                tagged.tag
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_documents() {
        let v = parse("a: 1\nb: [x, 2.5, true]\nc: ~\n").unwrap();
        assert_eq!(v, json!({"a": 1, "b": ["x", 2.5, true], "c": null}));
    }

    #[test]
    fn syntax_errors_have_locations() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.location.is_some(), "{err:?}");
        assert!(err.message.starts_with("invalid YAML"), "{err:?}");
    }

    #[test]
    fn set_values_are_typed() {
        assert_eq!(parse_scalar("3").unwrap(), json!(3));
        assert_eq!(parse_scalar("[1, 2]").unwrap(), json!([1, 2]));
        assert_eq!(parse_scalar("hello").unwrap(), json!("hello"));
        assert_eq!(parse_scalar("?").unwrap(), json!("?"));
        assert_eq!(parse_scalar("- a").unwrap(), json!("- a"));
        assert!(parse_scalar("[1, 2").is_err());
    }
}
