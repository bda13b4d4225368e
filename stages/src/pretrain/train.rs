//! The training loop: data stream → dynamic masking → objective → backward → AdamW, with
//! per-step metrics, progress, periodic checkpoints and exact resume.
//!
//! Every random draw of step `t` (masking, dropout, generator samples) comes from stream
//! `t + 1` of a ChaCha generator seeded with the run's seed (stream 0 initialises the
//! weights), and the data position after `t` steps is `t · batch` examples into the seeded
//! stream. A run resumed from the checkpoint of step `t` therefore repeats exactly what an
//! uninterrupted run does from there on.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use electra_pipe_api::StageContext;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::bert::Bert;
use super::electra::{Electra, ElectraShape};
use super::flops::FlopsSchedule;
use super::generator::GeneratorOptions;
use super::gradients::{DropoutDraws, Replicas};
use super::masking::{mask_batch, MaskingOptions};
use super::objective::{ExportedNetwork, PretrainingModel, Role};
use super::prior::OutputPrior;
use super::replace_mlm::{ReplaceMlm, ReplaceShape};
use super::stats::StepStats;
use super::unigram::UnigramSampler;
use crate::error::{DataError, Result};
use crate::model::config::EncoderConfig;
use crate::model::export;
use crate::model::layers::Init;
use crate::model::safetensors::{self, NamedTensor};
use crate::model::weights::{self, load_named, named_tensors};
use crate::pretrain_data::{Cursor, PretrainingData};
use crate::records::pretrain::StepRecord;
use crate::training::checkpoint::{self, TrainingState};
use crate::training::optimizer::{AdamW, AdamWSettings, Schedule};
use crate::training::step_log::StepLog;

/// What to train.
#[derive(Debug, Clone, PartialEq)]
pub enum Objective {
    /// ELECTRA with this generator and discriminator-loss weight λ; with `masked_only`,
    /// ELECTRA 15%.
    Electra {
        /// The generator.
        generator: GeneratorOptions,
        /// Weight of the discriminator's loss.
        lambda: f64,
        /// The discriminator's loss over the masked positions only.
        masked_only: bool,
        /// Two-stage training: the steps that train the generator alone.
        generator_steps: Option<u64>,
    },
    /// BERT masked LM.
    Bert,
    /// Replace MLM with this generator; with `all_tokens`, All-Tokens MLM.
    ReplaceMlm {
        /// The generator.
        generator: GeneratorOptions,
        /// Predict every token, with the copy gate.
        all_tokens: bool,
    },
}

impl Objective {
    /// Its generator, if it has one.
    pub fn generator(&self) -> Option<&GeneratorOptions> {
        match self {
            Objective::Electra { generator, .. } | Objective::ReplaceMlm { generator, .. } => {
                Some(generator)
            }
            Objective::Bert => None,
        }
    }
}

/// Everything the loop needs besides the data.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSettings {
    /// Objective (and generator shape).
    pub objective: Objective,
    /// The encoder (ELECTRA's discriminator).
    pub encoder: EncoderConfig,
    /// Examples per step (the effective batch).
    pub batch_size: usize,
    /// Examples per forward and backward pass: each replica's share of the step's batch is
    /// split into micro-batches of this many (the last may have fewer), whose gradients add up
    /// to the whole batch's ([`Replicas::gradients`]). `batch_size` (or more) for one pass.
    pub micro_batch: usize,
    /// Data-parallel replicas, each on its own device (on `flex`, threads sharing the CPU).
    pub replicas: usize,
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
    /// Train FLOPs step by step, for the metrics.
    pub flops: FlopsSchedule,
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

/// One exported network's weights, in the exported layout.
pub struct ExportedWeights {
    /// Which file it goes to.
    pub role: Role,
    /// Tensors by exported name (`embeddings.*`, `encoder.*`, `head.*`).
    pub tensors: BTreeMap<String, NamedTensor>,
    /// The safetensors metadata that makes the file self-describing (see [`export`]).
    pub metadata: BTreeMap<String, String>,
}

/// The result of a finished run.
pub struct Trained {
    /// The final weights of every exported network, the kept one (ELECTRA's discriminator, or
    /// BERT) first.
    pub exports: Vec<ExportedWeights>,
    /// The last step's measurements.
    pub last: StepStats,
    /// The step training resumed from (0 for a fresh start).
    pub resumed_from: u64,
    /// Mean real tokens per second over the steps this process ran.
    pub tokens_per_second: f64,
}

/// Trains to `settings.schedule.total` steps from heads started at `prior` (if any; see
/// [`OutputPrior`]), with `unigram` as a unigram generator's sampler, resuming from
/// `ctx.checkpoint_dir` if a checkpoint is there. Metrics go to `checkpoint_dir/metrics.jsonl`,
/// snapshots to `checkpoint_dir/snapshots/`.
pub fn train<B: AutodiffBackend>(
    settings: &TrainSettings,
    data: &PretrainingData,
    prior: Option<&OutputPrior>,
    unigram: Option<&UnigramSampler>,
    ctx: &StageContext<'_>,
    device: &B::Device,
) -> Result<Trained> {
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    let mut init = Init::<B> {
        device,
        rng: &mut rng,
    };
    let unigram = unigram.cloned();
    match &settings.objective {
        Objective::Electra {
            generator,
            lambda,
            masked_only,
            generator_steps,
        } => {
            let shape = ElectraShape {
                discriminator: settings.encoder,
                generator: *generator,
                lambda: *lambda,
                masked_only: *masked_only,
                generator_steps: *generator_steps,
                generator_only: false,
            };
            let model = Electra::new(&mut init, shape, unigram);
            train_model(model, settings, data, prior, ctx, device)
        }
        Objective::Bert => {
            let model = Bert::new(&mut init, &settings.encoder);
            train_model(model, settings, data, prior, ctx, device)
        }
        Objective::ReplaceMlm {
            generator,
            all_tokens,
        } => {
            let shape = ReplaceShape {
                encoder: settings.encoder,
                generator: *generator,
                all_tokens: *all_tokens,
            };
            let model = ReplaceMlm::new(&mut init, shape, unigram);
            train_model(model, settings, data, prior, ctx, device)
        }
    }
}

