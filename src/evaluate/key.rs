//! An instance's key material: its params with every reference replaced by the digest of the
//! output it names, the data directory written as `${data}`, and the digests of its data inputs
//! and of the dependencies it names without referencing an output.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::cache::{Cache, CacheError, KeyMaterial, ObjectRef};
use crate::spec::{Instance, Pipeline, RefSlot};

/// The error for a data input that does not exist: where it was looked for and the three
/// ways to provide it.
pub fn missing_input(path: &str, data_dir: &std::path::Path) -> String {
    format!(
        "input {path} does not exist. Point at the data directory that has it with --data DIR or ELECTRA_PIPE_DATA (it is {}), or declare the file as a `source` stage with its url and sha256",
        data_dir.display()
    )
}

/// Writes the data directory as `${data}` in every string, so keys do not depend on where
/// the data lives.
fn portable(value: &mut Value, data_dir: &str) {
    match value {
        Value::String(s) if s.contains(data_dir) => *s = s.replace(data_dir, "${data}"),
        Value::Array(items) => items.iter_mut().for_each(|v| portable(v, data_dir)),
        Value::Object(map) => map.values_mut().for_each(|v| portable(v, data_dir)),
        _ => {}
    }
}

/// The digest that stands for an output (and a path inside it) in key material.
fn output_token(object: &ObjectRef, subpath: Option<&str>) -> String {
    match subpath {
        Some(sub) => format!("blake3:{}/{sub}", object.digest),
        None => format!("blake3:{}", object.digest),
    }
}

/// `instance`'s params with each reference slot replaced by `fill(output, slot)` (the output's
/// digest in key material, its path in the store for a run), or by `missing` when the output
/// does not exist (yet).
pub fn with_references(
    instance: &Instance,
    outputs_of: &dyn Fn(usize) -> Option<BTreeMap<String, ObjectRef>>,
    fill: &dyn Fn(&ObjectRef, &RefSlot) -> String,
) -> Value {
    let mut params = instance.params.clone();
    for slot in &instance.refs {
        let outputs = outputs_of(slot.target).unwrap_or_default();
        let text = outputs
            .get(&slot.output)
            .map_or_else(|| "missing".to_owned(), |object| fill(object, slot));
        if let Some(v) = params.pointer_mut(&slot.pointer) {
            *v = Value::String(text);
        }
    }
    params
}

/// Computes an instance's key material from its dependencies' outputs. Returns
/// `Ok(Err(path))` when a data input is missing.
pub fn key_material(
    pipeline: &Pipeline,
    instance: &Instance,
    outputs_of: &dyn Fn(usize) -> Option<BTreeMap<String, ObjectRef>>,
    cache: &Cache,
) -> Result<Result<KeyMaterial, String>, CacheError> {
    let data_dir = pipeline.data_dir.to_string_lossy();
    let mut params = with_references(instance, outputs_of, &|object, slot| {
        output_token(object, slot.subpath.as_deref())
    });
    portable(&mut params, &data_dir);
    let mut inputs = BTreeMap::new();
    for path in &instance.data_inputs {
        match cache.digester.digest(path)? {
            Some(digest) => {
                inputs.insert(path.replace(&*data_dir, "${data}"), digest);
            }
            None => return Ok(Err(path.clone())),
        }
    }
    let referenced: Vec<usize> = instance.refs.iter().map(|r| r.target).collect();
    for &dep in instance.deps.iter().filter(|d| !referenced.contains(d)) {
        let outputs = outputs_of(dep).unwrap_or_default();
        let text = serde_json::to_string(&outputs).unwrap_or_default();
        inputs.insert(
            format!("needs:{}", pipeline.instances[dep].name),
            blake3::hash(text.as_bytes()).to_hex().to_string(),
        );
    }
    Ok(Ok(KeyMaterial {
        kind: instance.kind.name().to_owned(),
        kind_version: instance.kind.version(),
        params,
        inputs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn portable_hides_the_data_dir() {
        let mut v = json!({"a": "/data/x.txt", "b": ["cat /data/y"]});
        portable(&mut v, "/data");
        assert_eq!(v, json!({"a": "${data}/x.txt", "b": ["cat ${data}/y"]}));
    }
}
