//! Executors run one stage attempt somewhere. `local` runs it in this process, on its own
//! thread; `slurm` ([`super::slurm`]) submits it as a Slurm job.

use std::fs::OpenOptions;
use std::sync::Mutex;

use electra_pipe_api::{Metrics, Params, StageContext, StageError, StageKind};

use crate::spec::Instance;

/// Runs stage attempts.
pub trait Executor: Send + Sync {
    /// The name used as `executor:` in pipeline files.
    fn name(&self) -> &'static str;
    /// Runs one attempt of `instance` (cache key `key`) with runtime `params` (references
    /// resolved to paths), leaving its outputs in `ctx.out_dir`.
    fn execute(
        &self,
        instance: &Instance,
        key: &str,
        params: &Params,
        ctx: &StageContext<'_>,
    ) -> Result<Metrics, StageError>;
    /// A line for the run's summary (what it submitted, how it ended), if it has one.
    fn report(&self) -> Option<String> {
        None
    }
}

/// Runs stages in-process; their `tracing` events go to the stage's log file.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalExecutor;

impl Executor for LocalExecutor {
    fn name(&self) -> &'static str {
        "local"
    }

    fn execute(
        &self,
        instance: &Instance,
        _key: &str,
        params: &Params,
        ctx: &StageContext<'_>,
    ) -> Result<Metrics, StageError> {
        run_logged(instance.kind.as_ref(), params, ctx)
    }
}

/// Runs `kind` on this thread with its `tracing` events appended to the stage's log file
/// (`ctx.log_path`).
pub fn run_logged(
    kind: &dyn StageKind,
    params: &Params,
    ctx: &StageContext<'_>,
) -> Result<Metrics, StageError> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&ctx.log_path)
        .map_err(|e| StageError::io(format!("opening log {}", ctx.log_path.display()), e))?;
    let subscriber = tracing_subscriber::fmt()
        .with_writer(Mutex::new(log))
        .with_ansi(false)
        .with_target(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || kind.run(params, ctx))
}
