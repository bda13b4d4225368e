//! The run journal: one JSON line per event of a run (`runs/<id>.jsonl`), read back by
//! `electra-pipe status` while the run goes on or after it ended.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// One journal event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run began.
    RunStart {
        /// The run's id.
        run_id: String,
        /// Pipeline name.
        pipeline: String,
        /// Pipeline file.
        file: String,
        /// Orchestrator process id.
        pid: u32,
        /// Parallel jobs.
        jobs: usize,
        /// Every instance name, in topological order.
        stages: Vec<String>,
    },
    /// A stage changed state.
    Stage {
        /// Instance name.
        name: String,
        /// `cached`, `running`, `done`, `failed`, `blocked`, `cancelled`.
        state: String,
        /// Why it runs, why it failed, or what blocks it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// Seconds it took (for `done` and `failed`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seconds: Option<f64>,
        /// Its log file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log: Option<PathBuf>,
    },
    /// A running stage's own progress.
    Progress {
        /// Instance name.
        name: String,
        /// Units done.
        done: u64,
        /// Units in all, if known.
        total: Option<u64>,
        /// Status text.
        message: String,
    },
    /// The run ended.
    RunEnd {
        /// Whether every stage succeeded.
        ok: bool,
        /// Whether it was interrupted.
        interrupted: bool,
    },
}

/// A journal line: when, and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Seconds since the Unix epoch.
    pub t: f64,
    /// The event.
    #[serde(flatten)]
    pub event: Event,
}

/// Appends events to a run's journal file.
pub struct Journal {
    file: Mutex<File>,
}

/// Seconds since the Unix epoch, now.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Journal {
    /// Creates `runs/<run_id>.jsonl` and points `runs/latest` at it.
    pub fn create(runs_dir: &Path, run_id: &str) -> std::io::Result<Journal> {
        let path = runs_dir.join(format!("{run_id}.jsonl"));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let latest_tmp = runs_dir.join(".latest.tmp");
        std::fs::write(&latest_tmp, run_id)?;
        std::fs::rename(&latest_tmp, runs_dir.join("latest"))?;
        Ok(Journal {
            file: Mutex::new(file),
        })
    }

    /// Appends one event (a failed write is logged, not fatal: the journal is informational).
    pub fn write(&self, event: Event) {
        let mut line =
            serde_json::to_vec(&Entry { t: now(), event }).expect("journal entries serialize");
        line.push(b'\n');
        if let Err(e) = self.file.lock().expect("journal lock").write_all(&line) {
            tracing::warn!("cannot write the run journal: {e}");
        }
    }
}

/// Reads the latest run's journal under `runs_dir`: its id and entries.
pub fn read_latest(runs_dir: &Path) -> std::io::Result<(String, Vec<Entry>)> {
    let run_id = std::fs::read_to_string(runs_dir.join("latest"))?
        .trim()
        .to_owned();
    let file = File::open(runs_dir.join(format!("{run_id}.jsonl")))?;
    let entries = BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str(&line).ok())
        .collect();
    Ok((run_id, entries))
}
