//! Pipeline files: reading, checking and expanding them into stage instances.
//!
//! [`load`] turns a YAML file into a [`Pipeline`]: variables substituted, matrices expanded
//! into one [`Instance`] per cell, references to other stages' outputs resolved into
//! dependencies, every stage's params validated by its kind, and the graph checked for
//! cycles. Any problem becomes a [`Diagnostic`] pointing at the file, line and column.

pub mod diag;
mod expand;
pub mod locate;
mod raw;
pub mod reference;
mod resolve;
pub mod vars;
mod yaml;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use electra_pipe_api::{Registry, StageKind, StagePlan};
use serde_json::Value;

use crate::dag::Dag;
pub use diag::{Diagnostic, Diagnostics, Location, Source};
use locate::Locator;
pub use raw::{Resources, EXECUTORS};

/// How to read a pipeline: the data directory and `--set` overrides.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The directory `${data}` stands for (made absolute by [`load`]).
    pub data_dir: PathBuf,
    /// `--set name=value` overrides of `vars`, in order.
    pub overrides: Vec<(String, String)>,
    /// The executor of stages that name none (`--executor`; `local` when unset).
    pub executor: Option<String>,
}

/// Why a pipeline could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read pipeline file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is invalid; every problem found.
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Where an instance's param refers to another instance's output.
#[derive(Debug, Clone)]
pub struct RefSlot {
    /// JSON pointer of the string inside params that holds the reference.
    pub pointer: String,
    /// The referenced instance (index into [`Pipeline::instances`]).
    pub target: usize,
    /// The declared output it names.
    pub output: String,
    /// A path inside that output when it is a directory (`model/config.json` → `config.json`).
    pub subpath: Option<String>,
}

/// One runnable stage: a stage, or one cell of a matrix stage.
pub struct Instance {
    /// `stage` or `stage[key=value,...]`.
    pub name: String,
    /// The stage it comes from.
    pub stage: String,
    /// The cell's matrix values, in axis order.
    pub cell: Vec<(String, Value)>,
    /// Its stage kind.
    pub kind: Arc<dyn StageKind>,
    /// Params after substitution; reference slots hold `@instance/output` strings.
    pub params: Value,
    /// The references inside params.
    pub refs: Vec<RefSlot>,
    /// Every instance this one depends on (references and `needs`), sorted, unique.
    pub deps: Vec<usize>,
    /// Each dependency with the file path (`stages.x.params.text`) that creates it.
    pub dep_sites: Vec<(usize, String)>,
    /// What the kind declared.
    pub plan: StagePlan,
    /// Absolute paths of declared inputs that are files or directories, not references.
    pub data_inputs: Vec<String>,
    /// Extra attempts after a failure.
    pub retries: u32,
    /// What it asks of the machine (CPUs, and cluster requests).
    pub resources: Resources,
    /// Which executor runs it (`local` or `slurm`).
    pub executor: String,
}

/// A loaded, checked pipeline.
pub struct Pipeline {
    /// The file's text and path.
    pub source: Arc<Source>,
    /// `pipeline:` or the file's stem; scopes the "last run of this stage" history.
    pub name: String,
    /// The absolute data directory.
    pub data_dir: PathBuf,
    /// Every instance, in file order (matrix cells in row-major order).
    pub instances: Vec<Instance>,
    /// The dependency graph and a topological order.
    pub dag: Dag,
}

impl Pipeline {
    /// Instances whose name is `selector`, or whose stage is `selector`.
    pub fn select(&self, selector: &str) -> Vec<usize> {
        (0..self.instances.len())
            .filter(|&i| self.instances[i].name == selector || self.instances[i].stage == selector)
            .collect()
    }
}

/// Collects diagnostics while checking one file.
pub(crate) struct Checker {
    source: Arc<Source>,
    locator: Locator,
    registry: Registry,
    diags: Vec<Diagnostic>,
}

impl Checker {
    fn at(&self, location: Option<Location>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(&self.source, location, message)
    }
    fn at_key(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        self.at(self.locator.key(path), message)
    }
    fn at_value(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        self.at(self.locator.value(path), message)
    }
    fn push(&mut self, diag: Diagnostic) {
        self.diags.push(diag);
    }
    fn failed(&self) -> bool {
        !self.diags.is_empty()
    }
    fn into_error(self) -> LoadError {
        LoadError::Invalid(Diagnostics(self.diags))
    }
}

/// Reads, checks and expands the pipeline at `path`.
pub fn load(
    path: &Path,
    options: &LoadOptions,
    registry: &Registry,
) -> Result<Pipeline, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    let source = Arc::new(Source {
        path: path.to_owned(),
        text,
    });
    let data_dir = absolute(&options.data_dir);
    let mut checker = Checker {
        locator: Locator::new(&source.text),
        source: Arc::clone(&source),
        registry: registry.clone(),
        diags: Vec::new(),
    };
    for dup in std::mem::take(&mut checker.locator.duplicates) {
        let what = match dup.parent.as_str() {
            "stages" => format!("stage `{}` is defined twice", dup.key),
            "vars" => format!("variable `{}` is defined twice", dup.key),
            "" => format!("`{}` appears twice at the top level", dup.key),
            parent => format!("key `{}` appears twice in `{parent}`", dup.key),
        };
        let diag = checker
            .at(Some(dup.again), what)
            .found(format!("a second `{}` at line {}", dup.key, dup.again.line))
            .expected(format!(
                "unique names; the first is at line {}, column {}",
                dup.first.line, dup.first.col
            ));
        checker.push(diag);
    }
    if checker.failed() {
        return Err(checker.into_error());
    }
    let doc = match yaml::parse(&source.text) {
        Ok(doc) => doc,
        Err(err) => {
            let location = err
                .location
                .or_else(|| err.path.as_deref().and_then(|p| checker.locator.value(p)));
            let diag = checker.at(location, err.message);
            checker.push(diag);
            return Err(checker.into_error());
        }
    };
    let raw = match checker.raw_pipeline(&doc) {
        Some(raw) if !checker.failed() => raw,
        _ => return Err(checker.into_error()),
    };
    let vars = checker.resolve_vars(&raw.vars, &options.overrides, &data_dir);
    let mut instances = Vec::new();
    let mut needs = Vec::new();
    let mut stages = resolve::StageIndex::default();
    for stage in &raw.stages {
        let default_executor = options.executor.as_deref().unwrap_or("local");
        if let Some((axes, cells)) = checker.expand_stage(stage, &vars, default_executor) {
            stages.insert(
                &stage.name,
                axes,
                instances.len()..instances.len() + cells.len(),
            );
            for cell in cells {
                instances.push(cell.instance);
                needs.push(cell.needs);
            }
        }
    }
    if checker.failed() {
        return Err(checker.into_error());
    }
    checker.resolve(&mut instances, &needs, &stages);
    if checker.failed() {
        return Err(checker.into_error());
    }
    let dag = match Dag::build(&instances) {
        Ok(dag) => dag,
        Err(cycle) => {
            checker.report_cycle(&instances, &cycle);
            return Err(checker.into_error());
        }
    };
    let name = raw.name.unwrap_or_else(|| {
        path.file_stem().map_or_else(
            || "pipeline".to_owned(),
            |s| s.to_string_lossy().into_owned(),
        )
    });
    Ok(Pipeline {
        source,
        name,
        data_dir,
        instances,
        dag,
    })
}

/// `path` made absolute against the current directory (without resolving links).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}
