//! The `finetune` stage kind: fine-tunes one pretrained encoder on one GLUE task with one seed,
//! then scores it on the task's dev split(s) and predicts its test split(s). Sweeps over
//! task × seed × model are a matrix in the pipeline file.
//!
//! ```yaml
//! finetune:
//!   kind: finetune
//!   matrix: {model: [electra, bert], task: [cola, sst2, mrpc, stsb, rte], seed: [1, 2, 3]}
//!   params:
//!     task: "@glue[task=${task}]/features"                    # a glue_task output
//!     encoder: "@pretrain[objective=${model}]/model.safetensors" # or a snapshot file
//!     # from_scratch: {preset: small}   # instead of `encoder`: the random-init baseline
//!     seed: ${seed}
//!     lr: 3e-4
//!     layerwise_lr_decay: 0.8
//!     batch_size: 32
//!     # epochs: 3                       # default 3, 10 for RTE and STS-B
//!     warmup_fraction: 0.1
//!     max_train_examples: 2000          # a seeded subset, for CPU-scale pipelines
//! ```
//!
//! Modules: [`inputs`] (reading and checking the task and the encoder), [`model`] (encoder +
//! `[CLS]` head, layer-wise LR factors), [`batches`] (subset, epoch order, padding), [`train`]
//! (the loop, checkpoints, prediction), [`metrics`] (GLUE's metrics), [`outputs`] and
//! [`predictions`] (metrics.json, dev and submission files).

pub mod batches;
pub mod inputs;
pub mod metrics;
pub mod model;
pub mod outputs;
pub mod predictions;
pub mod train;
pub mod transformers;

use burn::tensor::backend::AutodiffBackend;
use electra_pipe_api::{
    parse_params, Metrics, ParamError, Params, StageContext, StageError, StageKind, StagePlan,
};
use serde::Deserialize;

use self::batches::training_subset;
use self::inputs::prepare;
use self::outputs::write_outputs;
use self::train::{finetune, FinetuneSettings, Finetuned, Start, TRAIN_LOG};
use crate::error::Result;
use crate::glue::Feature;
use crate::model::config::ModelParams;
use crate::model::export::check_encoder_params;
use crate::model::heads::{HeadLayers, HeadShape, Pooling};
use crate::model::transformers_export::unsupported;
use crate::training::optimizer::{AdamWSettings, Decay, Schedule};

/// The scores and settings of the run.
pub const METRICS_FILE: &str = "metrics.json";
/// Per-example dev predictions, `<split>.tsv`.
pub const PREDICTIONS_DIR: &str = "predictions";
/// Test predictions in the GLUE benchmark's format, `<Task>.tsv`.
pub const SUBMISSION_DIR: &str = "submission";

/// Params of a `finetune` stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneParams {
    /// The `features` directory of a `glue_task` stage.
    pub task: String,
    /// An exported encoder: a pretrain stage's `model.safetensors` or one of its snapshots.
    pub encoder: Option<String>,
    /// With `encoder` naming a pretrain stage's `snapshots` directory: the snapshot taken after
    /// this fraction of training.
    pub snapshot: Option<f64>,
    /// Instead of `encoder`: a randomly initialised encoder of this size.
    pub from_scratch: Option<ModelParams>,
    /// Seed of the head, the training subset, the data order and dropout.
    #[serde(default)]
    pub seed: u64,
    /// Peak learning rate (of the head and the top block).
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Each block below the top trains at this factor of the one above.
    #[serde(default = "default_layer_decay")]
    pub layerwise_lr_decay: f64,
    /// Training examples per step.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Passes over the training set (default 3; 10 for RTE and STS-B).
    pub epochs: Option<u64>,
    /// Share of the steps spent warming up.
    #[serde(default = "default_warmup_fraction")]
    pub warmup_fraction: f64,
    /// AdamW's decoupled weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// AdamW's ε.
    #[serde(default = "default_epsilon")]
    pub adam_epsilon: f64,
    /// Global gradient-norm clip.
    #[serde(default = "default_clip")]
    pub clip_norm: f64,
    /// Adam's bias correction (the official code has none; short runs take larger first
    /// steps without it).
    #[serde(default)]
    pub adam_bias_correction: bool,
    /// Dropout inside the encoder while fine-tuning, for every encoder alike (the paper's
    /// 0.1; a pretrained encoder's own pretraining dropout does not carry over).
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// Dropout on the pooled state before the head.
    #[serde(default = "default_head_dropout")]
    pub head_dropout: f64,
    /// What the head reads: `cls` (the `[CLS]` state, the paper's) or `mean` (the mean of the
    /// tokens' states).
    #[serde(default)]
    pub pooling: Pooling,
    /// The head's layers: `pooler` (the official code's dense + tanh, the default),
    /// `dense_gelu` (transformers' `ElectraClassificationHead`) or `linear`.
    #[serde(default)]
    pub head: HeadLayers,
    /// Train on a seeded subset of at most this many examples.
    pub max_train_examples: Option<usize>,
    /// Examples per evaluation batch.
    #[serde(default = "default_eval_batch_size")]
    pub eval_batch_size: usize,
    /// `flex` (CPU, the default), `ndarray` or `cuda` (builds with those cargo features).
    #[serde(default = "crate::backend::default_backend")]
    pub backend: String,
}