/// [`train`] for a freshly initialised `model` of the objective.
fn train_model<B: AutodiffBackend, M: PretrainingModel<B> + AutodiffModule<B>>(
    mut model: M,
    settings: &TrainSettings,
    data: &PretrainingData,
    prior: Option<&OutputPrior>,
    ctx: &StageContext<'_>,
    device: &B::Device,
) -> Result<Trained> {
    let total = settings.schedule.total;
    let special = data.index().special;
    let vocab = data.index().vocab_size;
    let mut optimizer = AdamW::<B>::new(settings.adamw);
    let mut start = 0;
    if let Some(prior) = prior {
        model = model.with_output_prior(prior, device);
    }
    if let Some(saved) = checkpoint::load(&ctx.checkpoint_dir)? {
        model = load_named(model, &saved.model, device, &ctx.checkpoint_dir)?;
        optimizer.import(saved.moments, saved.state.step, device);
        start = saved.state.step;
        tracing::info!(step = start, "resuming from checkpoint");
    }
    let replicas = Replicas::new(device, settings.replicas, settings.micro_batch);
    let mut metrics = StepLog::open(&ctx.checkpoint_dir.join("metrics.jsonl"), start)?;
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
        model = model.before_step(step, device)?;
        let step_started = Instant::now();
        let mut rng = step_rng(settings.seed, step);
        let batch = stream.next_batch(settings.batch_size)?;
        let masked = mask_batch(&batch, special, vocab, &settings.masking, &mut rng);
        let dropout = DropoutDraws {
            p: settings.encoder.dropout,
            seed: rng.random(),
        };
        let (grads, stats) = replicas.gradients(&model, &masked, dropout);
        let lr = settings.schedule.lr(step);
        let (updated, grad_norm) = optimizer.step(model, grads, lr);
        model = updated;
        last = stats;
        tokens_seen += last.tokens;
        let step_seconds = step_started.elapsed().as_secs_f64();
        metrics.write(&StepRecord {
            step: step + 1,
            loss: last.loss,
            mlm_loss: last.mlm_loss,
            bce_loss: last.bce_loss,
            mlm_accuracy: last.mlm_accuracy,
            disc_accuracy: last.disc_accuracy,
            disc_baseline: last.disc_baseline,
            disc_precision: last.disc_precision,
            disc_recall: last.disc_recall,
            disc_auc: last.disc_auc,
            hidden_cosine: last.hidden_cosine,
            lr,
            grad_norm,
            tokens_per_second: last.tokens as f64 / step_seconds,
            seconds: step_seconds,
            train_flops: settings.flops.after(step + 1),
        })?;
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
        exports: model
            .exports()
            .iter()
            .map(|network| exported(&model, network, total, None))
            .collect(),
        last,
        resumed_from: start,
        tokens_per_second: tokens_seen as f64 / started.elapsed().as_secs_f64().max(1e-9),
    })
}

/// `network`'s weights of `model` in the exported layout, with the metadata of a final model
/// or, with `snapshot_step`, of a snapshot.
fn exported<B: AutodiffBackend, M: PretrainingModel<B>>(
    model: &M,
    network: &ExportedNetwork,
    total_steps: u64,
    snapshot_step: Option<u64>,
) -> ExportedWeights {
    let snapshot = snapshot_step.map(|step| export::Snapshot { step, total_steps });
    ExportedWeights {
        role: network.role,
        tensors: weights::export(&network.network, &named_tensors(model)),
        metadata: export::metadata(&network.config, model.objective().as_str(), snapshot),
    }
}

fn save_checkpoint<B: AutodiffBackend, M: PretrainingModel<B> + AutodiffModule<B>>(
    ctx: &StageContext<'_>,
    settings: &TrainSettings,
    model: &M,
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
        &named_tensors(model),
        &optimizer.export(),
    )?;
    tracing::info!(step, "checkpoint written");
    Ok(())
}

/// Keeps the kept network's weights after `step` steps in `checkpoint_dir/snapshots/`.
fn save_snapshot<B: AutodiffBackend, M: PretrainingModel<B>>(
    ctx: &StageContext<'_>,
    settings: &TrainSettings,
    model: &M,
    step: u64,
) -> Result<()> {
    let dir = ctx.checkpoint_dir.join("snapshots");
    std::fs::create_dir_all(&dir)
        .map_err(|e| DataError::io(format!("creating {}", dir.display()), e))?;
    let kept = model.exports()[0];
    let snapshot = exported(model, &kept, settings.schedule.total, Some(step));
    safetensors::write(
        &dir.join(snapshot_file(step)),
        &snapshot.tensors,
        &snapshot.metadata,
    )
}

/// The file name of the snapshot taken after `step` steps.
pub fn snapshot_file(step: u64) -> String {
    format!("step-{step:08}.safetensors")
}
