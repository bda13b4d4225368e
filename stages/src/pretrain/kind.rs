//! The `pretrain` stage kind's params, outputs and run.

use std::path::Path;

use burn::tensor::backend::AutodiffBackend;
use electra_pipe_api::{
    parse_params, Metrics, ParamError, Params, StageContext, StageError, StageKind, StagePlan,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::config::{EncoderConfig, Preset};
use super::flops;
use super::masking::{MaskingOptions, Replacement};
use super::optimizer::{AdamWSettings, Schedule};
use super::tensor_file;
use super::train::{snapshot_file, train, Objective, TrainSettings};
use crate::error::{DataError, Result};
use crate::pretrain_data::PretrainingData;

/// The final weights of the model to fine-tune (ELECTRA's discriminator, or BERT).
pub const MODEL_FILE: &str = "model.safetensors";
/// ELECTRA's generator weights.
pub const GENERATOR_FILE: &str = "generator.safetensors";
/// The configuration and training summary.
pub const CONFIG_FILE: &str = "config.json";
/// Per-step metrics.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// Weights at the requested fractions of training.
pub const SNAPSHOTS_DIR: &str = "snapshots";

/// Which objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectiveName {
    /// Replaced-token detection with a generator.
    Electra,
    /// Masked language modelling.
    Bert,
}

/// `match_compute` as written (a stage name) and as the orchestrator fills it in.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum MatchCompute {
    /// That stage's params, inlined by the orchestrator before the stage runs.
    Resolved {
        /// The instance's name.
        stage: String,
        /// Its params.
        params: serde_json::Value,
    },
    /// The stage's name, e.g. `electra` or `electra[size=small]`.
    Stage(String),
}

/// A preset and any fields to override.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelParams {
    /// The named size.
    pub preset: Preset,
    /// Embedding width `e`.
    pub embedding: Option<usize>,
    /// Hidden size `h`.
    pub hidden: Option<usize>,
    /// Transformer blocks.
    pub layers: Option<usize>,
    /// Attention heads.
    pub heads: Option<usize>,
    /// Feed-forward size.
    pub intermediate: Option<usize>,
    /// Dropout probability.
    pub dropout: Option<f64>,
}

impl ModelParams {
    /// The preset's encoder for a vocabulary of `vocab_size`, with the overridden fields.
    pub fn encoder(&self, vocab_size: usize) -> EncoderConfig {
        let base = self.preset.encoder(vocab_size);
        EncoderConfig {
            embedding: self.embedding.unwrap_or(base.embedding),
            hidden: self.hidden.unwrap_or(base.hidden),
            layers: self.layers.unwrap_or(base.layers),
            heads: self.heads.unwrap_or(base.heads),
            intermediate: self.intermediate.unwrap_or(base.intermediate),
            dropout: self.dropout.unwrap_or(base.dropout),
            ..base
        }
    }
}

/// Params of a `pretrain` stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainParams {
    /// `electra` or `bert`.
    pub objective: ObjectiveName,
    /// The `shards` output of a `pretrain_data` stage.
    pub data: String,
    /// Model size.
    pub model: ModelParams,
    /// ELECTRA's generator size relative to the discriminator.
    #[serde(default = "default_generator_size")]
    pub generator_size: f64,
    /// Training steps (or `match_compute`).
    pub steps: Option<u64>,
    /// Another `pretrain` stage (usually ELECTRA's) whose train FLOPs this one must match:
    /// the steps are derived from both configurations.
    pub match_compute: Option<MatchCompute>,
    /// Examples per step.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Peak learning rate.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Linear warm-up steps.
    #[serde(default = "default_warmup")]
    pub warmup_steps: u64,
    /// Share of tokens to mask.
    #[serde(default = "default_mask_prob")]
    pub mask_prob: f64,
    /// What masked tokens become.
    #[serde(default = "default_replacement")]
    pub replacement: Replacement,
    /// ELECTRA's discriminator-loss weight λ.
    #[serde(default = "default_lambda")]
    pub lambda: f64,
    /// AdamW's decoupled weight decay.
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// AdamW's ε.
    #[serde(default = "default_epsilon")]
    pub adam_epsilon: f64,
    /// Global gradient-norm clip.
    #[serde(default = "default_clip")]
    pub clip_norm: f64,
    /// Seed of initialisation, data order, masking, dropout and sampling.
    #[serde(default)]
    pub seed: u64,
    /// Steps between checkpoints.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    /// Fractions of training after which the weights are kept.
    #[serde(default = "default_snapshots")]
    pub snapshots: Vec<f64>,
    /// `flex` (CPU, the default), `ndarray` or `cuda` (builds with those cargo features).
    #[serde(default = "crate::backend::default_backend")]
    pub backend: String,
}

