//! Resumable training state in the stage's checkpoint area: the model's weights, the
//! optimiser's moments and the step, written to a temporary directory and renamed into place
//! so a kill never leaves a half-written checkpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::model::safetensors::{self, NamedTensor};
use crate::pretrain_data::Cursor;

/// Version of the checkpoint layout.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Where training stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingState {
    /// [`CHECKPOINT_VERSION`].
    pub version: u32,
    /// Steps completed.
    pub step: u64,
    /// The data stream's position after those steps.
    pub cursor: Cursor,
    /// The run's seed (every random draw of step `t` comes from stream `t` of it).
    pub seed: u64,
}

impl TrainingState {
    /// The state after `step` steps of a run seeded with `seed`, its data at `cursor`.
    pub fn new(step: u64, cursor: Cursor, seed: u64) -> Self {
        TrainingState {
            version: CHECKPOINT_VERSION,
            step,
            cursor,
            seed,
        }
    }
}

/// A checkpoint loaded from disk.
pub struct Checkpoint {
    /// Where training stands.
    pub state: TrainingState,
    /// Model weights by parameter path.
    pub model: BTreeMap<String, NamedTensor>,
    /// Optimiser moments `(m, v)` in parameter-visiting order.
    pub moments: Vec<Option<(Vec<f32>, Vec<f32>)>>,
}

fn latest(dir: &Path) -> PathBuf {
    dir.join("latest")
}

/// Writes a checkpoint into `dir/latest`, atomically replacing the previous one.
pub fn save(
    dir: &Path,
    state: &TrainingState,
    model: &BTreeMap<String, NamedTensor>,
    moments: &[Option<(Vec<f32>, Vec<f32>)>],
) -> Result<()> {
    let tmp = dir.join("latest.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)
        .map_err(|e| DataError::io(format!("creating {}", tmp.display()), e))?;
    safetensors::write(&tmp.join("model.safetensors"), model, &BTreeMap::new())?;
    let mut optimizer = BTreeMap::new();
    for (i, slot) in moments.iter().enumerate() {
        if let Some((m, v)) = slot {
            for (name, values) in [("m", m), ("v", v)] {
                optimizer.insert(
                    format!("{name}.{i:05}"),
                    NamedTensor {
                        shape: vec![values.len()],
                        values: values.clone(),
                    },
                );
            }
        }
    }
    let count = BTreeMap::from([("parameters".to_owned(), moments.len().to_string())]);
    safetensors::write(&tmp.join("optimizer.safetensors"), &optimizer, &count)?;
    crate::json_file::write_pretty(&tmp.join("state.json"), state)?;
    let target = latest(dir);
    let old = dir.join("latest.old");
    let _ = std::fs::remove_dir_all(&old);
    if target.exists() {
        std::fs::rename(&target, &old)
            .map_err(|e| DataError::io(format!("replacing {}", target.display()), e))?;
    }
    std::fs::rename(&tmp, &target)
        .map_err(|e| DataError::io(format!("writing {}", target.display()), e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// The checkpoint in `dir`, if one was completed.
pub fn load(dir: &Path) -> Result<Option<Checkpoint>> {
    let mut at = latest(dir);
    if !at.join("state.json").exists() {
        // A kill between the two renames leaves the previous checkpoint as `latest.old`.
        at = dir.join("latest.old");
        if !at.join("state.json").exists() {
            return Ok(None);
        }
    }
    let state: TrainingState = crate::json_file::read(&at.join("state.json"), "a training state")?;
    if state.version != CHECKPOINT_VERSION {
        return Err(DataError::invalid(
            &at,
            format!(
                "checkpoint version {}: expected {CHECKPOINT_VERSION}",
                state.version
            ),
        ));
    }
    let model = safetensors::read(&at.join("model.safetensors"))?;
    let optimizer = safetensors::read(&at.join("optimizer.safetensors"))?;
    let parameters = optimizer
        .keys()
        .filter_map(|k| k.strip_prefix("m.").and_then(|i| i.parse::<usize>().ok()))
        .max()
        .map_or(0, |i| i + 1);
    let moments = (0..parameters)
        .map(|i| {
            let m = optimizer.get(&format!("m.{i:05}"));
            let v = optimizer.get(&format!("v.{i:05}"));
            m.zip(v).map(|(m, v)| (m.values.clone(), v.values.clone()))
        })
        .collect();
    Ok(Some(Checkpoint {
        state,
        model,
        moments,
    }))
}