fn default_lr() -> f64 {
    3e-4
}
fn default_layer_decay() -> f64 {
    0.8
}
fn default_batch_size() -> usize {
    32
}
fn default_warmup_fraction() -> f64 {
    0.1
}
fn default_epsilon() -> f64 {
    1e-6
}
fn default_clip() -> f64 {
    1.0
}
fn default_dropout() -> f64 {
    0.1
}
fn default_head_dropout() -> f64 {
    0.1
}
fn default_eval_batch_size() -> usize {
    128
}

impl FinetuneParams {
    /// The head's shape: its pooling and layers.
    pub fn head_shape(&self) -> HeadShape {
        HeadShape {
            pooling: self.pooling,
            layers: self.head,
        }
    }

    /// Parses and validates params.
    pub fn parse(params: &Params) -> Result<Self, ParamError> {
        let parsed: FinetuneParams = parse_params(params)?;
        crate::backend::check(&parsed.backend)?;
        check_encoder_params(
            parsed.encoder.as_deref(),
            parsed.snapshot,
            parsed.from_scratch.as_ref(),
        )?;
        if parsed
            .from_scratch
            .as_ref()
            .is_some_and(|m| m.dropout.is_some())
        {
            return Err(ParamError::new(
                "from_scratch.dropout",
                "the fine-tuning dropout is the stage's `dropout`, for every encoder alike: expected it there",
            ));
        }
        if let (true, Some(model)) = (parsed.head_shape().is_transformers(), &parsed.from_scratch) {
            if let Some(reason) = unsupported(&model.encoder(1)) {
                return Err(ParamError::new("head", transformers::no_class(reason)));
            }
        }
        let positive = |field: &str, ok: bool, found: String| {
            if ok {
                Ok(())
            } else {
                Err(ParamError::new(field, found))
            }
        };
        positive(
            "lr",
            parsed.lr > 0.0,
            format!("expected a positive rate, found {}", parsed.lr),
        )?;
        positive(
            "layerwise_lr_decay",
            parsed.layerwise_lr_decay > 0.0 && parsed.layerwise_lr_decay <= 1.0,
            format!(
                "expected a factor in (0, 1], found {}",
                parsed.layerwise_lr_decay
            ),
        )?;
        for (field, value) in [
            ("batch_size", parsed.batch_size),
            ("eval_batch_size", parsed.eval_batch_size),
            ("epochs", parsed.epochs.unwrap_or(1) as usize),
            ("max_train_examples", parsed.max_train_examples.unwrap_or(1)),
        ] {
            positive(field, value > 0, "expected at least 1, found 0".to_owned())?;
        }
        for (field, value) in [
            ("warmup_fraction", parsed.warmup_fraction),
            ("dropout", parsed.dropout),
            ("head_dropout", parsed.head_dropout),
        ] {
            positive(
                field,
                (0.0..1.0).contains(&value),
                format!("expected a fraction in [0, 1), found {value}"),
            )?;
        }
        Ok(parsed)
    }
}

/// The `finetune` stage kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct Finetune;

