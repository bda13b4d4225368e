//! The sled index: cache key → [`Record`], plus each stage's latest key material (to explain
//! why it will re-run), its last failure, and a stat cache for data-file digests.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sled::transaction::TransactionError;
use sled::Transactional;

use super::key::KeyMaterial;
use super::store::ObjectRef;
use super::CacheError;

/// A finished stage's result, committed only after all its outputs are stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The cache key.
    pub key: String,
    /// The pipeline it ran in.
    pub pipeline: String,
    /// The instance name.
    pub stage: String,
    /// Its stage kind.
    pub kind: String,
    /// The kind's version.
    pub kind_version: u32,
    /// Each declared output's stored object.
    pub outputs: BTreeMap<String, ObjectRef>,
    /// Small metrics the stage reported.
    pub metrics: BTreeMap<String, serde_json::Value>,
    /// When it started (RFC 3339).
    pub started: String,
    /// When it finished (RFC 3339).
    pub finished: String,
    /// Wall-clock seconds of the successful attempt.
    pub duration_secs: f64,
    /// Host it ran on.
    pub host: String,
    /// The electra-pipe version that ran it.
    pub electra_pipe_version: String,
    /// The stage's log file.
    pub log: PathBuf,
    /// The run that produced it.
    pub run_id: String,
}

/// What a stage instance was last run (or found cached) with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latest {
    /// Its key then.
    pub key: String,
    /// The key material then.
    pub material: KeyMaterial,
}

/// The last failure of a stage instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The key it failed under.
    pub key: String,
    /// When (RFC 3339).
    pub when: String,
    /// Why.
    pub error: String,
    /// Its log.
    pub log: PathBuf,
}

/// A cluster job submitted for a cache key. It is recorded before the orchestrator waits on
/// the job, so that an orchestrator restarted while the job runs reattaches to it instead of
/// submitting it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The scheduler's job id (an array's, for an array task).
    pub job_id: u64,
    /// The task's index, when the job is a task of an array (`job_id`_`array_task`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_task: Option<u32>,
    /// The instance name.
    pub stage: String,
    /// When it was submitted (RFC 3339).
    pub submitted: String,
    /// The run that submitted it.
    pub run_id: String,
}

