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
//! Modules: [`model`] (encoder + `[CLS]` head, layer-wise LR factors), [`batches`] (subset,
//! epoch order, padding), [`train`] (the loop, checkpoints, prediction), [`metrics`] (GLUE's
//! metrics), [`predictions`] (dev and submission files).

pub mod batches;
pub mod metrics;
pub mod model;
pub mod predictions;
pub mod train;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use electra_pipe_api::{
    parse_params, Metrics, ParamError, Params, StageContext, StageError, StageKind, StagePlan,
};
use serde::Deserialize;
use serde_json::json;

use self::batches::training_subset;
use self::metrics::{score_name, task_metrics, Scored};
use self::train::{finetune, FinetuneSettings, Finetuned, Predictions, Start, TRAIN_LOG};
use crate::error::{DataError, Result};
use crate::glue::{read_features, Feature, Label, Task, TaskInfo, TASK_FILE};
use crate::pretrain::export::ExportedEncoder;
use crate::pretrain::kind::ModelParams;
use crate::pretrain::optimizer::{AdamWSettings, Schedule};

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
    /// Dropout on the `[CLS]` state before the head.
    #[serde(default = "default_head_dropout")]
    pub head_dropout: f64,
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
fn default_head_dropout() -> f64 {
    0.1
}
fn default_eval_batch_size() -> usize {
    128
}

impl FinetuneParams {
    /// Parses and validates params.
    pub fn parse(params: &Params) -> Result<Self, ParamError> {
        let parsed: FinetuneParams = parse_params(params)?;
        crate::backend::check(&parsed.backend)?;
        match (&parsed.encoder, &parsed.from_scratch) {
            (Some(_), Some(_)) => {
                return Err(ParamError::new(
                    "from_scratch",
                    "both `encoder` and `from_scratch` are set: expected one",
                ))
            }
            (None, None) => {
                return Err(ParamError::new(
                    "",
                    "expected `encoder` (a pretrain stage's model.safetensors or snapshot) or `from_scratch: {preset: ...}`",
                ))
            }
            (None, Some(model)) => model
                .encoder(1)
                .validate()
                .map_err(|(field, message)| {
                    ParamError::new(format!("from_scratch.{field}"), message)
                })?,
            (Some(_), None) => {}
        }
        if let Some(fraction) = parsed.snapshot {
            if parsed.encoder.is_none() || !(fraction > 0.0 && fraction <= 1.0) {
                return Err(ParamError::new(
                    "snapshot",
                    format!("expected a fraction of training in (0, 1] with `encoder: \"@<pretrain stage>/snapshots\"`, found {fraction}"),
                ));
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
        1
    }

    fn summary(&self) -> &'static str {
        "fine-tunes a pretrained encoder on one GLUE task with one seed and scores it on dev"
    }

    fn plan(&self, params: &Params) -> Result<StagePlan, ParamError> {
        let params = FinetuneParams::parse(params)?;
        let mut inputs = vec![params.task.clone()];
        inputs.extend(params.encoder.clone());
        Ok(StagePlan {
            inputs,
            outputs: vec![
                METRICS_FILE.to_owned(),
                PREDICTIONS_DIR.to_owned(),
                SUBMISSION_DIR.to_owned(),
                TRAIN_LOG.to_owned(),
            ],
            ..StagePlan::default()
        })
    }

    fn run(&self, params: &Params, ctx: &StageContext<'_>) -> Result<Metrics, StageError> {
        let params = FinetuneParams::parse(params)?;
        Ok(run(&params, ctx)?)
    }
}

/// One split's features and the file they came from.
struct Split {
    name: String,
    path: PathBuf,
    features: Vec<Feature>,
}

impl Split {
    fn read(dir: &Path, name: &str) -> Result<Self> {
        let path = dir.join(format!("{name}.jsonl"));
        Ok(Split {
            name: name.to_owned(),
            features: read_features(&path)?,
            path,
        })
    }

