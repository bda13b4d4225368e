//! The content-addressed cache: a sled index of stage results over an object store, guarded
//! by a process lock, with per-key work, checkpoint and log areas.
//!
//! Layout under the cache directory:
//! `LOCK` (process lock), `index/` (sled), `objects/` (blobs), `outputs/` (readable views),
//! `work/<key>/` (a running attempt), `checkpoints/<key>/` (resumable state), `staging/<key>/`
//! (a cluster job's files),
//! `logs/<pipeline>/` (stage logs), `runs/` (run journals), `tmp/`, `quarantine/`.

pub mod digest;
pub mod index;
pub mod key;
pub mod lock;
pub mod snapshot;
pub mod store;

use std::path::{Path, PathBuf};

pub use index::{Failure, Index, JobRecord, Latest, Record};
pub use key::KeyMaterial;
pub use lock::LockMode;
pub use store::{ObjectKind, ObjectRef, Problem, Store};

/// Errors from the cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Another process holds the cache and `--no-wait` was given.
    #[error("the cache {} is in use by another electra-pipe process ({holder}); try again when it finishes, or drop --no-wait to wait for it", cache.display())]
    Busy {
        /// The cache directory.
        cache: PathBuf,
        /// Who holds it.
        holder: String,
    },
    /// A filesystem operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// The sled index failed.
    #[error("cache index: {0}")]
    Index(#[from] sled::Error),
    /// A stage left something that cannot be stored as an output.
    #[error("{0}")]
    BadOutput(String),
}

impl CacheError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        CacheError::Io {
            context: context.into(),
            source,
        }
    }
}

/// The scratch directory's name inside an attempt's work area.
const SCRATCH: &str = "scratch";

/// Kills the process groups that stages under `work/<key>/scratch` recorded and that still
/// run: their run died (we hold the lock), and no stage may outlive its run.
fn reap_orphans(work: &Path) {
    let Ok(entries) = std::fs::read_dir(work) else {
        return;
    };
    for entry in entries.flatten() {
        let scratch = entry.path().join(SCRATCH);
        let killed = electra_pipe_api::process_groups::reap(&scratch);
        if !killed.is_empty() {
            tracing::warn!(
                "stopped {} process group(s) left running in {} by a run that died: {killed:?}",
                killed.len(),
                scratch.display()
            );
        }
    }
}

/// An open, locked cache.
pub struct Cache {
    root: PathBuf,
    /// The sled index.
    pub index: Index,
    /// The object store.
    pub store: Store,
    /// Data-input digests.
    pub digester: digest::DataDigester,
    /// The lock, unless this is a read-only view of a running run's snapshot.
    _lock: Option<lock::CacheLock>,
}

const DIRS: &[&str] = &[
    "objects",
    "outputs",
    "work",
    "checkpoints",
    "staging",
    "logs",
    "runs",
    "tmp",
];

impl Cache {
    /// Opens the cache at `root`, creating it if needed, after taking its lock.
    pub fn open(root: &Path, mode: LockMode) -> Result<Cache, CacheError> {
        std::fs::create_dir_all(root)
            .map_err(|e| CacheError::io(format!("creating cache {}", root.display()), e))?;
        let root = crate::spec::absolute(root);
        let lock = lock::acquire(
            &root,
            mode,
            &|holder| {
                tracing::warn!("the cache {} is in use ({holder}); waiting for it (use --no-wait to fail instead)", root.display())
            },
            &|holder| {
                tracing::warn!("taking over the cache lock left by a process that died ({holder})")
            },
        )?;
        for dir in DIRS {
            let path = root.join(dir);
            std::fs::create_dir_all(&path)
                .map_err(|e| CacheError::io(format!("creating {}", path.display()), e))?;
        }
        // A stage's processes that outlived a run killed with -9 stop before anything else.
        reap_orphans(&root.join("work"));
        // A snapshot left by a run that died is stale: readers must not take it for ours.
        let _ = std::fs::remove_file(root.join(snapshot::FILE));
        // Whatever is in tmp/ belongs to a process that died: we hold the lock.
        let tmp = root.join("tmp");
        store::remove_any(&tmp)
            .and_then(|()| std::fs::create_dir_all(&tmp))
            .map_err(|e| CacheError::io(format!("clearing {}", tmp.display()), e))?;
        let index = Index::open(&root.join("index"))?;
        Ok(Cache {
            digester: digest::DataDigester::new(index.stats.clone()),
            store: Store::new(&root),
            index,
            root,
            _lock: Some(lock),
        })
    }