fn default_generator_size() -> f64 {
    0.25
}
fn default_batch_size() -> usize {
    128
}
fn default_lr() -> f64 {
    5e-4
}
fn default_warmup() -> u64 {
    10_000
}
fn default_mask_prob() -> f64 {
    0.15
}
fn default_replacement() -> Replacement {
    Replacement::Electra
}
fn default_lambda() -> f64 {
    50.0
}
fn default_weight_decay() -> f64 {
    0.01
}
fn default_epsilon() -> f64 {
    1e-6
}
fn default_clip() -> f64 {
    1.0
}
fn default_checkpoint_every() -> u64 {
    1000
}
fn default_snapshots() -> Vec<f64> {
    vec![0.25, 0.5, 1.0]
}

impl PretrainParams {
    /// Parses and validates params.
    pub fn parse(params: &Params) -> Result<Self, ParamError> {
        let parsed: PretrainParams = parse_params(params)?;
        crate::backend::check(&parsed.backend)?;
        let encoder = parsed.encoder(1);
        encoder
            .validate()
            .map_err(|(field, message)| ParamError::new(format!("model.{field}"), message))?;
        if parsed.objective == ObjectiveName::Electra {
            if !(parsed.generator_size > 0.0 && parsed.generator_size <= 1.0) {
                return Err(ParamError::new(
                    "generator_size",
                    format!(
                        "expected a fraction in (0, 1], found {}",
                        parsed.generator_size
                    ),
                ));
            }
            encoder
                .generator(parsed.generator_size)
                .validate()
                .map_err(|(field, message)| {
                    ParamError::new(
                        "generator_size",
                        format!("the generator's {field}: {message}"),
                    )
                })?;
        }
        match (parsed.steps, &parsed.match_compute) {
            (Some(_), Some(_)) => {
                return Err(ParamError::new(
                    "match_compute",
                    "both `steps` and `match_compute` are set: expected one",
                ))
            }
            (None, None) => {
                return Err(ParamError::new(
                    "",
                    "expected `steps`, or `match_compute: <stage>` to derive them from another pretraining stage's FLOPs",
                ))
            }
            _ => {}
        }
        for (field, value) in [
            ("steps", parsed.steps.unwrap_or(1)),
            ("checkpoint_every", parsed.checkpoint_every),
        ] {
            if value == 0 {
                return Err(ParamError::new(field, "expected at least 1, found 0"));
            }
        }
        if parsed.batch_size == 0 {
            return Err(ParamError::new(
                "batch_size",
                "expected at least 1, found 0",
            ));
        }
        if !(parsed.mask_prob > 0.0 && parsed.mask_prob < 1.0) {
            return Err(ParamError::new(
                "mask_prob",
                format!(
                    "expected a probability in (0, 1), found {}",
                    parsed.mask_prob
                ),
            ));
        }
        if let Some((i, f)) = parsed
            .snapshots
            .iter()
            .enumerate()
            .find(|(_, f)| !(**f > 0.0 && **f <= 1.0))
        {
            return Err(ParamError::new(
                format!("snapshots[{i}]"),
                format!("expected a fraction of training in (0, 1], found {f}"),
            ));
        }
        Ok(parsed)
    }

    /// The encoder (ELECTRA's discriminator) for a vocabulary of `vocab_size`.
    pub fn encoder(&self, vocab_size: usize) -> EncoderConfig {
        self.model.encoder(vocab_size)
    }

    /// Steps after which snapshots are kept, of `total`.
    fn snapshot_steps(&self, total: u64) -> Vec<u64> {
        let mut steps: Vec<u64> = self
            .snapshots
            .iter()
            .map(|f| ((f * total as f64).round() as u64).clamp(1, total))
            .collect();
        steps.sort_unstable();
        steps.dedup();
        steps
    }

