//! What a `pretrain` stage records: `config.json` ([`PretrainSummary`]) and one
//! [`StepRecord`] per line of `metrics.jsonl`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::model::config::EncoderConfig;
use crate::pretrain::generator::WeightSharing;
use crate::pretrain::masking::Replacement;
use crate::pretrain::params::Training;
use crate::tokenizer::SpecialIds;
use crate::training::optimizer::Decay;

/// The `format` of a pretraining `config.json` (its `metrics.jsonl` lines are [`StepRecord`]s
/// of the same version).
pub const PRETRAIN_SUMMARY_FORMAT: &str = "electra-pipe pretrain summary v1";

/// A pretraining objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectiveName {
    /// Replaced-token detection with a generator.
    Electra,
    /// Masked language modelling.
    Bert,
    /// ELECTRA whose discriminator loss comes only from the masked positions (Table 5).
    #[serde(rename = "electra_15")]
    Electra15,
    /// Masked language modelling on generator samples instead of `[MASK]` (Table 5).
    ReplaceMlm,
    /// Replace MLM predicting every token, with a copy mechanism (Table 5).
    AllTokensMlm,
}

impl ObjectiveName {
    /// The name as written in params and files.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectiveName::Electra => "electra",
            ObjectiveName::Bert => "bert",
            ObjectiveName::Electra15 => "electra_15",
            ObjectiveName::ReplaceMlm => "replace_mlm",
            ObjectiveName::AllTokensMlm => "all_tokens_mlm",
        }
    }

    /// The name as the paper and the report write it.
    pub fn label(self) -> &'static str {
        match self {
            ObjectiveName::Electra => "ELECTRA",
            ObjectiveName::Bert => "BERT",
            ObjectiveName::Electra15 => "ELECTRA 15%",
            ObjectiveName::ReplaceMlm => "Replace MLM",
            ObjectiveName::AllTokensMlm => "All-Tokens MLM",
        }
    }

    /// Whether it corrupts its input with a generator's samples (all but BERT).
    pub fn has_generator(self) -> bool {
        self != ObjectiveName::Bert
    }

    /// Whether it trains a discriminator (ELECTRA and ELECTRA 15%).
    pub fn has_discriminator(self) -> bool {
        matches!(self, ObjectiveName::Electra | ObjectiveName::Electra15)
    }
}

/// What fills ELECTRA's masked positions (`generator:`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeneratorKind {
    /// A masked LM of `generator_size` × `generator_layers` of the discriminator, trained
    /// jointly (the paper's).
    #[default]
    MaskedLm,
    /// The corpus's unigram distribution among masking candidates: no network, no training
    /// (the small end of the paper's Figure 3).
    Unigram,
}

/// ELECTRA's sampling temperature and generator-loss weight in records written before they
/// were recorded.
fn one() -> f64 {
    1.0
}

fn one_replica() -> usize {
    1
}

/// The stage whose train FLOPs this run matched, if any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchedCompute {
    /// The matched stage's instance name.
    pub stage: Option<String>,
    /// Its train FLOPs.
    pub train_flops: Option<f64>,
    /// Its recipe (see [`PretrainSummary::recipe`]).
    pub recipe: Option<serde_json::Value>,
}

/// One kept snapshot of the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// Steps done.
    pub step: u64,
    /// Of the run's steps.
    pub fraction: f64,
    /// The file, relative to the stage's outputs.
    pub file: String,
    /// BLAKE3 of the file.
    pub digest: String,
}

/// A pretraining run's `config.json`: the configuration and the training summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainSummary {
    /// [`PRETRAIN_SUMMARY_FORMAT`].
    pub format: String,
    /// The objective.
    pub objective: ObjectiveName,
    /// The recipe: every param with its default, but those of one objective, of the budget
    /// and of bookkeeping. Compute-matched runs share it.
    pub recipe: serde_json::Value,
    /// The exported model's shape (ELECTRA's discriminator, or BERT).
    pub encoder: EncoderConfig,
    /// ELECTRA's generator: a masked LM or the unigram distribution (records written before
    /// it existed read as a masked LM).
    #[serde(default)]
    pub generator_kind: GeneratorKind,
    /// ELECTRA's generator network's shape (none for BERT and a unigram generator).
    pub generator: Option<EncoderConfig>,
    /// The vocabulary's special-token ids.
    pub special: SpecialIds,
    /// Longest example.
    pub max_seq_len: usize,
    /// Entropy (nats) of the data's token distribution among masking candidates: the
    /// masked-LM loss of a model that ignores context (the unigram plateau).
    pub unigram_entropy: f64,
    /// Training steps.
    pub steps: u64,
    /// Examples per step.
    pub batch_size: usize,
    /// Examples per forward and backward pass where the batch was split (gradient
    /// accumulation; records written before it existed read as none).
    #[serde(default)]
    pub micro_batch: Option<usize>,
    /// Data-parallel replicas (records written before they existed read as 1).
    #[serde(default = "one_replica")]
    pub devices: usize,
    /// The stage whose compute was matched.
    pub match_compute: MatchedCompute,
    /// Peak learning rate.
    pub lr: f64,
    /// Warm-up steps.
    pub warmup_steps: u64,
    /// Where the linear decay started.
    pub lr_decay: Decay,
    /// Share of tokens masked.
    pub mask_prob: f64,
    /// What masked tokens became.
    pub replacement: Replacement,
    /// ELECTRA's discriminator-loss weight.
    pub lambda: f64,
    /// ELECTRA's sampling temperature (records written before it existed read as 1).
    #[serde(default = "one")]
    pub temperature: f64,
    /// ELECTRA's generator-loss weight (records written before it existed read as 1).
    #[serde(default = "one")]
    pub generator_weight: f64,
    /// What the generator shares with the model it feeds (records written before it existed
    /// read as the paper's, the embeddings).
    #[serde(default)]
    pub weight_sharing: WeightSharing,
    /// ELECTRA's training algorithm (records written before it existed read as joint).
    #[serde(default)]
    pub training: Training,
    /// Two-stage training's share of generator-only steps.
    #[serde(default)]
    pub generator_share: Option<f64>,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// AdamW's β₂.
    pub adam_beta2: f64,
    /// The global gradient-norm clip.
    pub clip_norm: f64,
    /// The run's seed.
    pub seed: u64,
    /// Train FLOPs of one step.
    pub flops_per_step: f64,
    /// Train FLOPs in total.
    pub train_flops: f64,
    /// Parameters of the exported model.
    pub parameters: usize,
    /// The kept snapshots.
    pub snapshots: Vec<SnapshotRecord>,
    /// BLAKE3 of `model.safetensors`.
    pub model_digest: String,
    /// The training backend.
    pub backend: String,
    /// What trained it.
    pub hardware: String,
    /// Wall time of the training steps, across resumptions.
    pub train_seconds: f64,
}

