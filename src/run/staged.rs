//! A stage run by another process, such as a Slurm job on a compute node, and the
//! orchestrator exchange files in a staging directory on the shared filesystem:
//!
//! - `task.json` ([`StagedTask`]), written by the orchestrator: the kind, the resolved params
//!   and where to work, write outputs, keep checkpoints and log;
//! - `out/`, the stage's outputs, written by the job (`electra-pipe exec-stage task.json`);
//! - `result.json` ([`StagedResult`]), written last by the job: success with the metrics and a
//!   manifest of every output file (size and BLAKE3), or the error.
//!
//! Only the orchestrator writes the sled index: it checks the manifest against the files
//! ([`verify`]) before it imports anything into the store.

use std::path::{Path, PathBuf};

use electra_pipe_api::{CancelToken, Metrics, NoProgress, Registry, StageContext, StageError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cache::store::hash_file;

/// The task file's name in a staging directory.
pub const TASK_FILE: &str = "task.json";
/// The result file's name in a staging directory.
pub const RESULT_FILE: &str = "result.json";

/// What to run: everything `exec-stage` needs, with absolute paths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagedTask {
    /// The instance name (for logs).
    pub stage_name: String,
    /// The stage kind.
    pub kind: String,
    /// The kind's version the orchestrator planned with; a node running another build refuses.
    pub kind_version: u32,
    /// Params with references resolved to paths.
    pub params: Value,
    /// The declared outputs, relative to `out_dir`.
    pub outputs: Vec<String>,
    /// Scratch space.
    pub work_dir: PathBuf,
    /// Where the outputs go.
    pub out_dir: PathBuf,
    /// Resumable state, kept across attempts.
    pub checkpoint_dir: PathBuf,
    /// The cache's tuning folder (GPU kernel autotuning), shared by every stage.
    pub tuning_dir: PathBuf,
    /// The stage's log file (appended to).
    pub log_path: PathBuf,
    /// CPUs the stage may use.
    pub cpus: usize,
}

/// One output file, as the job saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    /// Path relative to `out_dir`.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// BLAKE3 of the content, hex.
    pub blake3: String,
}

/// How the job ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StagedResult {
    /// The stage succeeded and left these files.
    Succeeded {
        /// Its metrics.
        metrics: Metrics,
        /// Every file under its declared outputs.
        files: Vec<FileDigest>,
        /// The node it ran on.
        host: String,
    },
    /// The stage failed.
    Failed {
        /// Why.
        error: String,
        /// The node it ran on.
        host: String,
    },
    /// The job was asked to stop (scancel) and the stage stopped early.
    Cancelled,
}

/// Writes `value` as JSON to `path` atomically (a temporary file renamed into place).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let temp = path.with_extension("json.partial");
    let text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    std::fs::write(&temp, text)?;
    std::fs::rename(&temp, path)
}

/// Reads a JSON file written by [`write_json`].
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{} is not valid: {e}", path.display()))
}

/// Runs a staged task in this process (the job's side): the stage, then the manifest of its
/// outputs. `cancel` stops it early (SIGTERM from scancel).
pub fn run_task(task: &StagedTask, registry: &Registry, cancel: CancelToken) -> StagedResult {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let failed = |error: String| StagedResult::Failed {
        error,
        host: host.clone(),
    };
    let Some(kind) = registry.get(&task.kind) else {
        return failed(format!(
            "this electra-pipe build has no stage kind `{}`",
            task.kind
        ));
    };
    if kind.version() != task.kind_version {
        return failed(format!(
            "stage kind `{}` is version {} here but the orchestrator planned version {}: run the same electra-pipe build on the nodes",
            task.kind,
            kind.version(),
            task.kind_version
        ));
    }
    for dir in [&task.work_dir, &task.out_dir, &task.checkpoint_dir] {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return failed(format!("cannot create {}: {e}", dir.display()));
        }
    }
    let ctx = StageContext {
        stage_name: &task.stage_name,
        work_dir: task.work_dir.clone(),
        out_dir: task.out_dir.clone(),
        checkpoint_dir: task.checkpoint_dir.clone(),
        tuning_dir: task.tuning_dir.clone(),
        log_path: task.log_path.clone(),
        cpus: task.cpus,
        progress: &NoProgress,
        cancel,
    };
    match super::executor::run_logged(kind.as_ref(), &task.params, &ctx) {
        Ok(metrics) => match manifest(&task.out_dir, &task.outputs) {
            Ok(files) => StagedResult::Succeeded {
                metrics,
                files,
                host,
            },
            Err(error) => failed(error),
        },
        Err(StageError::Cancelled) => StagedResult::Cancelled,
        Err(error) => failed(error.to_string()),
    }
}

