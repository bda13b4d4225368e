//! The training loop: data stream → dynamic masking → objective → backward → AdamW, with
//! per-step metrics, progress, periodic checkpoints and exact resume.
//!
//! Every random draw of step `t` (masking, dropout, generator samples) comes from stream
//! `t + 1` of a ChaCha generator seeded with the run's seed (stream 0 initialises the
//! weights), and the data position after `t` steps is `t · batch` examples into the seeded
//! stream. A run resumed from the checkpoint of step `t` therefore repeats exactly what an
//! uninterrupted run does from there on.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use electra_pipe_api::StageContext;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::checkpoint::{self, TrainingState};
use super::config::EncoderConfig;
use super::export;
use super::layers::{Dropout, Init};
use super::masking::{mask_batch, MaskingOptions};
use super::objective::{Bert, Electra, StepOutput, StepStats};
use super::optimizer::{AdamW, AdamWSettings, Schedule};
use super::tensor_file::{self, NamedTensor};
use crate::error::{DataError, Result};
use crate::pretrain_data::{Cursor, PretrainingData};

/// What to train.
#[derive(Debug, Clone, PartialEq)]
pub enum Objective {
    /// ELECTRA with this generator shape and discriminator-loss weight λ.
    Electra {
        /// The generator's shape.
        generator: EncoderConfig,
        /// Weight of the discriminator's loss.
        lambda: f64,
    },
    /// BERT masked LM.
    Bert,
}

/// Everything the loop needs besides the data.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSettings {
    /// Objective (and generator shape).
    pub objective: Objective,
    /// The encoder (ELECTRA's discriminator).
    pub encoder: EncoderConfig,
    /// Examples per step.
    pub batch_size: usize,
    /// Learning-rate schedule (its `total` is the number of steps).
    pub schedule: Schedule,
    /// Optimiser settings.
    pub adamw: AdamWSettings,
    /// Masking.
    pub masking: MaskingOptions,
    /// Seed of every random draw and of the data order.
    pub seed: u64,
    /// Steps between checkpoints.
    pub checkpoint_every: u64,
    /// Steps after which the weights are kept as snapshots (e.g. 25%, 50%, 100%).
    pub snapshot_steps: Vec<u64>,
    /// Train FLOPs of one step, for the metrics.
    pub flops_per_step: f64,
}

impl TrainSettings {
    /// Weight of the discriminator loss (0 for BERT).
    fn lambda(&self) -> f64 {
        match self.objective {
            Objective::Electra { lambda, .. } => lambda,
            Objective::Bert => 0.0,
        }
    }
}

/// The model being trained.
enum Model<B: AutodiffBackend> {
    Electra(Box<Electra<B>>),
    Bert(Box<Bert<B>>),
}

