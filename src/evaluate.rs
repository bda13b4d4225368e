//! Decides, for one instance whose dependencies are finished, its cache key and whether its
//! cached result can be used, and if not, why it must run. Shared by `plan` and `run`.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::cache::{Cache, CacheError, KeyMaterial, ObjectRef, Problem, Record};
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

/// The outcome of evaluating one instance.
pub enum Verdict {
    /// A verified cached result.
    Cached(Box<Record>),
    /// It must run, for these reasons.
    Run(Vec<Reason>),
    /// A data input does not exist.
    MissingInput(String),
}

/// The key material and verdict of an instance.
pub struct Evaluation {
    /// Its key material.
    pub material: KeyMaterial,
    /// Its cache key.
    pub key: String,
    /// What to do.
    pub verdict: Verdict,
}

/// How thoroughly to check a cached result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Re-hash every blob (before using a result).
    Verify,
    /// Only check the blobs exist (for a dry-run plan).
    Exists,
}

/// Writes the data directory as `${data}` in every string, so keys do not depend on where
/// the data lives.
/// The error for a data input that does not exist: where it was looked for and the three
/// ways to provide it.
pub fn missing_input(path: &str, data_dir: &std::path::Path) -> String {
    format!(
        "input {path} does not exist. Point at the data directory that has it with --data DIR or ELECTRA_PIPE_DATA (it is {}), or declare the file as a `source` stage with its url and sha256",
        data_dir.display()
    )
}

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