/// Every file under the declared `outputs` in `out_dir`, sorted by path, with its digest.
pub fn manifest(out_dir: &Path, outputs: &[String]) -> Result<Vec<FileDigest>, String> {
    let mut files = Vec::new();
    let mut stack: Vec<String> = outputs.to_vec();
    while let Some(rel) = stack.pop() {
        let path = out_dir.join(&rel);
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|_| format!("the stage did not create its declared output `{rel}`"))?;
        if meta.is_dir() {
            let entries = std::fs::read_dir(&path)
                .map_err(|e| format!("cannot list {}: {e}", path.display()))?;
            for entry in entries {
                let entry = entry.map_err(|e| format!("cannot list {}: {e}", path.display()))?;
                stack.push(format!("{rel}/{}", entry.file_name().to_string_lossy()));
            }
        } else if meta.is_file() {
            let blake3 =
                hash_file(&path).map_err(|e| format!("cannot hash {}: {e}", path.display()))?;
            files.push(FileDigest {
                path: rel,
                bytes: meta.len(),
                blake3,
            });
        } else {
            return Err(format!(
                "`{rel}` is neither a regular file nor a directory (symbolic links are not stored)"
            ));
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Checks that `out_dir` holds exactly the files of the job's manifest, byte for byte (a job
/// killed while writing, or a node that saw another filesystem, fails here).
pub fn verify(out_dir: &Path, outputs: &[String], expected: &[FileDigest]) -> Result<(), String> {
    let found = manifest(out_dir, outputs)?;
    if found == expected {
        return Ok(());
    }
    let differing = expected
        .iter()
        .find(|e| !found.contains(e))
        .map(|e| e.path.clone())
        .or_else(|| {
            found
                .iter()
                .find(|f| !expected.contains(f))
                .map(|f| f.path.clone())
        })
        .unwrap_or_default();
    Err(format!(
        "the job's outputs in {} do not match its manifest (first difference: `{differing}`)",
        out_dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_lists_every_file_and_verify_catches_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        std::fs::create_dir_all(out.join("model/sub")).unwrap();
        std::fs::write(out.join("model/a.txt"), "a").unwrap();
        std::fs::write(out.join("model/sub/b.txt"), "bb").unwrap();
        std::fs::write(out.join("metrics.json"), "{}").unwrap();
        let outputs = vec!["model".to_owned(), "metrics.json".to_owned()];
        let files = manifest(out, &outputs).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["metrics.json", "model/a.txt", "model/sub/b.txt"]);
        assert_eq!(files[2].bytes, 2);
        verify(out, &outputs, &files).unwrap();

        std::fs::write(out.join("model/sub/b.txt"), "bc").unwrap();
        let error = verify(out, &outputs, &files).unwrap_err();
        assert!(error.contains("model/sub/b.txt"), "{error}");
        std::fs::remove_dir_all(out.join("model")).unwrap();
        let error = verify(out, &outputs, &files).unwrap_err();
        assert!(error.contains("declared output `model`"), "{error}");
    }

    #[test]
    fn results_round_trip_through_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RESULT_FILE);
        let result = StagedResult::Failed {
            error: "boom".into(),
            host: "node1".into(),
        };
        write_json(&path, &result).unwrap();
        assert_eq!(read_json::<StagedResult>(&path).unwrap(), result);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#""status": "failed""#), "{text}");
    }
}
