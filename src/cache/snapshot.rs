//! A read-only view of the index for `show`, `plan` and `cache ls` while a run holds the cache
//! (sled is single-process). The run publishes the index's records, latest materials, failures
//! and cluster jobs as one JSON-lines file, `index-snapshot.jsonl`, written to a temporary name
//! and renamed into place, whenever the index changed and at most every few seconds; readers
//! load it into a temporary sled database. The file is removed when the run ends.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::index::Index;
use super::CacheError;

/// The snapshot's file name in the cache directory.
pub const FILE: &str = "index-snapshot.jsonl";
/// The shortest wait between two snapshots; longer when writing one takes long (10×).
const EVERY: Duration = Duration::from_secs(2);

/// One key and value of one tree.
#[derive(Serialize, Deserialize)]
struct Entry {
    tree: String,
    key: String,
    value: String,
}

/// Writes `index`'s trees to `path` (a temporary name, then renamed).
pub fn write(index: &Index, path: &Path) -> Result<(), CacheError> {
    let temp = path.with_extension(format!("tmp-{}", std::process::id()));
    let io = |e| CacheError::io(format!("writing {}", temp.display()), e);
    let mut out = BufWriter::new(File::create(&temp).map_err(io)?);
    for (tree, entries) in index.snapshot_trees() {
        for item in entries.iter() {
            let (key, value) = item?;
            let entry = Entry {
                tree: tree.to_owned(),
                key: String::from_utf8_lossy(&key).into_owned(),
                value: String::from_utf8_lossy(&value).into_owned(),
            };
            serde_json::to_writer(&mut out, &entry).map_err(|e| io(e.into()))?;
            out.write_all(b"\n").map_err(io)?;
        }
    }
    // Not fsynced: readers need it whole (the rename), not durable; a crash leaves a stale
    // file, which the next process to hold the cache removes.
    out.into_inner().map_err(|e| io(e.into_error()))?;
    std::fs::rename(&temp, path)
        .map_err(|e| CacheError::io(format!("publishing {}", path.display()), e))
}

/// The index as the snapshot at `path` has it, in a temporary database.
pub fn read(path: &Path) -> Result<Index, CacheError> {
    let io = |e| CacheError::io(format!("reading {}", path.display()), e);
    let index = Index::temporary()?;
    let trees = index.snapshot_trees();
    for (n, line) in BufReader::new(File::open(path).map_err(io)?)
        .lines()
        .enumerate()
    {
        let line = line.map_err(io)?;
        let entry: Entry = serde_json::from_str(&line).map_err(|e| {
            CacheError::io(
                format!("reading {} line {}", path.display(), n + 1),
                std::io::Error::other(e),
            )
        })?;
        if let Some((_, tree)) = trees.iter().find(|(name, _)| *name == entry.tree) {
            tree.insert(entry.key.as_bytes(), entry.value.as_bytes())?;
        }
    }
    Ok(index)
}

/// Keeps the snapshot of a run's index current until dropped (then removes it).
pub struct Publisher {
    path: PathBuf,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Publisher {
    /// Publishes `index` to `root/FILE` now and whenever it changed, at most every [`EVERY`].
    pub fn start(index: Index, root: &Path) -> Publisher {
        let path = root.join(FILE);
        let (stop, stopped) = mpsc::channel::<()>();
        let target = path.clone();
        let thread = std::thread::spawn(move || {
            let mut published = None;
            let mut wait = Duration::ZERO;
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
                let changes = index.changes();
                wait = EVERY;
                if published == Some(changes) {
                    continue;
                }
                let started = Instant::now();
                match write(&index, &target) {
                    Ok(()) => published = Some(changes),
                    Err(e) => tracing::warn!("the index snapshot for readers: {e}"),
                }
                wait = wait.max(started.elapsed() * 10);
            }
        });
        Publisher {
            path,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{JobRecord, KeyMaterial};

    #[test]
    fn a_snapshot_carries_records_latest_failures_and_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("index")).unwrap();
        let job = JobRecord {
            job_id: 389,
            array_task: Some(4),
            stage: "ft[seed=1]".into(),
            submitted: "2026-12-06T07:00:00Z".into(),
            run_id: "r1".into(),
        };
        index.record_job("k1", &job).unwrap();
        index
            .set_latest(
                "p",
                "ft[seed=1]",
                "k1",
                &KeyMaterial {
                    kind: "finetune".into(),
                    kind_version: 3,
                    params: serde_json::Value::Null,
                    inputs: Default::default(),
                },
            )
            .unwrap();
        let path = dir.path().join(FILE);
        write(&index, &path).unwrap();
        let copy = read(&path).unwrap();
        assert_eq!(copy.job("k1").unwrap().unwrap().array_task, Some(4));
        assert_eq!(copy.latest("p", "ft[seed=1]").unwrap().unwrap().key, "k1");
        assert!(copy.records().unwrap().is_empty());
    }

    #[test]
    fn the_publisher_writes_at_once_and_removes_the_file_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("index")).unwrap();
        let publisher = Publisher::start(index, dir.path());
        let path = dir.path().join(FILE);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !path.exists() {
            assert!(Instant::now() < deadline, "no snapshot");
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(publisher);
        assert!(!path.exists());
    }
}
