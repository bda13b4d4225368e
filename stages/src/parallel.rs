//! Runs a stage's parallel work on exactly the CPUs the orchestrator granted it.

use crate::error::{DataError, Result};

/// A rayon pool of `cpus` threads: `pool.install(..)` makes `tokenizers`' batch encoding and
/// our own parallel loops use no more than the stage's `resources.cpus`.
pub fn worker_pool(cpus: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(cpus.max(1))
        .thread_name(|i| format!("stage-worker-{i}"))
        .build()
        .map_err(|e| DataError::Config(format!("cannot start {cpus} worker threads: {e}")))
}
