//! The pipeline file's structure, checked key by key: top-level fields, stage fields and
//! their types, with unknown keys reported with a "did you mean".

use serde_json::{Map, Value};

use super::diag::Location;
use super::locate::{child, element};
use super::Checker;

/// Top-level keys of a pipeline file.
pub const PIPELINE_KEYS: &[&str] = &["pipeline", "description", "vars", "stages"];
/// Keys of a stage.
pub const STAGE_KEYS: &[&str] = &[
    "kind",
    "description",
    "params",
    "matrix",
    "needs",
    "retries",
    "resources",
    "executor",
];
/// Keys of a stage's `resources`.
pub const RESOURCE_KEYS: &[&str] = &[
    "cpus",
    "memory",
    "gpus",
    "time",
    "partition",
    "account",
    "sbatch_args",
];
/// Executors a stage may name.
pub const EXECUTORS: &[&str] = &["local", "slurm"];

/// A pipeline file's fields, before variables and matrices are expanded.
#[derive(Debug, Default)]
pub struct RawPipeline {
    /// `pipeline:` (defaults to the file's stem).
    pub name: Option<String>,
    /// `vars:` in file order.
    pub vars: Vec<(String, Value)>,
    /// `stages:` in file order.
    pub stages: Vec<RawStage>,
}

/// One stage's fields, before expansion.
#[derive(Debug)]
pub struct RawStage {
    /// Its name (the key under `stages:`).
    pub name: String,
    /// `kind:`.
    pub kind: String,
    /// `params:` (an object, possibly empty).
    pub params: Value,
    /// `matrix:` axes in file order; values not yet substituted.
    pub matrix: Vec<(String, Value)>,
    /// `needs:` selections, with their paths in the file.
    pub needs: Vec<(String, String)>,
    /// `retries:` (default 0).
    pub retries: u32,
    /// `resources:`.
    pub resources: Resources,
    /// `executor:`, if the stage names one.
    pub executor: Option<String>,
}

/// What a stage asks of the machine that runs it. `cpus` also bounds how many stages run
/// side by side locally; the rest are cluster requests the Slurm executor turns into sbatch
/// options (`--mem`, `--gpus`, `--time`, `--partition`, `--account`, then `sbatch_args`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    /// `cpus:` (default 1).
    pub cpus: usize,
    /// `memory:`, in sbatch's `--mem` syntax (`4G`, `500M`).
    pub memory: Option<String>,
    /// `gpus:`, a count.
    pub gpus: Option<u32>,
    /// `time:`, in sbatch's `--time` syntax (`30`, `1:30:00`, `1-00:00:00`).
    pub time: Option<String>,
    /// `partition:`.
    pub partition: Option<String>,
    /// `account:`.
    pub account: Option<String>,
    /// `sbatch_args:`, further sbatch options passed as they are.
    pub sbatch_args: Vec<String>,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpus: 1,
            memory: None,
            gpus: None,
            time: None,
            partition: None,
            account: None,
            sbatch_args: Vec::new(),
        }
    }
}

/// A name usable for stages, variables and matrix axes.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A short description of a value's type and content, for "found" lines.
pub fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(a) => format!(
            "a list of {} item{}",
            a.len(),
            if a.len() == 1 { "" } else { "s" }
        ),
        Value::Object(_) => "a mapping".into(),
    }
}

