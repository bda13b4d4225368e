//! The per-step JSON-lines log of a training loop (`metrics.jsonl`, `train_log.jsonl`): one
//! record per step, continued by a resumed run from its checkpoint's step.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{DataError, Result};

/// An open step log.
pub struct StepLog {
    path: PathBuf,
    file: File,
}

impl StepLog {
    /// Opens the log at `path` for appending after dropping the lines of steps after `step`
    /// (a resumed run recomputes them).
    pub fn open(path: &Path, step: u64) -> Result<Self> {
        truncate_after(path, step)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| DataError::io(format!("opening {}", path.display()), e))?;
        Ok(StepLog {
            path: path.to_owned(),
            file,
        })
    }

    /// Appends one step's record as a JSON line.
    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<()> {
        let line = serde_json::to_string(record).expect("a step record serializes");
        writeln!(self.file, "{line}")
            .map_err(|e| DataError::io(format!("writing {}", self.path.display()), e))
    }
}

/// Keeps only the lines of steps ≤ `step` (those after it will be recomputed).
fn truncate_after(path: &Path, step: u64) -> Result<()> {
    let Ok(file) = File::open(path) else {
        return Ok(());
    };
    let kept: Vec<String> = BufReader::new(file)
        .lines()
        .map_while(std::result::Result::ok)
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= step)
        })
        .collect();
    let mut text = kept.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    std::fs::write(path, text)
        .map_err(|e| DataError::io(format!("rewriting {}", path.display()), e))
}