/// The sled database of a cache.
#[derive(Clone)]
pub struct Index {
    db: sled::Db,
    /// Bumped by every change, so a snapshot is written only when something changed.
    changes: Arc<AtomicU64>,
    records: sled::Tree,
    latest: sled::Tree,
    failures: sled::Tree,
    jobs: sled::Tree,
    /// Data-file digests by path, valid while size, mtime, ctime and inode are unchanged.
    pub stats: sled::Tree,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("index values serialize")
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

/// The `latest`/`failures` key of an instance in a pipeline.
fn instance_key(pipeline: &str, stage: &str) -> String {
    format!("{pipeline}\u{0}{stage}")
}

impl Index {
    /// Opens (or creates) the index in `dir`.
    pub fn open(dir: &std::path::Path) -> Result<Index, CacheError> {
        Self::from_db(sled::Config::new().path(dir).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Index, CacheError> {
        Ok(Index {
            changes: Arc::new(AtomicU64::new(0)),
            records: db.open_tree("records")?,
            latest: db.open_tree("latest")?,
            failures: db.open_tree("failures")?,
            jobs: db.open_tree("jobs")?,
            stats: db.open_tree("stats")?,
            db,
        })
    }

    /// Flushes a change to disk and counts it.
    fn flushed(&self) -> Result<(), CacheError> {
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.db.flush()?;
        Ok(())
    }

    /// How many changes this handle (and its clones) made: a snapshot is due when it moves.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    /// The trees a snapshot carries, by name (everything but the data-file stat cache).
    pub(super) fn snapshot_trees(&self) -> [(&'static str, &sled::Tree); 4] {
        [
            ("records", &self.records),
            ("latest", &self.latest),
            ("failures", &self.failures),
            ("jobs", &self.jobs),
        ]
    }

    /// An index in a temporary database (deleted when dropped), for a snapshot to fill.
    pub(super) fn temporary() -> Result<Index, CacheError> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    /// The record for `key`, if committed.
    pub fn record(&self, key: &str) -> Result<Option<Record>, CacheError> {
        Ok(self.records.get(key)?.and_then(|b| decode(&b)))
    }

    /// Every record.
    pub fn records(&self) -> Result<Vec<Record>, CacheError> {
        let mut out = Vec::new();
        for item in self.records.iter() {
            let (_, bytes) = item?;
            if let Some(record) = decode(&bytes) {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Commits a record and the instance's latest material in one transaction, clears its
    /// failure, and flushes to disk.
    pub fn commit(&self, record: &Record, material: &KeyMaterial) -> Result<(), CacheError> {
        let id = instance_key(&record.pipeline, &record.stage);
        let latest = Latest {
            key: record.key.clone(),
            material: material.clone(),
        };
        (&self.records, &self.latest, &self.failures)
            .transaction(|(records, latest_tree, failures)| {
                records.insert(record.key.as_bytes(), encode(record))?;
                latest_tree.insert(id.as_bytes(), encode(&latest))?;
                failures.remove(id.as_bytes())?;
                Ok(())
            })
            .map_err(|e: TransactionError<()>| match e {
                TransactionError::Storage(e) => CacheError::Index(e),
                TransactionError::Abort(()) => {
                    CacheError::Index(sled::Error::Unsupported("aborted".into()))
                }
            })?;
        self.flushed()?;
        Ok(())
    }

    /// Notes that an instance now resolves to `key` (a cache hit with different material).
    pub fn set_latest(
        &self,
        pipeline: &str,
        stage: &str,
        key: &str,
        material: &KeyMaterial,
    ) -> Result<(), CacheError> {
        let latest = Latest {
            key: key.to_owned(),
            material: material.clone(),
        };
        self.latest
            .insert(instance_key(pipeline, stage), encode(&latest))?;
        Ok(())
    }

    /// What an instance was last run with.
    pub fn latest(&self, pipeline: &str, stage: &str) -> Result<Option<Latest>, CacheError> {
        Ok(self
            .latest
            .get(instance_key(pipeline, stage))?
            .and_then(|b| decode(&b)))
    }

    /// Every (pipeline, instance, latest) entry.
    pub fn all_latest(&self) -> Result<Vec<(String, String, Latest)>, CacheError> {
        let mut out = Vec::new();
        for item in self.latest.iter() {
            let (k, v) = item?;
            let k = String::from_utf8_lossy(&k).into_owned();
            if let (Some((pipeline, stage)), Some(latest)) = (k.split_once('\u{0}'), decode(&v)) {
                out.push((pipeline.to_owned(), stage.to_owned(), latest));
            }
        }
        Ok(out)
    }

    /// Records an instance's failure.
    pub fn set_failure(
        &self,
        pipeline: &str,
        stage: &str,
        failure: &Failure,
    ) -> Result<(), CacheError> {
        self.failures
            .insert(instance_key(pipeline, stage), encode(failure))?;
        self.flushed()?;
        Ok(())
    }

    /// An instance's last failure, if it has not succeeded since.
    pub fn failure(&self, pipeline: &str, stage: &str) -> Result<Option<Failure>, CacheError> {
        Ok(self
            .failures
            .get(instance_key(pipeline, stage))?
            .and_then(|b| decode(&b)))
    }

    /// Records the cluster job running `key`, durably (before anyone waits on it).
    pub fn record_job(&self, key: &str, job: &JobRecord) -> Result<(), CacheError> {
        self.jobs.insert(key, encode(job))?;
        self.flushed()?;
        Ok(())
    }

    /// The cluster job recorded as running `key`, if any.
    pub fn job(&self, key: &str) -> Result<Option<JobRecord>, CacheError> {
        Ok(self.jobs.get(key)?.and_then(|b| decode(&b)))
    }

    /// Forgets the job of `key` once its result is imported, or it failed or was cancelled.
    pub fn forget_job(&self, key: &str) -> Result<(), CacheError> {
        self.jobs.remove(key)?;
        self.flushed()?;
        Ok(())
    }

    /// Every recorded cluster job, by cache key.
    pub fn jobs(&self) -> Result<Vec<(String, JobRecord)>, CacheError> {
        let mut out = Vec::new();
        for item in self.jobs.iter() {
            let (key, value) = item?;
            if let Some(job) = decode(&value) {
                out.push((String::from_utf8_lossy(&key).into_owned(), job));
            }
        }
        Ok(out)
    }

    /// Deletes a record (its objects are left to `cache gc`).
    pub fn remove_record(&self, key: &str) -> Result<(), CacheError> {
        self.records.remove(key)?;
        self.flushed()?;
        Ok(())
    }

    /// Deletes latest entries whose key is not kept.
    pub fn retain_latest(&self, keep: &dyn Fn(&str) -> bool) -> Result<(), CacheError> {
        for item in self.latest.iter() {
            let (k, v) = item?;
            if decode::<Latest>(&v).is_none_or(|l| !keep(&l.key)) {
                self.latest.remove(k)?;
            }
        }
        self.flushed()?;
        Ok(())
    }
}
