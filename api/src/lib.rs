//! The contract between the electra-pipe orchestrator and its stage kinds.
//!
//! A *stage kind* (`command`, `tokenizer`, `pretrain`, ...) is a piece of code that the
//! orchestrator runs for every stage of that kind in a pipeline. The orchestrator knows nothing
//! of what a kind does; it only
//! 1. asks the kind to validate a stage's params and declare its inputs and outputs
//!    ([`StageKind::plan`]) before anything runs, and
//! 2. runs it with a [`StageContext`] (work dir, output dir, checkpoint dir, log, progress,
//!    cancellation) and stores the declared outputs it leaves in `out_dir`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

pub mod process_groups;
mod progress;

pub use progress::{NoProgress, Progress};

/// A stage's parameters after variable substitution: a JSON object.
///
/// At plan time a reference to another stage's output is still its `@stage/output` string;
/// at run time it has been replaced by the absolute path of that output.
pub type Params = Value;

/// What a stage kind declares about one configured stage before anything runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StagePlan {
    /// Every param value that names an input path (file or directory). The orchestrator
    /// digests the ones under the data directory and resolves the ones that reference other
    /// stages; both feed the stage's cache key.
    pub inputs: Vec<String>,
    /// Names of the outputs, each a relative path the stage will create inside `out_dir`.
    pub outputs: Vec<String>,
    /// Dotted paths of params whose value names another stage (`electra`, or one cell such as
    /// `electra[size=small]`). Before the stage runs (and before its cache key is computed) the
    /// orchestrator replaces each with `{"stage": <instance name>, "params": <its params>}`.
    /// This reads the other stage's configuration only: it adds no dependency.
    pub stage_params: Vec<String>,
}

/// A param that failed validation: where in `params` and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", if path.is_empty() { "params" } else { path.as_str() })]
pub struct ParamError {
    /// Dotted path inside `params` (`inputs.text`, `outputs[1]`); empty for the whole map.
    pub path: String,
    /// What was wrong: what was found and what was expected.
    pub message: String,
}

impl ParamError {
    /// A validation error at `path` inside params.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Deserializes params into a kind's typed parameter struct, reporting the failing field's
/// path (so the orchestrator can point at the file, line and column).
///
/// Use `#[serde(deny_unknown_fields)]` on the target type so misspelt keys are caught.
pub fn parse_params<T: DeserializeOwned>(params: &Params) -> Result<T, ParamError> {
    serde_path_to_error::deserialize(params).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ParamError::new(path, err.inner().to_string())
    })
}

/// Why a stage run did not produce outputs.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The stage ran and failed; the message says why (the log has the details).
    #[error("{0}")]
    Failed(String),
    /// The stage noticed [`CancelToken::is_cancelled`] and stopped early.
    #[error("cancelled")]
    Cancelled,
    /// An I/O error while running the stage.
    #[error("{context}: {source}")]
    Io {
        /// What the stage was doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl StageError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StageError::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<ParamError> for StageError {
    /// Params are checked at plan time; one that fails at run time fails the stage.
    fn from(err: ParamError) -> Self {
        StageError::Failed(err.to_string())
    }
}

/// Small scalar results a stage reports (losses, scores, counts); stored in its cache record.
pub type Metrics = BTreeMap<String, Value>;

/// A cooperative stop signal shared by the orchestrator and a running stage.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks everything holding this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// True once [`CancelToken::cancel`] was called; long loops should check it often.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Everything a running stage gets from the orchestrator.
pub struct StageContext<'a> {
    /// The stage instance's name, e.g. `finetune[task=sst2,seed=1]`.
    pub stage_name: &'a str,
    /// Scratch space, emptied before every attempt and removed afterwards.
    pub work_dir: PathBuf,
    /// Where the stage writes its declared outputs (each a relative path in here).
    pub out_dir: PathBuf,
    /// Survives crashes and retries of this exact stage (same cache key); removed when the
    /// stage completes. Long stages save resumable state here.
    pub checkpoint_dir: PathBuf,
    /// What backends tune for this machine (GPU kernel autotuning results), shared by every
    /// stage of the cache and kept across runs, so that a resumed stage runs the kernels its
    /// interrupted run chose.
    pub tuning_dir: PathBuf,
    /// The stage's own log file; raw output of child processes goes here. `tracing` events
    /// emitted on the stage's thread are written here as well.
    pub log_path: PathBuf,
    /// CPUs the stage may use (its `resources.cpus`).
    pub cpus: usize,
    /// Reports fine-grained progress (steps, examples) to the live display and run journal.
    pub progress: &'a dyn Progress,
    /// Set when the run is interrupted; stop soon and return [`StageError::Cancelled`].
    pub cancel: CancelToken,
}

/// A stage kind: validates params, declares inputs/outputs, and runs.
pub trait StageKind: Send + Sync {
    /// The name used as `kind:` in pipeline files.
    fn name(&self) -> &'static str;
    /// Bumped whenever the kind's code changes what it computes; part of every cache key.
    fn version(&self) -> u32;
    /// One line for `--help` and error messages listing the known kinds.
    fn summary(&self) -> &'static str;
    /// Validates params (types, ranges, unknown keys) and declares inputs and outputs.
    /// Must not read input files: it runs for every stage before anything executes.
    fn plan(&self, params: &Params) -> Result<StagePlan, ParamError>;
    /// Produces the declared outputs inside `ctx.out_dir`.
    fn run(&self, params: &Params, ctx: &StageContext<'_>) -> Result<Metrics, StageError>;
}

/// The set of stage kinds a pipeline may use, by name.
#[derive(Default, Clone)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<dyn StageKind>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a kind under its [`StageKind::name`].
    pub fn register(&mut self, kind: Arc<dyn StageKind>) {
        self.kinds.insert(kind.name(), kind);
    }
    /// The kind called `name`, if registered.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn StageKind>> {
        self.kinds.get(name)
    }
    /// All registered kinds, sorted by name.
    pub fn kinds(&self) -> impl Iterator<Item = &Arc<dyn StageKind>> {
        self.kinds.values()
    }
    /// The registered kind names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.keys().copied().collect()
    }
}