impl StageKind for Finetune {
    fn name(&self) -> &'static str {
        "finetune"
    }

    fn version(&self) -> u32 {
        // v3: the head's layers (`head`, default the official pooler).
        // v4: with `head: dense_gelu`, the model as a transformers checkpoint (`hf/`).
        // v5: training batches packed (the same function, other dropout draws and rounding).
        // v6: the row kernels' sums in 16 lanes (`cpu_kernels::simd`) and the dense layers' bias
        // added inside the product (`cpu_kernels::linear`): other rounding.
        // v7: dropout masks keyed by row (`model::layers::DropoutMasks`): other draws.
        7
    }

    fn summary(&self) -> &'static str {
        "fine-tunes a pretrained encoder on one GLUE task with one seed and scores it on dev"
    }

    fn plan(&self, params: &Params) -> Result<StagePlan, ParamError> {
        let params = FinetuneParams::parse(params)?;
        let mut inputs = vec![params.task.clone()];
        inputs.extend(params.encoder.clone());
        let mut outputs = vec![
            METRICS_FILE.to_owned(),
            PREDICTIONS_DIR.to_owned(),
            SUBMISSION_DIR.to_owned(),
            TRAIN_LOG.to_owned(),
        ];
        if transformers::planned(&params) {
            outputs.push(transformers::TRANSFORMERS_DIR.to_owned());
        }
        Ok(StagePlan {
            inputs,
            outputs,
            ..StagePlan::default()
        })
    }

    fn run(&self, params: &Params, ctx: &StageContext<'_>) -> Result<Metrics, StageError> {
        let params = FinetuneParams::parse(params)?;
        Ok(run(&params, ctx)?)
    }
}

fn run(params: &FinetuneParams, ctx: &StageContext<'_>) -> Result<Metrics> {
    let prepared = prepare(params)?;
    let task = prepared.task;
    let positions = training_subset(
        prepared.train.features.len(),
        params.max_train_examples,
        params.seed,
    );
    let train: Vec<&Feature> = positions
        .iter()
        .map(|&i| &prepared.train.features[i])
        .collect();
    let epochs = params
        .epochs
        .unwrap_or(if matches!(task.name, "rte" | "stsb") {
            10
        } else {
            3
        });
    let total = epochs * FinetuneSettings::steps_per_epoch(params.batch_size, train.len());
    let settings = FinetuneSettings {
        classes: task.labels.map(<[&str]>::len),
        batch_size: params.batch_size,
        eval_batch_size: params.eval_batch_size,
        epochs,
        schedule: Schedule {
            peak: params.lr,
            warmup: (params.warmup_fraction * total as f64).round() as u64,
            total,
            decay: Decay::WholeRun,
        },
        adamw: AdamWSettings {
            weight_decay: params.weight_decay,
            epsilon: params.adam_epsilon,
            clip_norm: params.clip_norm,
            bias_correction: params.adam_bias_correction,
            ..AdamWSettings::default()
        },
        layer_decay: params.layerwise_lr_decay,
        dropout: params.dropout,
        head_dropout: params.head_dropout,
        head: params.head_shape(),
        seed: params.seed,
    };
    let start = match &prepared.exported {
        Some((exported, path)) => Start::Pretrained(exported, path),
        None => Start::Scratch(prepared.encoder),
    };
    let evals: Vec<&[Feature]> = prepared
        .devs
        .iter()
        .chain(&prepared.tests)
        .map(|s| s.features.as_slice())
        .collect();
    tracing::info!(
        task = task.name,
        train_examples = train.len(),
        epochs,
        steps = total,
        backend = %params.backend,
        "fine-tuning"
    );
    let pool = crate::parallel::worker_pool(ctx.cpus)?;
    let started = std::time::Instant::now();
    let finetuned = pool.install(|| {
        crate::backend::run_on(
            &params.backend,
            &ctx.tuning_dir,
            Work {
                settings: &settings,
                start: &start,
                train: &train,
                evals: &evals,
                ctx,
            },
        )
    })??;
    let seconds = started.elapsed().as_secs_f64();
    write_outputs(
        params,
        &prepared,
        &settings,
        &finetuned,
        train.len(),
        seconds,
        ctx,
    )
}

/// [`finetune`] as work for [`crate::backend::run_on`].
struct Work<'a> {
    settings: &'a FinetuneSettings,
    start: &'a Start<'a>,
    train: &'a [&'a Feature],
    evals: &'a [&'a [Feature]],
    ctx: &'a StageContext<'a>,
}

impl crate::backend::OnBackend for Work<'_> {
    type Output = Result<Finetuned>;
    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Self::Output {
        finetune::<B>(
            self.settings,
            self.start,
            self.train,
            self.evals,
            self.ctx,
            device,
        )
    }
}