    /// Checks every example has a label of the task's kind and within its label set.
    fn check_labels(&self, task: &Task) -> Result<()> {
        for (i, f) in self.features.iter().enumerate() {
            let problem = match (f.label, task.labels) {
                (Some(Label::Class(id)), Some(labels)) if (id as usize) < labels.len() => None,
                (Some(Label::Score(_)), None) => None,
                (label, Some(labels)) => Some(format!(
                    "label {label:?} is outside {}'s label set: expected a class id 0..{} ({})",
                    task.name,
                    labels.len() - 1,
                    labels.join(", ")
                )),
                (label, None) => Some(format!("label {label:?}: expected a {} score", task.name)),
            };
            if let Some(message) = problem {
                return Err(DataError::malformed(&self.path, i + 1, message));
            }
        }
        Ok(())
    }
}

/// Everything read and checked before any training starts.
struct Prepared {
    info: TaskInfo,
    task: &'static Task,
    train: Split,
    devs: Vec<Split>,
    tests: Vec<Split>,
    /// The pretrained encoder and its file.
    exported: Option<(ExportedEncoder, PathBuf)>,
}

/// The encoder file: `encoder`, or with `snapshot` the file in that directory.
fn encoder_file(params: &FinetuneParams) -> Result<Option<PathBuf>> {
    Ok(match (&params.encoder, params.snapshot) {
        (Some(dir), Some(fraction)) => Some(crate::pretrain::export::find_snapshot(
            Path::new(dir),
            fraction,
        )?),
        (Some(file), None) => Some(PathBuf::from(file)),
        (None, _) => None,
    })
}

fn prepare(params: &FinetuneParams) -> Result<Prepared> {
    let dir = Path::new(&params.task);
    let info_path = dir.join(TASK_FILE);
    let info = TaskInfo::read(&info_path)?;
    let task = info.spec(&info_path)?;
    let present = |prefix: &str| -> Vec<&str> {
        task.splits
            .iter()
            .copied()
            .filter(|s| s.starts_with(prefix) && info.splits.contains_key(*s))
            .collect()
    };
    let loaded = || info.splits.keys().cloned().collect::<Vec<_>>().join(", ");
    if !info.splits.contains_key("train") {
        return Err(DataError::invalid(
            &info_path,
            format!(
                "{} has no train split here (loaded: {}): expected the glue_task stage to load `train`",
                task.name,
                loaded()
            ),
        ));
    }
    let dev_names = present("dev");
    if dev_names.is_empty() {
        return Err(DataError::invalid(
            &info_path,
            format!(
                "{} has no dev split here (loaded: {}): expected one to score on",
                task.name,
                loaded()
            ),
        ));
    }
    let train = Split::read(dir, "train")?;
    let devs = dev_names
        .iter()
        .map(|name| Split::read(dir, name))
        .collect::<Result<Vec<_>>>()?;
    for split in std::iter::once(&train).chain(&devs) {
        split.check_labels(task)?;
    }
    if train.features.is_empty() {
        return Err(DataError::invalid(
            &train.path,
            "no training examples: expected at least one",
        ));
    }
    let tests = present("test")
        .iter()
        .map(|name| Split::read(dir, name))
        .collect::<Result<Vec<_>>>()?;
    let exported = match encoder_file(params)? {
        Some(path) => {
            let exported = ExportedEncoder::read(&path)?;
            check_encoder(&exported, &info, &path, &info_path)?;
            Some((exported, path))
        }
        None => None,
    };
    Ok(Prepared {
        info,
        task,
        train,
        devs,
        tests,
        exported,
    })
}

/// The encoder must read the task's token ids: same vocabulary, long enough positions.
fn check_encoder(
    exported: &ExportedEncoder,
    info: &TaskInfo,
    path: &Path,
    info_path: &Path,
) -> Result<()> {
    if exported.config.vocab_size != info.vocab_size {
        return Err(DataError::invalid(
            path,
            format!(
                "the encoder was pretrained with a vocabulary of {} tokens, but the task's features ({}) come from a tokenizer of {} tokens: expected the tokenizer the encoder was pretrained with",
                exported.config.vocab_size,
                info_path.display(),
                info.vocab_size
            ),
        ));
    }
    if exported.config.max_positions < info.max_seq_len {
        return Err(DataError::invalid(
            path,
            format!(
                "the encoder has {} positions, but the task's features are up to {} tokens long: expected max_seq_len ≤ {}",
                exported.config.max_positions, info.max_seq_len, exported.config.max_positions
            ),
        ));
    }
    Ok(())
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
        },
        adamw: AdamWSettings {
            weight_decay: params.weight_decay,
            epsilon: params.adam_epsilon,
            clip_norm: params.clip_norm,
            ..AdamWSettings::default()
        },
        layer_decay: params.layerwise_lr_decay,
        head_dropout: params.head_dropout,
        seed: params.seed,
    };
    let start = match &prepared.exported {
        Some((exported, path)) => Start::Pretrained(exported, path),
        None => Start::Scratch(
            params
                .from_scratch
                .as_ref()
                .expect("checked by parse")
                .encoder(prepared.info.vocab_size),
        ),
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
            Work {
                settings: &settings,
                start: &start,
                train: &train,
                evals: &evals,
                ctx,
            },
        )
    })?;
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

