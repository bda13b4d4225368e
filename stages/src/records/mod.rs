//! The files one stage kind writes and another reads, each one serde type written and read
//! through that type, so the reader cannot drift from the writer: a pretraining run's
//! `config.json` and `metrics.jsonl` lines ([`pretrain`]), a fine-tuning run's `metrics.json`
//! ([`finetune`]), a probe's `probe/summary.json` ([`probe`]). The JSON documents carry a `format` naming their version; a file of another
//! version is refused with a message saying so, rather than half-read.

pub mod encoder;
pub mod finetune;
pub mod pretrain;
pub mod probe;

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{DataError, Result};

/// Reads the JSON document at `path` (described as `what`), checking its `format` is `format`
/// before reading the rest.
fn read_versioned<T: DeserializeOwned>(path: &Path, format: &str, what: &str) -> Result<T> {
    let value: serde_json::Value = crate::json_file::read(path, what)?;
    match value.get("format").and_then(|f| f.as_str()) {
        Some(found) if found == format => {}
        found => {
            return Err(DataError::invalid(
                path,
                format!(
                    "expected {what} in format `{format}`, found {}: it was written by another version of electra-pipe; rerun its stage",
                    found.map_or_else(|| "no `format`".to_owned(), |f| format!("`{f}`"))
                ),
            ))
        }
    }
    serde_json::from_value(value)
        .map_err(|e| DataError::invalid(path, format!("expected {what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::finetune::FinetuneSummary;

    #[test]
    fn a_file_of_another_format_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.json");
        std::fs::write(
            &path,
            r#"{"format": "electra-pipe finetune summary v0", "task": "rte"}"#,
        )
        .unwrap();
        let err = FinetuneSummary::read(&path).unwrap_err().to_string();
        assert!(
            err.contains("metrics.json")
                && err.contains("`electra-pipe finetune summary v0`")
                && err.contains("rerun its stage"),
            "{err}"
        );
        std::fs::write(&path, r#"{"task": "rte"}"#).unwrap();
        let err = FinetuneSummary::read(&path).unwrap_err().to_string();
        assert!(err.contains("no `format`"), "{err}");
    }
}
