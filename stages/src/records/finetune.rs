//! What a `finetune` stage records: `metrics.json` ([`FinetuneSummary`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use super::encoder::EncoderOrigin;
use crate::error::Result;
use crate::model::heads::{HeadLayers, Pooling};

/// The `format` of a fine-tuning `metrics.json`.
pub const FINETUNE_SUMMARY_FORMAT: &str = "electra-pipe finetune summary v1";

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
    /// Whether Adam's moments were bias-corrected.
    pub adam_bias_correction: bool,
    /// Dropout inside the encoder while fine-tuning.
    pub dropout: f64,
    /// What the head read (`cls` or `mean`).
    pub pooling: Pooling,
    /// The head's layers (`linear` in summaries written before the choice existed).
    #[serde(default = "linear_head")]
    pub head: HeadLayers,
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
    /// Every example of the scored split, in its order: what a report resamples for its
    /// confidence intervals.
    pub scored_examples: ScoredExamples,
}

/// The head of summaries written before the choice existed.
fn linear_head() -> HeadLayers {
    HeadLayers::Linear
}

/// The gold labels (class ids, or STS-B scores) and predictions of a dev split, in its order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoredExamples {
    /// Gold labels.
    pub gold: Vec<f64>,
    /// Predictions.
    pub predicted: Vec<f64>,
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

/// A fine-tuning summary for unit tests: `task` run `seed` whose scored split has `gold` and
/// `predicted` (class ids), started from the encoder of `digest` (or random initialisation).
#[cfg(test)]
pub fn test_summary(
    task: &str,
    seed: u64,
    gold: &[u32],
    predicted: &[u32],
    digest: Option<&str>,
) -> FinetuneSummary {
    let correct = gold.iter().zip(predicted).filter(|(g, p)| g == p).count();
    FinetuneSummary {
        format: FINETUNE_SUMMARY_FORMAT.to_owned(),
        task: task.to_owned(),
        metric: "accuracy".to_owned(),
        score: correct as f64 / gold.len().max(1) as f64,
        scored_split: "dev".to_owned(),
        dev: BTreeMap::new(),
        seed,
        train_examples: 10,
        train_examples_available: 10,
        max_train_examples: None,
        epochs: 1,
        steps: 1,
        warmup_steps: 0,
        batch_size: 10,
        lr: 1e-3,
        layerwise_lr_decay: 0.8,
        weight_decay: 0.0,
        adam_bias_correction: false,
        dropout: 0.1,
        pooling: Pooling::Cls,
        head: HeadLayers::Pooler,
        last_epoch_loss: None,
        encoder: EncoderOrigin {
            from_scratch: digest.is_none(),
            objective: None,
            pretrain_step: None,
            digest: digest.map(str::to_owned),
            config: Some(crate::model::config::Preset::Tiny.encoder(100)),
        },
        backend: "flex".to_owned(),
        seconds: 1.0,
        examples_per_second: 10.0,
        submission_files: Vec::new(),
        scored_examples: ScoredExamples {
            gold: gold.iter().map(|&g| f64::from(g)).collect(),
            predicted: predicted.iter().map(|&p| f64::from(p)).collect(),
        },
    }
}
