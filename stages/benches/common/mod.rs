//! What the stage benchmarks share: a stage context in a scratch directory and the data
//! directory to read.

use std::path::{Path, PathBuf};

use electra_pipe_api::{CancelToken, NoProgress, StageContext};

/// A context for running a stage kind directly, with its directories under `root`.
pub fn context<'a>(root: &Path, name: &'a str, cpus: usize) -> StageContext<'a> {
    for dir in ["out", "work", "ckpt"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    StageContext {
        stage_name: name,
        work_dir: root.join("work"),
        out_dir: root.join("out"),
        checkpoint_dir: root.join("ckpt"),
        tuning_dir: root.join("tuning"),
        log_path: root.join("log"),
        cpus,
        progress: &NoProgress,
        cancel: CancelToken::new(),
    }
}

/// The real data: `given` (the first bench argument), else `$ELECTRA_PIPE_DATA`, else
/// `../shared/data` beside the project.
pub fn data_dir(given: Option<String>) -> PathBuf {
    given
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("ELECTRA_PIPE_DATA").map(PathBuf::from))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"))
}
