//! Runs a stage's parallel work on exactly the CPUs the orchestrator granted it.

use crate::error::{DataError, Result};

/// A rayon pool of `cpus` threads: `pool.install(..)` makes `tokenizers`' batch encoding,
/// burn's CPU kernels and our own parallel loops use no more than the stage's
/// `resources.cpus`. The pool's threads log where the creating thread logs (the stage's own
/// log file), not to the console.
pub fn worker_pool(cpus: usize) -> Result<rayon::ThreadPool> {
    let dispatch = tracing::dispatcher::get_default(|current| current.clone());
    rayon::ThreadPoolBuilder::new()
        .num_threads(cpus.max(1))
        .thread_name(|i| format!("stage-worker-{i}"))
        .start_handler(move |_| {
            // The guard would restore the previous default when dropped; the worker keeps
            // this one for its whole life.
            std::mem::forget(tracing::dispatcher::set_default(&dispatch));
        })
        .build()
        .map_err(|e| DataError::Config(format!("cannot start {cpus} worker threads: {e}")))
}