impl Checker {
    /// Reports every key of `map` (at `path`) not in `known`, with a suggestion.
    fn unknown_keys(&mut self, map: &Map<String, Value>, path: &str, known: &[&str], what: &str) {
        for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
            let diag = self
                .at_key(&child(path, key), format!("unknown key `{key}` in {what}"))
                .found(format!("`{key}`"))
                .expected(format!("one of {}", known.join(", ")))
                .did_you_mean(key, known.iter().copied());
            self.push(diag);
        }
    }

    /// The value at `path` must be a mapping; returns it or reports what it is.
    fn mapping<'v>(
        &mut self,
        value: &'v Value,
        path: &str,
        what: &str,
    ) -> Option<&'v Map<String, Value>> {
        match value {
            Value::Object(map) => Some(map),
            other => {
                let diag = self
                    .at_value(path, format!("{what} must be a mapping"))
                    .found(describe(other))
                    .expected("a mapping of `key: value` lines");
                self.push(diag);
                None
            }
        }
    }

    fn string(&mut self, value: &Value, path: &str, what: &str) -> Option<String> {
        match value {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            other => {
                let diag = self
                    .at_value(path, format!("{what} must be a non-empty string"))
                    .found(describe(other))
                    .expected("a string");
                self.push(diag);
                None
            }
        }
    }

    fn count(&mut self, value: &Value, path: &str, what: &str, min: u64, max: u64) -> Option<u64> {
        match value.as_u64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                let diag = self
                    .at_value(
                        path,
                        format!("{what} must be a whole number from {min} to {max}"),
                    )
                    .found(describe(value))
                    .expected(format!("an integer in {min}..={max}"));
                self.push(diag);
                None
            }
        }
    }

    /// Reads the document's top level and every stage's fields.
    pub fn raw_pipeline(&mut self, doc: &Value) -> Option<RawPipeline> {
        if doc.is_null() {
            let diag = self
                .at(
                    Some(Location { line: 1, col: 1 }),
                    "the pipeline file is empty",
                )
                .expected("a mapping with a `stages:` section");
            self.push(diag);
            return None;
        }
        let top = self.mapping(doc, "", "a pipeline file")?;
        self.unknown_keys(top, "", PIPELINE_KEYS, "the pipeline");
        let mut raw = RawPipeline {
            name: top
                .get("pipeline")
                .and_then(|v| self.string(v, "pipeline", "`pipeline` (the pipeline's name)")),
            ..RawPipeline::default()
        };
        if let Some(vars) = top
            .get("vars")
            .and_then(|v| self.mapping(v, "vars", "`vars`"))
        {
            for (name, value) in vars {
                if !is_identifier(name) {
                    let diag = self
                        .at_key(
                            &child("vars", name),
                            format!("`{name}` is not a valid variable name"),
                        )
                        .expected("letters, digits, `_` or `-`, starting with a letter or `_`");
                    self.push(diag);
                } else if name == "data" {
                    let diag = self
                        .at_key(
                            &child("vars", name),
                            "`data` is a reserved variable: it is the data directory",
                        )
                        .help("set it with --data DIR or ELECTRA_PIPE_DATA instead");
                    self.push(diag);
                } else {
                    raw.vars.push((name.clone(), value.clone()));
                }
            }
        }
        match top.get("stages") {
            None => {
                let diag = self
                    .at(
                        Some(Location { line: 1, col: 1 }),
                        "the pipeline has no `stages:` section",
                    )
                    .expected("`stages:` mapping stage names to their definitions");
                self.push(diag);
            }
            Some(stages) => {
                if let Some(stages) = self.mapping(stages, "stages", "`stages`") {
                    if stages.is_empty() {
                        let diag = self
                            .at_value("stages", "`stages` is empty")
                            .expected("at least one stage");
                        self.push(diag);
                    }
                    for (name, stage) in stages {
                        if let Some(stage) = self.raw_stage(name, stage) {
                            raw.stages.push(stage);
                        }
                    }
                }
            }
        }
        Some(raw)
    }

    fn raw_stage(&mut self, name: &str, value: &Value) -> Option<RawStage> {
        let path = child("stages", name);
        if !is_identifier(name) {
            let diag = self
                .at_key(&path, format!("`{name}` is not a valid stage name"))
                .expected("letters, digits, `_` or `-`, starting with a letter or `_`");
            self.push(diag);
            return None;
        }
        let map = self.mapping(value, &path, &format!("stage `{name}`"))?;
        self.unknown_keys(map, &path, STAGE_KEYS, &format!("stage `{name}`"));
        let kind = match map.get("kind") {
            Some(kind) => self.string(kind, &child(&path, "kind"), "`kind`")?,
            None => {
                let diag = self
                    .at_key(&path, format!("stage `{name}` has no `kind`"))
                    .expected(format!(
                        "`kind:` one of {}",
                        self.registry.names().join(", ")
                    ));
                self.push(diag);
                return None;
            }
        };
        let params = match map.get("params") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(params) => Value::Object(
                self.mapping(params, &child(&path, "params"), "`params`")?
                    .clone(),
            ),
        };
        let matrix = match map.get("matrix") {
            None => Vec::new(),
            Some(m) => {
                let m = self.mapping(m, &child(&path, "matrix"), "`matrix`")?;
                if m.is_empty() {
                    let diag = self
                        .at_value(
                            &child(&path, "matrix"),
                            format!("the matrix of stage `{name}` is empty"),
                        )
                        .expected("at least one axis, e.g. `seed: [1, 2, 3]`");
                    self.push(diag);
                }
                m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
            }
        };
        let needs = match map.get("needs") {
            None => Vec::new(),
            Some(Value::String(s)) => vec![(s.clone(), child(&path, "needs"))],
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let p = element(&child(&path, "needs"), i);
                    self.string(item, &p, "each entry of `needs`")
                        .map(|s| (s, p))
                })
                .collect(),
            Some(other) => {
                let diag = self
                    .at_value(&child(&path, "needs"), "`needs` must list stage names")
                    .found(describe(other))
                    .expected("a stage name or a list such as `[tokenize, pretrain[*]]`");
                self.push(diag);
                Vec::new()
            }
        };
        let retries = map.get("retries").map_or(Some(0), |v| {
            self.count(v, &child(&path, "retries"), "`retries`", 0, 100)
        })?;
        let resources = match map.get("resources") {
            None => Resources::default(),
            Some(resources) => self.resources(resources, &child(&path, "resources"))?,
        };
        let executor = match map.get("executor") {
            None => None,
            Some(v) => {
                let epath = child(&path, "executor");
                let executor = self.string(v, &epath, "`executor`")?;
                if !EXECUTORS.contains(&executor.as_str()) {
                    let diag = self
                        .at_value(&epath, format!("unknown executor `{executor}`"))
                        .expected(format!("one of {}", EXECUTORS.join(", ")))
                        .did_you_mean(&executor, EXECUTORS.iter().copied());
                    self.push(diag);
                    return None;
                }
                Some(executor)
            }
        };
        Some(RawStage {
            name: name.to_owned(),
            kind,
            params,
            matrix,
            needs,
            retries: retries as u32,
            resources,
            executor,
        })
    }

    /// A stage's `resources:` mapping.
    fn resources(&mut self, value: &Value, path: &str) -> Option<Resources> {
        let map = self.mapping(value, path, "`resources`")?;
        self.unknown_keys(map, path, RESOURCE_KEYS, "`resources`");
        let mut resources = Resources::default();
        if let Some(v) = map.get("cpus") {
            resources.cpus =
                self.count(v, &child(path, "cpus"), "`resources.cpus`", 1, 4096)? as usize;
        }
        if let Some(v) = map.get("gpus") {
            resources.gpus =
                Some(self.count(v, &child(path, "gpus"), "`resources.gpus`", 0, 1024)? as u32);
        }
        let mut text = |key: &str| -> Option<Option<String>> {
            match map.get(key) {
                None => Some(None),
                Some(v) => {
                    let what = format!("`resources.{key}`");
                    self.string(v, &child(path, key), &what).map(Some)
                }
            }
        };
        resources.memory = text("memory")?;
        resources.time = text("time")?;
        resources.partition = text("partition")?;
        resources.account = text("account")?;
        if let Some(v) = map.get("sbatch_args") {
            let apath = child(path, "sbatch_args");
            let Value::Array(items) = v else {
                let diag = self
                    .at_value(&apath, "`resources.sbatch_args` must list sbatch options")
                    .found(describe(v))
                    .expected("a list such as `[--qos=high, --constraint=a100]`");
                self.push(diag);
                return None;
            };
            for (i, item) in items.iter().enumerate() {
                let arg = self.string(item, &element(&apath, i), "each sbatch argument")?;
                resources.sbatch_args.push(arg);
            }
        }
        Some(resources)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(is_identifier("fine_tune-2"));
        assert!(!is_identifier("2x"));
        assert!(!is_identifier("a.b"));
        assert!(!is_identifier(""));
    }
}
