//! Why an instance must run: what changed since its last run (kind version, params, inputs,
//! upstream outputs), or that it is new, forced, failed last time or has no stored result.
//! These are `plan`'s and the stage logs' "why".

use std::fmt;

use serde_json::Value;

use crate::cache::{Cache, CacheError, KeyMaterial};
use crate::spec::{Instance, Pipeline};

/// Why an instance will run.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// `--force` named it.
    Forced,
    /// It never ran in this pipeline before.
    New,
    /// Its kind's version changed.
    KindChanged {
        /// The version it last ran with.
        from: u32,
        /// The version now.
        to: u32,
    },
    /// These params changed (`path: old → new`).
    ParamsChanged(Vec<String>),
    /// These inputs' contents changed (data files, or upstream outputs).
    InputsChanged(Vec<String>),
    /// Upstream instances that will run first, so the key is not known yet.
    UpstreamWillRun(Vec<String>),
    /// Its cached outputs failed verification.
    OutputsBad(String),
    /// Its last attempt with these exact inputs failed.
    LastFailed(String),
    /// Same inputs as its last run, but no result is stored (interrupted, or collected).
    NotStored,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Forced => write!(f, "forced"),
            Reason::New => write!(f, "new"),
            Reason::KindChanged { from, to } => write!(f, "kind version changed {from} → {to}"),
            Reason::ParamsChanged(p) => write!(f, "params changed: {}", p.join(", ")),
            Reason::InputsChanged(i) => write!(f, "input changed: {}", i.join(", ")),
            Reason::UpstreamWillRun(u) => write!(f, "upstream will run: {}", abbreviate(u)),
            Reason::OutputsBad(p) => write!(f, "cached output unusable: {p}"),
            Reason::LastFailed(e) => write!(f, "last attempt failed: {e}"),
            Reason::NotStored => write!(f, "no stored result (interrupted or collected)"),
        }
    }
}

/// Up to three names, then a count.
pub fn abbreviate(names: &[String]) -> String {
    if names.len() <= 3 {
        names.join(", ")
    } else {
        format!("{} and {} more", names[..3].join(", "), names.len() - 3)
    }
}

/// Why an instance without a stored result must run, compared with its last run.
pub(super) fn explain(
    pipeline: &Pipeline,
    instance: &Instance,
    material: &KeyMaterial,
    key: &str,
    cache: &Cache,
) -> Result<Vec<Reason>, CacheError> {
    // Only a failure under this very key explains a re-run.
    let failure = cache
        .index
        .failure(&pipeline.name, &instance.name)?
        .filter(|f| f.key == key);
    let Some(latest) = cache.index.latest(&pipeline.name, &instance.name)? else {
        let mut reasons = vec![Reason::New];
        reasons.extend(failure.map(|f| Reason::LastFailed(f.error)));
        return Ok(reasons);
    };
    let old = &latest.material;
    let mut reasons = Vec::new();
    if old.kind_version != material.kind_version || old.kind != material.kind {
        reasons.push(Reason::KindChanged {
            from: old.kind_version,
            to: material.kind_version,
        });
    }
    let mut params = Vec::new();
    let mut upstream = Vec::new();
    diff(
        &old.params,
        &material.params,
        "",
        &mut params,
        &mut upstream,
    );
    let mut inputs: Vec<String> = upstream;
    for (name, digest) in &material.inputs {
        if old.inputs.get(name) != Some(digest) {
            inputs.push(name.clone());
        }
    }
    if !params.is_empty() {
        reasons.push(Reason::ParamsChanged(params));
    }
    if !inputs.is_empty() {
        reasons.push(Reason::InputsChanged(inputs));
    }
    if let Some(f) = failure {
        reasons.push(Reason::LastFailed(f.error));
    }
    if reasons.is_empty() {
        reasons.push(Reason::NotStored);
    }
    Ok(reasons)
}

/// Collects changed leaves: param changes as `path: old → new`, and changed upstream
/// output digests (reference slots) separately as `path (upstream output)`.
fn diff(
    old: &Value,
    new: &Value,
    path: &str,
    params: &mut Vec<String>,
    upstream: &mut Vec<String>,
) {
    let label = if path.is_empty() {
        "params".to_owned()
    } else {
        path.to_owned()
    };
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => diff(x, y, &sub, params, upstream),
                    (None, Some(y)) => params.push(format!("{sub}: added {}", brief(y))),
                    (Some(_), None) => params.push(format!("{sub}: removed")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(x, y, &format!("{path}[{i}]"), params, upstream);
            }
        }
        (Value::String(a), Value::String(b))
            if a.starts_with("blake3:") && b.starts_with("blake3:") =>
        {
            if a != b {
                upstream.push(format!("{label} (upstream output)"));
            }
        }
        (a, b) => {
            if crate::cache::key::canonical_json(a) != crate::cache::key::canonical_json(b) {
                params.push(format!("{label}: {} → {}", brief(a), brief(b)));
            }
        }
    }
}

/// A value as canonical JSON, cut to 40 characters.
fn brief(value: &Value) -> String {
    let text = crate::cache::key::canonical_json(value);
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(39).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_names_changed_params_and_upstream_outputs() {
        let (mut params, mut upstream) = (Vec::new(), Vec::new());
        diff(
            &json!({"lr": 0.1, "text": "blake3:aa", "keep": [1, 2]}),
            &json!({"lr": 0.2, "text": "blake3:bb", "keep": [1, 2], "new": true}),
            "",
            &mut params,
            &mut upstream,
        );
        assert_eq!(params, ["lr: 0.1 → 0.2", "new: added true"]);
        assert_eq!(upstream, ["text (upstream output)"]);
    }
}