    /// The number of steps: given, or derived so that this stage's train FLOPs equal those of
    /// the `match_compute` stage (both counted on this stage's vocabulary and sequence length).
    /// Returns the steps and the matched stage's FLOPs, if any.
    pub fn resolve_steps(
        &self,
        vocab_size: usize,
        max_seq_len: usize,
    ) -> Result<(u64, Option<f64>)> {
        let (stage, other) = match (&self.steps, &self.match_compute) {
            (Some(steps), _) => return Ok((*steps, None)),
            (None, Some(MatchCompute::Resolved { stage, params })) => (stage, params),
            (None, _) => {
                return Err(DataError::Config(
                    "params.match_compute: the orchestrator did not fill in the stage's params"
                        .to_owned(),
                ))
            }
        };
        let other = PretrainParams::parse(other).map_err(|e| {
            DataError::Config(format!(
                "params.match_compute: `{stage}` is not a pretrain stage with explicit steps: {e}"
            ))
        })?;
        let Some(other_steps) = other.steps else {
            return Err(DataError::Config(format!(
                "params.match_compute: `{stage}` derives its own steps: expected a stage with `steps`"
            )));
        };
        let target = other
            .settings(vocab_size, max_seq_len, other_steps)
            .flops_per_step
            * other_steps as f64;
        let own = self.settings(vocab_size, max_seq_len, 1).flops_per_step;
        let steps = (target / own).round().max(1.0) as u64;
        Ok((steps, Some(target)))
    }

    fn settings(&self, vocab_size: usize, max_seq_len: usize, steps: u64) -> TrainSettings {
        let encoder = self.encoder(vocab_size);
        let (objective, forward) = match self.objective {
            ObjectiveName::Electra => {
                let generator = encoder.generator(self.generator_size);
                (
                    Objective::Electra {
                        generator,
                        lambda: self.lambda,
                    },
                    flops::electra_forward_flops(&encoder, &generator, max_seq_len),
                )
            }
            ObjectiveName::Bert => (
                Objective::Bert,
                flops::bert_forward_flops(&encoder, max_seq_len),
            ),
        };
        TrainSettings {
            objective,
            encoder,
            batch_size: self.batch_size,
            schedule: Schedule {
                peak: self.lr,
                warmup: self.warmup_steps,
                total: steps,
            },
            adamw: AdamWSettings {
                weight_decay: self.weight_decay,
                epsilon: self.adam_epsilon,
                clip_norm: self.clip_norm,
                ..AdamWSettings::default()
            },
            masking: MaskingOptions {
                mask_prob: self.mask_prob,
                max_predictions: MaskingOptions::max_predictions_for(self.mask_prob, max_seq_len),
                replacement: self.replacement,
            },
            seed: self.seed,
            checkpoint_every: self.checkpoint_every,
            snapshot_steps: self.snapshot_steps(steps),
            flops_per_step: flops::train_flops(forward, self.batch_size, 1),
        }
    }
}

/// The `pretrain` stage kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pretrain;

impl StageKind for Pretrain {
    fn name(&self) -> &'static str {
        "pretrain"
    }

    fn version(&self) -> u32 {
        3
    }

    fn summary(&self) -> &'static str {
        "pretrains ELECTRA (generator + discriminator) or the BERT baseline with burn"
    }

    fn plan(&self, params: &Params) -> Result<StagePlan, ParamError> {
        let params = PretrainParams::parse(params)?;
        let mut outputs = vec![
            MODEL_FILE.to_owned(),
            CONFIG_FILE.to_owned(),
            METRICS_FILE.to_owned(),
            SNAPSHOTS_DIR.to_owned(),
        ];
        if params.objective == ObjectiveName::Electra {
            outputs.push(GENERATOR_FILE.to_owned());
        }
        Ok(StagePlan {
            inputs: vec![params.data.clone()],
            outputs,
            stage_params: params
                .match_compute
                .iter()
                .map(|_| "match_compute".to_owned())
                .collect(),
        })
    }

    fn run(&self, params: &Params, ctx: &StageContext<'_>) -> Result<Metrics, StageError> {
        let params = PretrainParams::parse(params)?;
        Ok(pretrain(&params, ctx)?)
    }
}