/// Scores every dev split; writes `metrics.json`, the predictions, the submission files and
/// the training log.
fn write_outputs(
    params: &FinetuneParams,
    prepared: &Prepared,
    settings: &FinetuneSettings,
    finetuned: &Finetuned,
    train_examples: usize,
    seconds: f64,
    ctx: &StageContext<'_>,
) -> Result<Metrics> {
    let task = prepared.task;
    let create = |name: &str| {
        let dir = ctx.out_dir.join(name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| DataError::io(format!("creating {}", dir.display()), e))?;
        Ok::<_, DataError>(dir)
    };
    let (predictions_dir, submission_dir) = (create(PREDICTIONS_DIR)?, create(SUBMISSION_DIR)?);
    let (dev_predictions, test_predictions) = finetuned.predictions.split_at(prepared.devs.len());
    let mut dev_metrics = BTreeMap::new();
    for (split, predicted) in prepared.devs.iter().zip(dev_predictions) {
        dev_metrics.insert(split.name.clone(), score(task, split, predicted));
        predictions::write_dev(
            &predictions_dir.join(format!("{}.tsv", split.name)),
            task,
            &split.features,
            predicted,
        )?;
    }
    let mut submission_files = Vec::new();
    for (split, predicted) in prepared.tests.iter().zip(test_predictions) {
        let file = predictions::submission_file(task, &split.name);
        predictions::write_submission(
            &submission_dir.join(&file),
            task,
            &split.features,
            predicted,
        )?;
        submission_files.push(file);
    }
    let scored_split = &prepared.devs[0].name;
    let metric = score_name(task.metric);
    let score = dev_metrics[scored_split][metric];
    let log = ctx.checkpoint_dir.join(TRAIN_LOG);
    std::fs::copy(&log, ctx.out_dir.join(TRAIN_LOG))
        .map_err(|e| DataError::io(format!("copying {}", log.display()), e))?;
    let encoder = match &prepared.exported {
        Some((exported, path)) => json!({
            "from_scratch": false,
            "objective": exported.objective,
            "pretrain_step": exported.step,
            "digest": crate::digest::file_digest(path)?,
            "config": exported.config,
        }),
        _ => json!({
            "from_scratch": true,
            "config": params.from_scratch.as_ref().map(|m| m.encoder(prepared.info.vocab_size)),
        }),
    };
    let summary = json!({
        "task": task.name,
        "metric": metric,
        "score": score,
        "scored_split": scored_split,
        "dev": dev_metrics,
        "seed": params.seed,
        "train_examples": train_examples,
        "train_examples_available": prepared.train.features.len(),
        "max_train_examples": params.max_train_examples,
        "epochs": settings.epochs,
        "steps": settings.schedule.total,
        "warmup_steps": settings.schedule.warmup,
        "batch_size": settings.batch_size,
        "lr": params.lr,
        "layerwise_lr_decay": params.layerwise_lr_decay,
        "weight_decay": params.weight_decay,
        "last_epoch_loss": finetuned.last_epoch_loss,
        "encoder": encoder,
        "backend": params.backend,
        "seconds": seconds,
        "examples_per_second": finetuned.examples_per_second,
        "submission_files": submission_files,
    });
    crate::json_file::write_pretty(&ctx.out_dir.join(METRICS_FILE), &summary)?;
    tracing::info!(task = task.name, metric, score, "dev score");
    let mut metrics = Metrics::from([
        ("score".to_owned(), json!(score)),
        ("metric".to_owned(), json!(metric)),
        ("train_examples".to_owned(), json!(train_examples)),
        (
            "last_epoch_loss".to_owned(),
            json!(finetuned.last_epoch_loss),
        ),
        ("resumed_from".to_owned(), json!(finetuned.resumed_from)),
        (
            "examples_per_second".to_owned(),
            json!(finetuned.examples_per_second),
        ),
    ]);
    for (split, values) in &dev_metrics {
        for (name, value) in values {
            metrics.insert(format!("{split}.{name}"), json!(value));
        }
    }
    Ok(metrics)
}

/// The task's metrics on one dev split.
fn score(task: &Task, split: &Split, predicted: &Predictions) -> BTreeMap<String, f64> {
    let labels = split.features.iter().map(|f| f.label);
    match predicted {
        Predictions::Classes(predicted) => {
            let gold: Vec<u32> = labels
                .map(|label| match label {
                    Some(Label::Class(id)) => id,
                    _ => unreachable!("labels are checked before training"),
                })
                .collect();
            let scored = Scored::Classes {
                predicted,
                gold: &gold,
            };
            task_metrics(task, &scored)
        }
        Predictions::Scores(predicted) => {
            let gold: Vec<f64> = labels
                .map(|label| match label {
                    Some(Label::Score(score)) => score,
                    _ => unreachable!("labels are checked before training"),
                })
                .collect();
            let scored = Scored::Scores {
                predicted,
                gold: &gold,
            };
            task_metrics(task, &scored)
        }
    }
}