impl<B: AutodiffBackend> Model<B> {
    fn new(settings: &TrainSettings, device: &B::Device) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
        let mut init = Init::<B> {
            device,
            rng: &mut rng,
        };
        match &settings.objective {
            Objective::Electra { generator, .. } => Model::Electra(Box::new(Electra::new(
                &mut init,
                &settings.encoder,
                generator,
            ))),
            Objective::Bert => Model::Bert(Box::new(Bert::new(&mut init, &settings.encoder))),
        }
    }

    fn named(&self) -> BTreeMap<String, NamedTensor> {
        match self {
            Model::Electra(m) => tensor_file::named_tensors(m.as_ref()),
            Model::Bert(m) => tensor_file::named_tensors(m.as_ref()),
        }
    }

    fn load(
        self,
        saved: &BTreeMap<String, NamedTensor>,
        device: &B::Device,
        source: &Path,
    ) -> Result<Self> {
        Ok(match self {
            Model::Electra(m) => Model::Electra(Box::new(tensor_file::load_named(
                *m, saved, device, source,
            )?)),
            Model::Bert(m) => Model::Bert(Box::new(tensor_file::load_named(
                *m, saved, device, source,
            )?)),
        })
    }

    fn forward(
        &self,
        settings: &TrainSettings,
        masked: &super::masking::MaskedBatch,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> StepOutput<B> {
        let mut dropout_rng = ChaCha8Rng::seed_from_u64(rng.random());
        let mut dropout = Dropout::Train {
            p: settings.encoder.dropout,
            rng: &mut dropout_rng,
        };
        match self {
            Model::Electra(m) => m.step(masked, settings.lambda(), &mut dropout, rng, device),
            Model::Bert(m) => m.step(masked, &mut dropout, device),
        }
    }

    /// The weights renamed into the fine-tuning layout: `embeddings.*`, `encoder.*` (the
    /// discriminator, BERT's encoder, or with `generator` ELECTRA's generator) and `head.*`.
    /// ELECTRA's other network is left out.
    fn exported(&self, generator: bool) -> BTreeMap<String, NamedTensor> {
        let (body, head) = match (self, generator) {
            (Model::Bert(_), _) => ("encoder.", "head."),
            (Model::Electra(_), false) => ("discriminator.", "discriminator_head."),
            (Model::Electra(_), true) => ("generator.", "generator_head."),
        };
        self.named()
            .into_iter()
            .filter_map(|(path, tensor)| {
                let name = if path.starts_with("embeddings.") {
                    path
                } else if let Some(rest) = path.strip_prefix(head) {
                    format!("head.{rest}")
                } else {
                    format!("encoder.{}", path.strip_prefix(body)?)
                };
                Some((name, tensor))
            })
            .collect()
    }

    /// The safetensors metadata of the exported discriminator/BERT or, with `generator`, of
    /// ELECTRA's generator (with the step for snapshots).
    fn metadata(
        &self,
        settings: &TrainSettings,
        generator: bool,
        step: Option<u64>,
    ) -> BTreeMap<String, String> {
        let (objective, config) = match (self, &settings.objective, generator) {
            (Model::Electra(_), Objective::Electra { generator, .. }, true) => {
                ("electra", *generator)
            }
            (Model::Electra(_), _, _) => ("electra", settings.encoder),
            (Model::Bert(_), _, _) => ("bert", settings.encoder),
        };
        let snapshot = step.map(|step| export::Snapshot {
            step,
            total_steps: settings.schedule.total,
        });
        export::metadata(&config, objective, snapshot)
    }

    fn update(self, optimizer: &mut AdamW<B>, grads: &B::Gradients, lr: f64) -> (Self, f64) {
        match self {
            Model::Electra(m) => {
                let (m, norm) = optimizer.step(*m, grads, lr);
                (Model::Electra(Box::new(m)), norm)
            }
            Model::Bert(m) => {
                let (m, norm) = optimizer.step(*m, grads, lr);
                (Model::Bert(Box::new(m)), norm)
            }
        }
    }
}

/// The stream of step `step`'s random draws.
fn step_rng(seed: u64, step: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(step + 1);
    rng
}

/// Where the data stream is after `step` steps of `batch` examples over `len` examples.
fn cursor_after(step: u64, batch: usize, len: u64) -> Cursor {
    let read = step * batch as u64;
    Cursor {
        epoch: read / len,
        position: read % len,
    }
}

/// The result of a finished run.
pub struct Trained {
    /// The final model to fine-tune (ELECTRA's discriminator, or BERT), in the fine-tuning
    /// layout (see [`Model::exported`]).
    pub model: BTreeMap<String, NamedTensor>,
    /// ELECTRA's final generator in the same layout.
    pub generator: Option<BTreeMap<String, NamedTensor>>,
    /// The safetensors metadata of `model` (see [`export`]).
    pub metadata: BTreeMap<String, String>,
    /// The safetensors metadata of `generator`.
    pub generator_metadata: BTreeMap<String, String>,
    /// The last step's measurements.
    pub last: StepStats,
    /// The step training resumed from (0 for a fresh start).
    pub resumed_from: u64,
    /// Mean real tokens per second over the steps this process ran.
    pub tokens_per_second: f64,
}

