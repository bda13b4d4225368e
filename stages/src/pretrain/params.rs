//! The `pretrain` kind's params: parsing with field-named errors, the paper's defaults, the
//! steps (given, or derived to match another stage's train FLOPs) and the settings they give the
//! training loop.

use electra_pipe_api::{parse_params, ParamError, Params};
use serde::{Deserialize, Serialize};

use super::flops;
use super::flops::FlopsSchedule;
use super::generator::{GeneratorOptions, GeneratorShape, WeightSharing};
use super::masking::{MaskingOptions, Replacement};
use super::prior::OutputBias;
use super::train::{Objective, TrainSettings};
use crate::error::{DataError, Result};
use crate::model::config::{EncoderConfig, ModelParams};
use crate::records::pretrain::{GeneratorKind, ObjectiveName};
use crate::training::optimizer::{AdamWSettings, Decay, Schedule};

/// `match_compute` as written (a stage name) and as the orchestrator fills it in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// How many steps a run takes, and the stage whose compute it matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Training steps.
    pub steps: u64,
    /// The matched stage, if the steps were derived.
    pub matched: Option<Matched>,
}

/// The stage a run's compute was matched to.
#[derive(Debug, Clone, PartialEq)]
pub struct Matched {
    /// Its instance name.
    pub stage: String,
    /// Its train FLOPs.
    pub train_flops: f64,
    /// Its recipe ([`PretrainParams::recipe`]).
    pub recipe: serde_json::Value,
}

/// ELECTRA's training algorithm (the paper's Figure 3, right).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Training {
    /// Generator and discriminator trained together (the paper's).
    #[default]
    Joint,
    /// The generator alone for `generator_share` of the steps; then the discriminator,
    /// started from the generator's weights, with the generator frozen.
    TwoStage,
}