    /// Opens the cache at `root` to read it (`show`, `plan`, `cache ls`): as [`Cache::open`]
    /// does, or, while a run holds it and publishes a [`snapshot`], a read-only view of that
    /// snapshot; then also says, for the user, whose state it is and how old.
    pub fn open_to_read(
        root: &Path,
        mode: LockMode,
    ) -> Result<(Cache, Option<String>), CacheError> {
        let snapshot = crate::spec::absolute(root).join(snapshot::FILE);
        match Cache::open(root, LockMode::NoWait) {
            Err(CacheError::Busy { holder, .. }) if snapshot.exists() => {
                let index = snapshot::read(&snapshot)?;
                let age = std::fs::metadata(&snapshot)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .map_or_else(String::new, |d| {
                        format!(" as of {:.0} s ago", d.as_secs_f64())
                    });
                let root = crate::spec::absolute(root);
                let note =
                    format!("the cache is in use ({holder}); showing the state it publishes{age}");
                Ok((
                    Cache {
                        digester: digest::DataDigester::new(index.stats.clone()),
                        store: Store::new(&root),
                        index,
                        root,
                        _lock: None,
                    },
                    Some(note),
                ))
            }
            Err(CacheError::Busy { .. }) if mode == LockMode::Wait => {
                Ok((Cache::open(root, mode)?, None))
            }
            other => other.map(|cache| (cache, None)),
        }
    }

    /// Enters `record` (run under `material`) into the index, the one way a result is stored:
    /// its outputs are already durable in the store, so the record never points at bytes that
    /// a crash could lose. The attempt's work and checkpoint areas are cleared after it.
    pub fn publish(&self, record: &Record, material: &KeyMaterial) -> Result<(), CacheError> {
        self.index.commit(record, material)?;
        let _ = store::remove_any(&self.work_dir(&record.key));
        let _ = store::remove_any(&self.checkpoint_dir(&record.key));
        Ok(())
    }

    /// Drops the stored `record` whose outputs failed verification with `problem`: the bad
    /// blob goes to `quarantine/` (never served again), the record out of the index.
    pub fn discard(&self, record: &Record, problem: &Problem) -> Result<(), CacheError> {
        tracing::warn!("{}: {problem}; recomputing it", record.stage);
        let (Problem::Corrupt { expected: bad, .. } | Problem::Missing { digest: bad }) = problem;
        self.store.quarantine(bad);
        self.index.remove_record(&record.key)
    }

    /// The cache directory (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The scratch area of an attempt at `key`.
    pub fn work_dir(&self, key: &str) -> PathBuf {
        self.root.join("work").join(key)
    }

    /// A stage's scratch directory (its `work_dir`) in an attempt at `key`.
    pub fn scratch_dir(&self, key: &str) -> PathBuf {
        self.work_dir(key).join(SCRATCH)
    }

    /// Where backends keep what they tune for this machine (GPU kernel autotuning), shared by
    /// every stage and kept across runs.
    pub fn tuning_dir(&self) -> PathBuf {
        self.root.join("tuning")
    }

    /// The checkpoint area of `key`, kept across crashes until the stage completes.
    pub fn checkpoint_dir(&self, key: &str) -> PathBuf {
        self.root.join("checkpoints").join(key)
    }

    /// The log file of an instance run under `key`.
    pub fn log_path(&self, pipeline: &str, stage: &str, key: &str) -> PathBuf {
        let safe: String = stage
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_=,.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.root
            .join("logs")
            .join(pipeline)
            .join(format!("{safe}.{}.log", store::short(key)))
    }

    /// The directory of run journals.
    pub fn runs_dir(&self) -> PathBuf {
        runs_dir(&self.root)
    }
}

/// Where run journals live for a cache directory, without opening (or locking) it.
pub fn runs_dir(root: &Path) -> PathBuf {
    root.join("runs")
}

/// The staging directory of a cluster job for `key` under the cache directory `root` (task,
/// outputs and result, on the filesystem the nodes share).
pub fn staging_dir(root: &Path, key: &str) -> PathBuf {
    root.join("staging").join(key)
}