/// Computes an instance's key material from its dependencies' outputs. Returns
/// `Ok(Err(path))` when a data input is missing.
pub fn key_material(
    pipeline: &Pipeline,
    instance: &Instance,
    outputs_of: &dyn Fn(usize) -> Option<BTreeMap<String, ObjectRef>>,
    cache: &Cache,
) -> Result<Result<KeyMaterial, String>, CacheError> {
    let data_dir = pipeline.data_dir.to_string_lossy();
    let mut params = instance.params.clone();
    for slot in &instance.refs {
        let outputs = outputs_of(slot.target).unwrap_or_default();
        let token = outputs.get(&slot.output).map_or_else(
            || "missing".to_owned(),
            |o| output_token(o, slot.subpath.as_deref()),
        );
        if let Some(v) = params.pointer_mut(&slot.pointer) {
            *v = Value::String(token);
        }
    }
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

/// Evaluates an instance whose dependencies all have outputs.
pub fn evaluate(
    pipeline: &Pipeline,
    index: usize,
    outputs_of: &dyn Fn(usize) -> Option<BTreeMap<String, ObjectRef>>,
    cache: &Cache,
    forced: bool,
    check: Check,
) -> Result<Evaluation, CacheError> {
    let instance = &pipeline.instances[index];
    let material = match key_material(pipeline, instance, outputs_of, cache)? {
        Ok(material) => material,
        Err(missing) => {
            return Ok(Evaluation {
                material: KeyMaterial {
                    kind: String::new(),
                    kind_version: 0,
                    params: Value::Null,
                    inputs: BTreeMap::new(),
                },
                key: String::new(),
                verdict: Verdict::MissingInput(missing),
            });
        }
    };
    let key = material.key();
    if forced {
        return Ok(Evaluation {
            material,
            key,
            verdict: Verdict::Run(vec![Reason::Forced]),
        });
    }
    if let Some(record) = cache.index.record(&key)? {
        match check_outputs(cache, &record, check) {
            Ok(()) => {
                return Ok(Evaluation {
                    material,
                    key,
                    verdict: Verdict::Cached(Box::new(record)),
                });
            }
            Err(problem) => {
                if check == Check::Verify {
                    tracing::warn!("{}: {problem}; recomputing it", record.stage);
                    let (Problem::Corrupt { expected: bad, .. } | Problem::Missing { digest: bad }) =
                        &problem;
                    cache.store.quarantine(bad);
                    cache.index.remove_record(&key)?;
                }
                return Ok(Evaluation {
                    material,
                    key,
                    verdict: Verdict::Run(vec![Reason::OutputsBad(problem.to_string())]),
                });
            }
        }
    }
    let reasons = explain(pipeline, instance, &material, &key, cache)?;
    Ok(Evaluation {
        material,
        key,
        verdict: Verdict::Run(reasons),
    })
}

/// An instance's status in a dry run.
pub enum Planned {
    /// Its result is stored; these are its outputs.
    Cached(BTreeMap<String, ObjectRef>),
    /// It will run, for this reason.
    WillRun(String),
    /// It cannot run: a data input is missing, here or upstream.
    Blocked(String),
}

/// A dry-run verdict and, where it can be known without running anything, the key.
pub struct DryRun {
    /// What would happen.
    pub status: Planned,
    /// Its cache key, unless an upstream stage must run first.
    pub key: Option<String>,
}

/// Evaluates every instance without running anything (blobs checked for existence only).
pub fn dry_run(
    pipeline: &Pipeline,
    cache: &Cache,
    forced: &std::collections::HashSet<usize>,
) -> Result<Vec<DryRun>, CacheError> {
    let mut planned: Vec<Option<DryRun>> = (0..pipeline.instances.len()).map(|_| None).collect();
    for &i in &pipeline.dag.order {
        let instance = &pipeline.instances[i];
        let (mut upstream_runs, mut upstream_blocked) = (Vec::new(), Vec::new());
        for &d in &instance.deps {
            match planned[d].as_ref().map(|p| &p.status) {
                Some(Planned::WillRun(_)) => upstream_runs.push(pipeline.instances[d].name.clone()),
                Some(Planned::Blocked(_)) => {
                    upstream_blocked.push(pipeline.instances[d].name.clone())
                }
                _ => {}
            }
        }
        let missing = instance
            .data_inputs
            .iter()
            .find(|path| !std::path::Path::new(path).exists());
        let dry = if !upstream_blocked.is_empty() {
            DryRun {
                status: Planned::Blocked(format!(
                    "upstream blocked: {}",
                    abbreviate(&upstream_blocked)
                )),
                key: None,
            }
        } else if let Some(path) = missing {
            DryRun {
                status: Planned::Blocked(missing_input(path, &pipeline.data_dir)),
                key: None,
            }
        } else if !upstream_runs.is_empty() {
            let why = if forced.contains(&i) { "forced; " } else { "" };
            DryRun {
                status: Planned::WillRun(format!(
                    "{why}upstream will run: {}",
                    abbreviate(&upstream_runs)
                )),
                key: None,
            }
        } else {
            let outputs_of = |d: usize| match planned[d].as_ref().map(|p| &p.status) {
                Some(Planned::Cached(o)) => Some(o.clone()),
                _ => None,
            };
            let eval = evaluate(
                pipeline,
                i,
                &outputs_of,
                cache,
                forced.contains(&i),
                Check::Exists,
            )?;
            let status = match eval.verdict {
                Verdict::Cached(record) => Planned::Cached(record.outputs),
                Verdict::Run(reasons) => Planned::WillRun(
                    reasons
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                Verdict::MissingInput(path) => {
                    Planned::Blocked(missing_input(&path, &pipeline.data_dir))
                }
            };
            DryRun {
                status,
                key: (!eval.key.is_empty()).then_some(eval.key),
            }
        };
        planned[i] = Some(dry);
    }
    Ok(planned
        .into_iter()
        .map(|p| p.expect("every instance is planned"))
        .collect())
}

fn check_outputs(cache: &Cache, record: &Record, check: Check) -> Result<(), Problem> {
    for (name, object) in &record.outputs {
        match check {
            Check::Verify => {
                cache.store.verify(object)?;
                cache
                    .store
                    .materialize(object, name)
                    .map_err(|_| Problem::Missing {
                        digest: object.digest.clone(),
                    })?;
            }
            Check::Exists => {
                if !cache.store.blob_path(&object.digest).exists() {
                    return Err(Problem::Missing {
                        digest: object.digest.clone(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Why an instance without a stored result must run, compared with its last run.
fn explain(
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

    #[test]
    fn portable_hides_the_data_dir() {
        let mut v = json!({"a": "/data/x.txt", "b": ["cat /data/y"]});
        portable(&mut v, "/data");
        assert_eq!(v, json!({"a": "${data}/x.txt", "b": ["cat ${data}/y"]}));
    }
}