fn pretrain(params: &PretrainParams, ctx: &StageContext<'_>) -> Result<Metrics> {
    let data = PretrainingData::open(Path::new(&params.data))?;
    let index = data.index().clone();
    let (steps, matched_flops) = params.resolve_steps(index.vocab_size, index.max_seq_len)?;
    let settings = params.settings(index.vocab_size, index.max_seq_len, steps);
    if let Some(target) = matched_flops {
        tracing::info!(
            steps,
            target_flops = target,
            "steps derived to match the compute of another stage"
        );
    }
    let pool = crate::parallel::worker_pool(ctx.cpus)?;
    tracing::info!(backend = %params.backend, steps, "training");
    let trained = pool.install(|| {
        crate::backend::run_on(
            &params.backend,
            Training {
                settings: &settings,
                data: &data,
                ctx,
            },
        )
    })?;

    tensor_file::write(
        &ctx.out_dir.join(MODEL_FILE),
        &trained.model,
        &trained.metadata,
    )?;
    if let Some(generator) = &trained.generator {
        tensor_file::write(
            &ctx.out_dir.join(GENERATOR_FILE),
            generator,
            &trained.generator_metadata,
        )?;
    }
    // Snapshots were written in the fine-tuning layout as training reached them.
    let snapshots = ctx.out_dir.join(SNAPSHOTS_DIR);
    std::fs::create_dir_all(&snapshots)
        .map_err(|e| DataError::io(format!("creating {}", snapshots.display()), e))?;
    for step in &settings.snapshot_steps {
        let name = snapshot_file(*step);
        let from = ctx.checkpoint_dir.join(SNAPSHOTS_DIR).join(&name);
        std::fs::copy(&from, snapshots.join(&name))
            .map_err(|e| DataError::io(format!("copying {}", from.display()), e))?;
    }
    std::fs::copy(
        ctx.checkpoint_dir.join(METRICS_FILE),
        ctx.out_dir.join(METRICS_FILE),
    )
    .map_err(|e| DataError::io("copying the metrics".to_owned(), e))?;

    let parameters: usize = trained.model.values().map(|t| t.values.len()).sum();
    let train_seconds = train_seconds(&ctx.out_dir.join(METRICS_FILE))?;
    let snapshots = settings
        .snapshot_steps
        .iter()
        .map(|&step| {
            let file = format!("{SNAPSHOTS_DIR}/{}", snapshot_file(step));
            Ok(json!({
                "step": step,
                "fraction": step as f64 / steps as f64,
                "file": file,
                "digest": crate::digest::file_digest(&ctx.out_dir.join(&file))?,
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    let train_flops = settings.flops_per_step * steps as f64;
    let matched = match &params.match_compute {
        Some(MatchCompute::Resolved { stage, .. }) => Some(stage.clone()),
        _ => None,
    };
    let generator = match &settings.objective {
        Objective::Electra { generator, .. } => Some(*generator),
        Objective::Bert => None,
    };
    let config = json!({
        "objective": params.objective,
        "encoder": settings.encoder,
        "generator": generator,
        "special": index.special,
        "max_seq_len": index.max_seq_len,
        "steps": steps,
        "batch_size": params.batch_size,
        "match_compute": {"stage": matched, "train_flops": matched_flops},
        "lr": params.lr,
        "warmup_steps": params.warmup_steps,
        "mask_prob": params.mask_prob,
        "replacement": params.replacement,
        "lambda": params.lambda,
        "seed": params.seed,
        "flops_per_step": settings.flops_per_step,
        "train_flops": train_flops,
        "parameters": parameters,
        "snapshots": snapshots,
        "model_digest": crate::digest::file_digest(&ctx.out_dir.join(MODEL_FILE))?,
        "backend": params.backend,
        "hardware": crate::backend::hardware(&params.backend, ctx.cpus),
        "train_seconds": train_seconds,
    });
    crate::json_file::write_pretty(&ctx.out_dir.join(CONFIG_FILE), &config)?;
    let last = trained.last;
    Ok(Metrics::from([
        ("steps".to_owned(), json!(steps)),
        ("matched_train_flops".to_owned(), json!(matched_flops)),
        ("resumed_from".to_owned(), json!(trained.resumed_from)),
        ("parameters".to_owned(), json!(parameters)),
        ("train_flops".to_owned(), json!(train_flops)),
        ("flops_per_step".to_owned(), json!(settings.flops_per_step)),
        ("loss".to_owned(), json!(last.loss)),
        ("mlm_loss".to_owned(), json!(last.mlm_loss)),
        ("mlm_accuracy".to_owned(), json!(last.mlm_accuracy)),
        ("disc_accuracy".to_owned(), json!(last.disc_accuracy)),
        (
            "tokens_per_second".to_owned(),
            json!(trained.tokens_per_second),
        ),
    ]))
}

/// Wall time of training: the sum of the steps' `seconds` in the metrics log (across
/// resumptions).
fn train_seconds(metrics: &Path) -> Result<f64> {
    let text = std::fs::read_to_string(metrics)
        .map_err(|e| DataError::io(format!("reading {}", metrics.display()), e))?;
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|line| line["seconds"].as_f64())
        .sum())
}

/// [`train`] as work for [`crate::backend::run_on`].
struct Training<'a> {
    settings: &'a TrainSettings,
    data: &'a PretrainingData,
    ctx: &'a StageContext<'a>,
}

impl crate::backend::OnBackend for Training<'_> {
    type Output = Result<super::train::Trained>;
    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Self::Output {
        train::<B>(self.settings, self.data, self.ctx, device)
    }
}