impl PretrainSummary {
    /// Writes `config.json`.
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::json_file::write_pretty(path, self)
    }

    /// Reads a `config.json` written by [`PretrainSummary::write`].
    pub fn read(path: &Path) -> Result<Self> {
        super::read_versioned(
            path,
            PRETRAIN_SUMMARY_FORMAT,
            "a pretrain stage's config.json",
        )
    }
}

/// One step of a pretraining run: a line of `metrics.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Steps done.
    pub step: u64,
    /// The optimised loss.
    pub loss: f64,
    /// Masked-LM cross-entropy (the generator's for ELECTRA).
    pub mlm_loss: f64,
    /// The discriminator's BCE (ELECTRA; 0 for BERT).
    pub bce_loss: f64,
    /// Share of masked positions predicted right.
    pub mlm_accuracy: f64,
    /// Share of real tokens the discriminator classified right.
    pub disc_accuracy: f64,
    /// The "all original" accuracy.
    pub disc_baseline: f64,
    /// Of tokens predicted replaced, the share that were.
    pub disc_precision: f64,
    /// Of replaced tokens, the share predicted replaced.
    pub disc_recall: f64,
    /// ROC-AUC of the discriminator, replaced against original tokens (0.5 is chance).
    pub disc_auc: f64,
    /// Collapse of the kept network's final hidden states: their mean pairwise cosine
    /// similarity over the batch's real tokens (1: every token has the same state).
    pub hidden_cosine: f64,
    /// The step's learning rate.
    pub lr: f64,
    /// The gradients' global norm before clipping.
    pub grad_norm: f64,
    /// Real tokens per second in this step.
    pub tokens_per_second: f64,
    /// The step's wall time.
    pub seconds: f64,
    /// Cumulative train FLOPs.
    pub train_flops: f64,
}

/// Reads every line of a `metrics.jsonl`; an error names the line.
pub fn read_steps(path: &Path) -> Result<Vec<StepRecord>> {
    let mut reader = crate::textfile::LineReader::open(path)?;
    let mut steps = Vec::new();
    while let Some(line) = reader.next_line() {
        let (number, text) = line?;
        steps.push(serde_json::from_str(text).map_err(|e| {
            DataError::malformed(path, number, format!("expected a metrics line: {e}"))
        })?);
    }
    Ok(steps)
}

/// A pretraining summary for unit tests: a tiny run of `objective` over 10 steps with snapshots
/// at 5 and 10 steps, its final weights of `digest`; recipe `{"lr": 0.0005}`, no match.
#[cfg(test)]
pub fn test_summary(objective: ObjectiveName, digest: &str) -> PretrainSummary {
    use crate::model::config::Preset;
    let snapshot = |step: u64| SnapshotRecord {
        step,
        fraction: step as f64 / 10.0,
        file: format!("snapshots/{step}"),
        digest: digest.to_owned(),
    };
    PretrainSummary {
        format: PRETRAIN_SUMMARY_FORMAT.to_owned(),
        objective,
        recipe: serde_json::json!({"lr": 5e-4}),
        encoder: Preset::Tiny.encoder(100),
        generator_kind: GeneratorKind::MaskedLm,
        generator: (objective == ObjectiveName::Electra)
            .then(|| Preset::Tiny.encoder(100).generator(0.25, 1.0)),
        special: SpecialIds::LEADING,
        max_seq_len: 64,
        unigram_entropy: 7.0,
        steps: 10,
        batch_size: 2,
        micro_batch: None,
        devices: 1,
        match_compute: MatchedCompute {
            stage: None,
            train_flops: None,
            recipe: None,
        },
        lr: 5e-4,
        warmup_steps: 1,
        lr_decay: Decay::WholeRun,
        mask_prob: 0.15,
        replacement: Replacement::Electra,
        lambda: 50.0,
        temperature: 1.0,
        generator_weight: 1.0,
        weight_sharing: WeightSharing::Embeddings,
        training: Training::Joint,
        generator_share: None,
        weight_decay: 0.01,
        adam_beta2: 0.999,
        clip_norm: 1.0,
        seed: 0,
        flops_per_step: 1e13,
        train_flops: 1e14,
        parameters: 1,
        snapshots: vec![snapshot(5), snapshot(10)],
        model_digest: digest.to_owned(),
        backend: "flex".to_owned(),
        hardware: "cpu".to_owned(),
        train_seconds: 1.0,
    }
}