/// Params of a `pretrain` stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainParams {
    /// `electra` or `bert`.
    pub objective: ObjectiveName,
    /// The `shards` output of a `pretrain_data` stage.
    pub data: String,
    /// Model size.
    pub model: ModelParams,
    /// ELECTRA's generator: `masked_lm` (the paper's, a small masked LM trained with the
    /// discriminator) or `unigram` (draws from the corpus's unigram distribution).
    #[serde(default)]
    pub generator: GeneratorKind,
    /// ELECTRA's generator width (hidden size, FFN, heads) relative to the discriminator.
    #[serde(default = "default_generator_size")]
    pub generator_size: f64,
    /// ELECTRA's generator depth relative to the discriminator (the official code's
    /// `generator_layers`, 1: as deep).
    #[serde(default = "default_one")]
    pub generator_layers: f64,
    /// Training steps (or `match_compute`).
    pub steps: Option<u64>,
    /// Another `pretrain` stage (usually ELECTRA's) whose train FLOPs this one must match:
    /// the steps are derived from both configurations.
    pub match_compute: Option<MatchCompute>,
    /// Examples per step: the effective batch, whose one update every step makes.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Gradient accumulation: examples per forward and backward pass, the step's batch split
    /// into micro-batches of this many whose gradients add up to the whole batch's (none: one
    /// pass over the whole batch). Changes neither the update (up to floating-point summation
    /// order) nor the FLOPs, steps or compute matching.
    pub micro_batch: Option<usize>,
    /// Data parallelism: replicas, each on its own device of the backend (`cuda` devices 0 …
    /// N−1), each computing its share of every step's batch; their gradients are summed and
    /// one optimiser makes the step. On `flex` the replicas are threads sharing the CPU (for
    /// checking the equivalence, not for speed). Changes neither the update (up to
    /// floating-point summation order) nor the FLOPs.
    #[serde(default = "default_devices")]
    pub devices: usize,
    /// Peak learning rate.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Linear warm-up steps (default 10000, the paper's).
    pub warmup_steps: Option<u64>,
    /// Instead of `warmup_steps`: warm up over this share of the steps (0.5 with the linear
    /// decay is the one-cycle, triangular schedule; 0 no warm-up), which scales with steps
    /// derived by `match_compute`.
    pub warmup_fraction: Option<f64>,
    /// Where the linear decay to 0 starts: `whole_run` (at step 0, the official code's) or
    /// `after_warmup` (from the peak; with `warmup_fraction: 0.5`, the one-cycle schedule).
    #[serde(default)]
    pub lr_decay: Decay,
    /// Share of tokens to mask.
    #[serde(default = "default_mask_prob")]
    pub mask_prob: f64,
    /// What masked tokens become.
    #[serde(default = "default_replacement")]
    pub replacement: Replacement,
    /// ELECTRA's discriminator-loss weight λ.
    #[serde(default = "default_lambda")]
    pub lambda: f64,
    /// ELECTRA: the temperature the generator's softmax is sampled at (the official code's
    /// `temperature`, 1). Above 1 the replacements are flatter, hence easier to detect.
    #[serde(default = "default_one")]
    pub temperature: f64,
    /// ELECTRA: the weight of the generator's masked-LM loss (the official code's
    /// `gen_weight`, 1). At 0 the generator never learns: it stays the sampler it started as
    /// (with `output_bias: prior`, the corpus's unigram distribution).
    #[serde(default = "default_one")]
    pub generator_weight: f64,
    /// What the generator shares with the model it feeds: `embeddings` (the paper's), `none`
    /// or `all` (the generator must then be the model's size).
    #[serde(default)]
    pub weight_sharing: WeightSharing,
    /// ELECTRA's training algorithm: `joint` (the paper's) or `two_stage` (the generator
    /// alone, then the discriminator from its weights with the generator frozen).
    #[serde(default)]
    pub training: Training,
    /// Two-stage training: the share of the steps that train the generator alone.
    #[serde(default = "default_half")]
    pub generator_share: f64,
    /// AdamW's decoupled weight decay.
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// AdamW's ε.
    #[serde(default = "default_epsilon")]
    pub adam_epsilon: f64,
    /// AdamW's second-moment decay β₂.
    #[serde(default = "default_beta2")]
    pub adam_beta2: f64,
    /// Global gradient-norm clip.
    #[serde(default = "default_clip")]
    pub clip_norm: f64,
    /// Adam's bias correction (the official code has none: with a short warm-up, the first
    /// hundreds of updates are several times the learning rate).
    #[serde(default)]
    pub adam_bias_correction: bool,
    /// Where the output heads' biases start: `zero` (the paper's) or `prior` (the
    /// context-free solution, [`OutputPrior`](super::prior::OutputPrior)).
    #[serde(default)]
    pub output_bias: OutputBias,
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
fn default_devices() -> usize {
    1
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
fn default_beta2() -> f64 {
    0.999
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
fn default_one() -> f64 {
    1.0
}
fn default_half() -> f64 {
    0.5
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
        if parsed.objective.has_generator() {
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
                .generator(parsed.generator_size, parsed.generator_layers)
                .validate()
                .map_err(|(field, message)| {
                    ParamError::new(
                        "generator_size",
                        format!("the generator's {field}: {message}"),
                    )
                })?;
            if !(parsed.generator_layers > 0.0 && parsed.generator_layers <= 1.0) {
                return Err(ParamError::new(
                    "generator_layers",
                    format!(
                        "expected a fraction of the discriminator's layers in (0, 1], found {}",
                        parsed.generator_layers
                    ),
                ));
            }
            if !(parsed.generator_weight.is_finite() && parsed.generator_weight >= 0.0) {
                return Err(ParamError::new(
                    "generator_weight",
                    format!(
                        "expected a non-negative weight of the generator's loss, found {}",
                        parsed.generator_weight
                    ),
                ));
            }
            let full_size = parsed.generator == GeneratorKind::MaskedLm
                && parsed.generator_size == 1.0
                && parsed.generator_layers == 1.0;
            if parsed.weight_sharing == WeightSharing::All && !full_size {
                return Err(ParamError::new(
                    "weight_sharing",
                    format!(
                        "`all` shares the encoder, so the generator must be the model's size: expected `generator_size: 1` and `generator_layers: 1` with a masked-LM generator, found {} and {}{}",
                        parsed.generator_size,
                        parsed.generator_layers,
                        if parsed.generator == GeneratorKind::Unigram { " (a unigram generator)" } else { "" }
                    ),
                ));
            }
            if parsed.training == Training::TwoStage {
                if parsed.objective != ObjectiveName::Electra || !full_size {
                    return Err(ParamError::new(
                        "training",
                        "`two_stage` starts ELECTRA's discriminator from its generator: expected `objective: electra` and a masked-LM generator of the discriminator's size (`generator_size: 1`, `generator_layers: 1`)",
                    ));
                }
                if !(parsed.generator_share > 0.0 && parsed.generator_share < 1.0) {
                    return Err(ParamError::new(
                        "generator_share",
                        format!(
                            "expected a share of the steps in (0, 1), found {}",
                            parsed.generator_share
                        ),
                    ));
                }
            }
            if !(parsed.temperature.is_finite() && parsed.temperature > 0.0) {
                return Err(ParamError::new(
                    "temperature",
                    format!(
                        "expected a positive sampling temperature, found {}",
                        parsed.temperature
                    ),
                ));
            }
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
        if parsed.devices == 0 || parsed.devices > parsed.batch_size {
            return Err(ParamError::new(
                "devices",
                format!(
                    "expected 1 to batch_size ({}) replicas, found {}",
                    parsed.batch_size, parsed.devices
                ),
            ));
        }
        match parsed.micro_batch {
            Some(0) => return Err(ParamError::new("micro_batch", "expected at least 1, found 0")),
            Some(micro) if micro > parsed.batch_size => {
                return Err(ParamError::new(
                    "micro_batch",
                    format!(
                        "expected at most batch_size ({}), found {micro}: a micro-batch is a part of the step's batch",
                        parsed.batch_size
                    ),
                ))
            }
            _ => {}
        }
        match (parsed.warmup_steps, parsed.warmup_fraction) {
            (Some(_), Some(_)) => {
                return Err(ParamError::new(
                    "warmup_fraction",
                    "both `warmup_steps` and `warmup_fraction` are set: expected one",
                ))
            }
            (None, Some(f)) if !(0.0..=1.0).contains(&f) => {
                return Err(ParamError::new(
                    "warmup_fraction",
                    format!("expected a share of the steps in [0, 1], found {f}"),
                ))
            }
            _ => {}
        }
        if !(parsed.adam_beta2 > 0.0 && parsed.adam_beta2 < 1.0) {
            return Err(ParamError::new(
                "adam_beta2",
                format!("expected a decay in (0, 1), found {}", parsed.adam_beta2),
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

    /// Whether the replacements come from the corpus's unigram distribution (no generator
    /// network to train or export).
    pub fn unigram_generator(&self) -> bool {
        self.objective.has_generator() && self.generator == GeneratorKind::Unigram
    }

    /// The encoder (ELECTRA's discriminator) for a vocabulary of `vocab_size`.
    pub fn encoder(&self, vocab_size: usize) -> EncoderConfig {
        self.model.encoder(vocab_size)
    }

    /// Examples in the largest forward and backward pass of a step on one device: a replica's
    /// share of the batch (the larger one), or the micro-batch where that is smaller.
    pub fn examples_per_pass(&self) -> usize {
        let share = self.batch_size.div_ceil(self.devices);
        self.micro_batch.unwrap_or(share).min(share)
    }

    /// Warm-up steps of a run of `total` steps.
    pub fn warmup(&self, total: u64) -> u64 {
        match self.warmup_fraction {
            Some(fraction) => (fraction * total as f64).round() as u64,
            None => self.warmup_steps.unwrap_or_else(default_warmup),
        }
    }

    /// The recipe: every param with its default filled in, but those that belong to one
    /// objective (`objective`, the generator, its size, depth and loss weight, `lambda`,
    /// `temperature`, `replacement`), to the budget
    /// (`steps`, `match_compute`), to bookkeeping (`checkpoint_every`, `snapshots`,
    /// `backend`, and `micro_batch` and `devices`, which change where the update is computed,
    /// not the update) or to this cache (`data`, a path whose content the cache key already
    /// names). A compute-matched comparison gives both objectives the same recipe, and a
    /// report pairs a baseline with the run whose recipe it matched.
    pub fn recipe(&self) -> serde_json::Value {
        let mut recipe = serde_json::to_value(self).expect("params serialize");
        let map = recipe.as_object_mut().expect("params are an object");
        for key in [
            "data",
            "objective",
            "generator",
            "generator_size",
            "generator_layers",
            "generator_weight",
            "weight_sharing",
            "training",
            "generator_share",
            "lambda",
            "temperature",
            "replacement",
            "steps",
            "match_compute",
            "checkpoint_every",
            "snapshots",
            "backend",
            "micro_batch",
            "devices",
        ] {
            map.remove(key);
        }
        recipe
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
    pub fn resolve_steps(&self, vocab_size: usize, max_seq_len: usize) -> Result<Budget> {
        let (stage, other) = match (&self.steps, &self.match_compute) {
            (Some(steps), _) => {
                return Ok(Budget {
                    steps: *steps,
                    matched: None,
                })
            }
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
            .flops_schedule(vocab_size, max_seq_len, other_steps)
            .after(other_steps);
        let (both, generator) = self.forward_flops(vocab_size, max_seq_len);
        let forward = match self.training {
            Training::Joint => both,
            // A two-stage run is matched at the mean forward cost of its two stages.
            Training::TwoStage => {
                let share = self.generator_share;
                share * generator + (1.0 - share) * (both - generator / 2.0)
            }
        };
        let steps = flops::steps_to_match(target, forward, self.batch_size);
        Ok(Budget {
            steps,
            matched: Some(Matched {
                stage: stage.clone(),
                train_flops: target,
                recipe: other.recipe(),
            }),
        })
    }

    /// The generator of the objectives that have one, for an encoder of `encoder`'s shape.
    fn generator_options(&self, encoder: &EncoderConfig) -> GeneratorOptions {
        GeneratorOptions {
            shape: match self.generator {
                GeneratorKind::MaskedLm => GeneratorShape::MaskedLm(
                    encoder.generator(self.generator_size, self.generator_layers),
                ),
                GeneratorKind::Unigram => GeneratorShape::Unigram,
            },
            temperature: self.temperature,
            weight: self.generator_weight,
            sharing: self.weight_sharing,
        }
    }

    /// Two-stage training's first-stage steps, of a run of `steps`.
    fn generator_steps(&self, steps: u64) -> Option<u64> {
        (self.training == Training::TwoStage)
            .then(|| ((self.generator_share * steps as f64).round() as u64).clamp(1, steps))
    }

    /// The objective and its generator, for an encoder of `encoder`'s shape and a run of
    /// `steps`.
    pub fn objective(&self, encoder: &EncoderConfig, steps: u64) -> Objective {
        let generator = self.generator_options(encoder);
        match self.objective {
            ObjectiveName::Electra | ObjectiveName::Electra15 => Objective::Electra {
                generator,
                lambda: self.lambda,
                masked_only: self.objective == ObjectiveName::Electra15,
                generator_steps: self.generator_steps(steps),
            },
            ObjectiveName::Bert => Objective::Bert,
            ObjectiveName::ReplaceMlm | ObjectiveName::AllTokensMlm => Objective::ReplaceMlm {
                generator,
                all_tokens: self.objective == ObjectiveName::AllTokensMlm,
            },
        }
    }

    /// Forward FLOPs of one example: the objective's model with its generator, counted as the
    /// official code does (derived for the objectives it lacks:
    /// [`flops::replace_mlm_forward_flops`]); and, for two-stage training, of the generator
    /// alone.
    fn forward_flops(&self, vocab_size: usize, max_seq_len: usize) -> (f64, f64) {
        let encoder = self.encoder(vocab_size);
        let objective = self.objective(&encoder, 1);
        let generator = objective.generator().and_then(|g| g.shape.network());
        let alone = generator.as_ref().map_or(0.0, |g| {
            flops::bert_forward_flops(g, max_seq_len, self.mask_prob)
        });
        let both = match objective {
            Objective::Electra { .. } => flops::electra_forward_flops(
                &encoder,
                generator.as_ref(),
                max_seq_len,
                self.mask_prob,
            ),
            Objective::Bert => flops::bert_forward_flops(&encoder, max_seq_len, self.mask_prob),
            Objective::ReplaceMlm { all_tokens, .. } => flops::replace_mlm_forward_flops(
                &encoder,
                generator.as_ref(),
                max_seq_len,
                self.mask_prob,
                all_tokens,
            ),
        };
        (both, alone)
    }

    /// Train FLOPs of a run of `steps`, step by step. Two-stage training (derived): the first
    /// stage trains the generator alone; the second trains the discriminator and runs the
    /// frozen generator forward only, counted at half the train factor.
    fn flops_schedule(&self, vocab_size: usize, max_seq_len: usize, steps: u64) -> FlopsSchedule {
        let (both, generator) = self.forward_flops(vocab_size, max_seq_len);
        let train = |forward: f64| flops::train_flops(forward, self.batch_size, 1);
        match self.generator_steps(steps) {
            None => FlopsSchedule::uniform(train(both)),
            Some(first_steps) => FlopsSchedule {
                per_step: train(both - generator) + train(generator) / 2.0,
                first_stage: Some((first_steps, train(generator))),
            },
        }
    }

    /// What the training loop needs, for `steps` steps on data of this vocabulary and length.
    pub fn settings(&self, vocab_size: usize, max_seq_len: usize, steps: u64) -> TrainSettings {
        let encoder = self.encoder(vocab_size);
        TrainSettings {
            objective: self.objective(&encoder, steps),
            encoder,
            batch_size: self.batch_size,
            micro_batch: self.micro_batch.unwrap_or(self.batch_size),
            replicas: self.devices,
            schedule: Schedule {
                peak: self.lr,
                warmup: self.warmup(steps),
                total: steps,
                decay: self.lr_decay,
            },
            adamw: AdamWSettings {
                weight_decay: self.weight_decay,
                epsilon: self.adam_epsilon,
                beta2: self.adam_beta2,
                clip_norm: self.clip_norm,
                bias_correction: self.adam_bias_correction,
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
            flops: self.flops_schedule(vocab_size, max_seq_len, steps),
        }
    }
}
