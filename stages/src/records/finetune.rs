//! What a `finetune` stage records: `metrics.json` ([`FinetuneSummary`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::config::EncoderConfig;

/// The `format` of a fine-tuning `metrics.json`.
pub const FINETUNE_SUMMARY_FORMAT: &str = "electra-pipe finetune summary v1";

/// The encoder a fine-tuning run started from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderOrigin {
    /// Random initialisation (the baseline).
    pub from_scratch: bool,
    /// The pretraining objective (pretrained only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<String>,
    /// The snapshot's pretraining step (pretrained snapshots only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrain_step: Option<u64>,
    /// BLAKE3 of the encoder file (pretrained only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The encoder's shape.
    pub config: Option<EncoderConfig>,
}

/// A fine-tuning run's `metrics.json`: its scores and settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneSummary {
    /// [`FINETUNE_SUMMARY_FORMAT`].
    pub format: String,
    /// GLUE task.
    pub task: String,
    /// The paper's metric for it.
    pub metric: String,
    /// Its value on the scored dev split (0–1).
    pub score: f64,
    /// The scored split.
    pub scored_split: String,
    /// Every metric of every dev split.
    pub dev: BTreeMap<String, BTreeMap<String, f64>>,
    /// Fine-tuning seed.
    pub seed: u64,
    /// Training examples used.
    pub train_examples: usize,
    /// Available in the task's train split.
    pub train_examples_available: usize,
    /// The cap on training examples, if any.
    pub max_train_examples: Option<usize>,
    /// Passes over the training examples.
    pub epochs: u64,
    /// Optimiser steps.
    pub steps: u64,
    /// Warm-up steps.
    pub warmup_steps: u64,
    /// Examples per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Layer-wise learning-rate decay.
    pub layerwise_lr_decay: f64,
    /// AdamW's weight decay.
    pub weight_decay: f64,
    /// Mean training loss over the last epoch's steps this process ran (none if none ran).
    pub last_epoch_loss: Option<f64>,
    /// Where it started.
    pub encoder: EncoderOrigin,
    /// The training backend.
    pub backend: String,
    /// Wall time of the stage's training and prediction.
    pub seconds: f64,
    /// Training examples per second.
    pub examples_per_second: f64,
    /// The GLUE submission files written.
    pub submission_files: Vec<String>,
}

impl FinetuneSummary {
    /// Writes `metrics.json`.
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::json_file::write_pretty(path, self)
    }

    /// Reads a `metrics.json` written by [`FinetuneSummary::write`].
    pub fn read(path: &Path) -> Result<Self> {
        super::read_versioned(
            path,
            FINETUNE_SUMMARY_FORMAT,
            "a finetune stage's metrics.json",
        )
    }
}