/// Trains to `settings.schedule.total` steps, resuming from `ctx.checkpoint_dir` if a
/// checkpoint is there. Metrics go to `checkpoint_dir/metrics.jsonl`, snapshots to
/// `checkpoint_dir/snapshots/`.
pub fn train<B: AutodiffBackend>(
    settings: &TrainSettings,
    data: &PretrainingData,
    ctx: &StageContext<'_>,
    device: &B::Device,
) -> Result<Trained> {
    let total = settings.schedule.total;
    let special = data.index().special;
    let vocab = data.index().vocab_size;
    let mut model = Model::<B>::new(settings, device);
    let mut optimizer = AdamW::<B>::new(settings.adamw);
    let mut start = 0;
    if let Some(saved) = checkpoint::load(&ctx.checkpoint_dir)? {
        model = model.load(&saved.model, device, &ctx.checkpoint_dir)?;
        optimizer.import(saved.moments, device);
        start = saved.state.step;
        tracing::info!(step = start, "resuming from checkpoint");
    }
    let metrics_path = ctx.checkpoint_dir.join("metrics.jsonl");
    let mut metrics = open_step_log(&metrics_path, start)?;
    let mut stream = data.stream(
        settings.seed,
        cursor_after(start, settings.batch_size, data.len()),
    )?;
    let started = Instant::now();
    let mut tokens_seen = 0usize;
    let mut last = StepStats::default();
    for step in start..total {
        if ctx.cancel.is_cancelled() {
            save_checkpoint(ctx, settings, &model, &optimizer, step, data.len())?;
            return Err(DataError::Cancelled);
        }
        let step_started = Instant::now();
        let mut rng = step_rng(settings.seed, step);
        let batch = stream.next_batch(settings.batch_size)?;
        let masked = mask_batch(&batch, special, vocab, &settings.masking, &mut rng);
        let output = model.forward(settings, &masked, &mut rng, device);
        let grads = output.loss.backward();
        let lr = settings.schedule.lr(step);
        let (updated, grad_norm) = model.update(&mut optimizer, &grads, lr);
        model = updated;
        last = output.stats;
        tokens_seen += last.tokens;
        let step_seconds = step_started.elapsed().as_secs_f64();
        let line = json!({
            "step": step + 1,
            "loss": last.loss,
            "mlm_loss": last.mlm_loss,
            "bce_loss": last.bce_loss,
            "mlm_accuracy": last.mlm_accuracy,
            "disc_accuracy": last.disc_accuracy,
            "disc_baseline": last.disc_baseline,
            "disc_precision": last.disc_precision,
            "disc_recall": last.disc_recall,
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens_per_second": last.tokens as f64 / step_seconds,
            "seconds": step_seconds,
            "train_flops": settings.flops_per_step * (step + 1) as f64,
        });
        writeln!(metrics, "{line}")
            .map_err(|e| DataError::io(format!("writing {}", metrics_path.display()), e))?;
        let rate = tokens_seen as f64 / started.elapsed().as_secs_f64();
        ctx.progress.update(
            step + 1,
            Some(total),
            &format!("loss {:.3} · {:.0} tok/s", last.loss, rate),
        );
        let done = step + 1;
        if settings.snapshot_steps.contains(&done) {
            save_snapshot(ctx, settings, &model, done)?;
        }
        if done % settings.checkpoint_every == 0 && done < total {
            save_checkpoint(ctx, settings, &model, &optimizer, done, data.len())?;
        }
    }
    Ok(Trained {
        model: model.exported(false),
        generator: matches!(model, Model::Electra(_)).then(|| model.exported(true)),
        metadata: model.metadata(settings, false, None),
        generator_metadata: model.metadata(settings, true, None),
        last,
        resumed_from: start,
        tokens_per_second: tokens_seen as f64 / started.elapsed().as_secs_f64().max(1e-9),
    })
}

fn save_checkpoint<B: AutodiffBackend>(
    ctx: &StageContext<'_>,
    settings: &TrainSettings,
    model: &Model<B>,
    optimizer: &AdamW<B>,
    step: u64,
    len: u64,
) -> Result<()> {
    let state = TrainingState::new(
        step,
        cursor_after(step, settings.batch_size, len),
        settings.seed,
    );
    checkpoint::save(
        &ctx.checkpoint_dir,
        &state,
        &model.named(),
        &optimizer.export(),
    )?;
    tracing::info!(step, "checkpoint written");
    Ok(())
}

fn save_snapshot<B: AutodiffBackend>(
    ctx: &StageContext<'_>,
    settings: &TrainSettings,
    model: &Model<B>,
    step: u64,
) -> Result<()> {
    let dir = ctx.checkpoint_dir.join("snapshots");
    std::fs::create_dir_all(&dir)
        .map_err(|e| DataError::io(format!("creating {}", dir.display()), e))?;
    let path = dir.join(snapshot_file(step));
    tensor_file::write(
        &path,
        &model.exported(false),
        &model.metadata(settings, false, Some(step)),
    )
}

/// The file name of the snapshot taken after `step` steps.
pub fn snapshot_file(step: u64) -> String {
    format!("step-{step:08}.safetensors")
}

/// Opens the per-step JSON-lines log at `path` for appending after dropping the lines of
/// steps after `step` (a resumed run recomputes them).
pub fn open_step_log(path: &Path, step: u64) -> Result<File> {
    truncate_metrics(path, step)?;
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| DataError::io(format!("opening {}", path.display()), e))
}

/// Keeps only the metrics lines of steps ≤ `step` (those after it will be recomputed).
fn truncate_metrics(path: &Path, step: u64) -> Result<()> {
    let Ok(file) = File::open(path) else {
        return Ok(());
    };
    let kept: Vec<String> = BufReader::new(file)
        .lines()
        .map_while(std::result::Result::ok)
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= step)
        })
        .collect();
    let mut text = kept.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    std::fs::write(path, text)
        .map_err(|e| DataError::io(format!("rewriting {}", path.display()), e))
}
