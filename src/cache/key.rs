//! Canonical JSON and cache keys: key order and number spelling do not change a key.

use serde_json::{Number, Value};

/// A number's canonical text: integers (and integral floats) without a fraction, other
/// floats in their shortest round-trip decimal form. `1`, `1.0` and `1e0` all give `1`;
/// `5e-4` and `0.0005` both give `0.0005`.
pub fn number_text(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// Writes `value` as canonical JSON: object keys sorted, numbers as [`number_text`].
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number_text(n)),
        Value::String(s) => out.push_str(&Value::String(s.clone()).to_string()),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_and_number_spelling_do_not_matter() {
        let a: Value = serde_json::from_str(r#"{"b": 1.0, "a": [1e3, 0.5]}"#).unwrap();
        let b = json!({"a": [1000, 0.5], "b": 1});
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(canonical_json(&b), r#"{"a":[1000,0.5],"b":1}"#);
    }

    #[test]
    fn different_values_differ() {
        assert_ne!(
            canonical_json(&json!({"lr": 0.1})),
            canonical_json(&json!({"lr": 0.01}))
        );
        assert_ne!(
            canonical_json(&json!({"x": "1"})),
            canonical_json(&json!({"x": 1}))
        );
    }
}

/// Everything a stage's result depends on; its hash is the stage's cache key.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KeyMaterial {
    /// The stage kind.
    pub kind: String,
    /// The kind's version.
    pub kind_version: u32,
    /// Params with the data directory written as `${data}` and each reference replaced by
    /// the digest of the output it names.
    pub params: Value,
    /// Content digest of every data input (by its `${data}/...` spelling) and of every
    /// `needs` dependency's outputs.
    pub inputs: std::collections::BTreeMap<String, String>,
}

impl KeyMaterial {
    /// The cache key: a BLAKE3 hash of the canonical material, in hex.
    pub fn key(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"electra-pipe cache key v1\n");
        hasher.update(self.kind.as_bytes());
        hasher.update(b"\n");
        hasher.update(self.kind_version.to_string().as_bytes());
        hasher.update(b"\n");
        hasher.update(canonical_json(&self.params).as_bytes());
        hasher.update(b"\n");
        for (name, digest) in &self.inputs {
            hasher.update(canonical_json(&Value::String(name.clone())).as_bytes());
            hasher.update(b"=");
            hasher.update(digest.as_bytes());
            hasher.update(b"\n");
        }
        hasher.finalize().to_hex().to_string()
    }
}
