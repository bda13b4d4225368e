//! Helpers for running stage kinds directly on the real data in `../shared/data`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU64, Ordering};

use electra_pipe_api::{
    CancelToken, Metrics, NoProgress, Progress, StageContext, StageError, StageKind,
};
use serde_json::Value;

/// The shared real data directory (`../shared/data` beside the project).
pub fn data() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    assert!(
        dir.join("README.md").exists(),
        "the real data is expected at {}",
        dir.display()
    );
    dir.canonicalize().unwrap()
}

/// A path under the data directory, as a string param.
pub fn data_path(relative: &str) -> String {
    data().join(relative).to_string_lossy().into_owned()
}

/// One stage run's directories.
pub struct StageRun {
    /// Holds every directory of the run.
    pub root: tempfile::TempDir,
    /// The result, or why it failed.
    pub result: Result<Metrics, StageError>,
}

impl StageRun {
    /// The output directory.
    pub fn out(&self) -> PathBuf {
        self.root.path().join("out")
    }
    /// An output's path as a string param.
    pub fn output(&self, name: &str) -> String {
        self.out().join(name).to_string_lossy().into_owned()
    }
    /// The metrics; panics with the error if the run failed.
    pub fn metrics(&self) -> &Metrics {
        match &self.result {
            Ok(metrics) => metrics,
            Err(e) => panic!("stage failed: {e}"),
        }
    }
    /// The error message; panics if the run succeeded.
    pub fn error(&self) -> String {
        match &self.result {
            Ok(_) => panic!("stage succeeded, expected an error"),
            Err(e) => e.to_string(),
        }
    }
}

/// Plans then runs `kind` with `params` on `cpus` CPUs, checking it creates every output it
/// declared.
pub fn run(kind: &dyn StageKind, params: Value, cpus: usize) -> StageRun {
    run_in(tempfile::tempdir().unwrap(), kind, params, cpus)
}

/// [`run`] with its directories in `root`.
pub fn run_in(
    root: tempfile::TempDir,
    kind: &dyn StageKind,
    params: Value,
    cpus: usize,
) -> StageRun {
    let plan = kind.plan(&params).unwrap_or_else(|e| panic!("plan: {e}"));
    for dir in ["out", "work", "checkpoint"] {
        std::fs::create_dir(root.path().join(dir)).unwrap();
    }
    let ctx = StageContext {
        stage_name: kind.name(),
        work_dir: root.path().join("work"),
        out_dir: root.path().join("out"),
        checkpoint_dir: root.path().join("checkpoint"),
        tuning_dir: root.path().join("tuning"),
        log_path: root.path().join("stage.log"),
        cpus,
        progress: &NoProgress,
        cancel: CancelToken::new(),
    };
    let result = kind.run(&params, &ctx);
    if result.is_ok() {
        for output in &plan.outputs {
            assert!(
                root.path().join("out").join(output).exists(),
                "declared output {output} was not created"
            );
        }
    }
    StageRun { root, result }
}

/// A metric as u64.
pub fn count(metrics: &Metrics, name: &str) -> u64 {
    metrics[name]
        .as_u64()
        .unwrap_or_else(|| panic!("metric {name}: {:?}", metrics.get(name)))
}

/// Cancels the stage once it reports `at` steps done.
struct CancelAt {
    at: u64,
    cancel: CancelToken,
    seen: AtomicU64,
}

impl Progress for CancelAt {
    fn update(&self, done: u64, _total: Option<u64>, _message: &str) {
        self.seen.store(done, Ordering::SeqCst);
        if done >= self.at {
            self.cancel.cancel();
        }
    }
}

/// Runs `kind` with `params`, cancels it once `at` steps are done (checking that it stopped
/// there), then runs it again in the same directories to resume; returns the resumed run.
pub fn run_interrupted(kind: &dyn StageKind, params: Value, at: u64) -> StageRun {
    let root = tempfile::tempdir().unwrap();
    for dir in ["out", "work", "checkpoint"] {
        std::fs::create_dir(root.path().join(dir)).unwrap();
    }
    let context = |progress: &'static dyn Progress, cancel: CancelToken| StageContext {
        stage_name: kind.name(),
        work_dir: root.path().join("work"),
        out_dir: root.path().join("out"),
        checkpoint_dir: root.path().join("checkpoint"),
        tuning_dir: root.path().join("tuning"),
        log_path: root.path().join("log"),
        cpus: 2,
        progress,
        cancel,
    };
    let cancel = CancelToken::new();
    let progress: &'static CancelAt = Box::leak(Box::new(CancelAt {
        at,
        cancel: cancel.clone(),
        seen: AtomicU64::new(0),
    }));
    let first = kind.run(&params, &context(progress, cancel));
    assert!(
        matches!(first, Err(StageError::Cancelled)),
        "the run was interrupted"
    );
    assert_eq!(progress.seen.load(Ordering::SeqCst), at);
    let result = kind.run(&params, &context(&NoProgress, CancelToken::new()));
    StageRun { root, result }
}
