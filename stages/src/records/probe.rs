//! What a `probe` stage records: `probe/summary.json` ([`ProbeSummary`]), beside the
//! per-token files every figure is computed from (`predictions.tsv`, `codelength.tsv`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::encoder::EncoderOrigin;
use crate::error::Result;

/// The `format` of a probe's `summary.json`.
pub const PROBE_SUMMARY_FORMAT: &str = "electra-pipe probe summary v1";

/// Accuracies of one tagger on the held-out tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Accuracies {
    /// On every held-out token.
    pub all: f64,
    /// On tokens whose word type had more than one tag in the probe's training split.
    pub ambiguous: f64,
    /// On tokens whose word type was not in the probe's training split.
    pub unseen: f64,
}

/// The probe of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerResult {
    /// 0: the embeddings (projected to the hidden size); `i`: block `i`'s output.
    pub layer: usize,
    /// The probe's accuracies on the held-out tokens.
    pub accuracy: Accuracies,
    /// Accuracy of the same probe trained on the control task, on the held-out tokens.
    pub control_accuracy: f64,
    /// `accuracy.all − control_accuracy` (Hewitt & Liang).
    pub selectivity: f64,
    /// The online codelength of the training tags, in bits.
    pub codelength_bits: f64,
    /// Per training token.
    pub bits_per_token: f64,
    /// The uniform code's length over its online codelength.
    pub compression: f64,
}

/// A probe's `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeSummary {
    /// [`PROBE_SUMMARY_FORMAT`].
    pub format: String,
    /// The encoder probed.
    pub encoder: EncoderOrigin,
    /// The seed of a random-init encoder's weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_seed: Option<u64>,
    /// `universal` or `brown`.
    pub tagset: String,
    /// The tags, by id.
    pub tags: Vec<String>,
    /// The training documents.
    pub train_docs: Vec<String>,
    /// The held-out documents.
    pub eval_docs: Vec<String>,
    /// Probed training tokens.
    pub train_tokens: usize,
    /// Probed held-out tokens.
    pub eval_tokens: usize,
    /// Held-out sentences.
    pub eval_sentences: usize,
    /// Held-out tokens of ambiguous word types.
    pub ambiguous_tokens: usize,
    /// Held-out tokens of word types unseen in training.
    pub unseen_tokens: usize,
    /// Words not probed (past the encoder's positions, or without a WordPiece).
    pub dropped_words: usize,
    /// The majority-tag-per-word baseline.
    pub majority: Accuracies,
    /// Every probed layer.
    pub layers: Vec<LayerResult>,
    /// The probe's seed (data order, control tags).
    pub seed: u64,
    /// L2 weight.
    pub l2: f64,
    /// Epochs.
    pub epochs: usize,
    /// Minimum steps.
    pub min_steps: usize,
    /// Rows per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Matrix-product FLOPs of the encoder's forward passes.
    pub forward_flops: f64,
    /// The backend of the forward passes.
    pub backend: String,
    /// Wall time of the stage.
    pub seconds: f64,
}

impl ProbeSummary {
    /// Writes `summary.json`.
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::json_file::write_pretty(path, self)
    }

    /// Reads a `summary.json` written by [`ProbeSummary::write`].
    pub fn read(path: &Path) -> Result<Self> {
        super::read_versioned(path, PROBE_SUMMARY_FORMAT, "a probe stage's summary.json")
    }
}
