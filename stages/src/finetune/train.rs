//! The fine-tuning loop: seeded epochs of packed batches → task loss → AdamW with layer-wise
//! learning-rate decay, checkpointed at every epoch's end (and on cancellation) and resumed
//! exactly; then predictions on the evaluation splits.
//!
//! Every random draw is ours: the head's initialisation, the epoch orders and each step's
//! dropout masks come from disjoint streams of the run's seed ([`super::batches::stream`]),
//! so a resumed run repeats exactly what an uninterrupted one does.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use electra_pipe_api::StageContext;
use rand::Rng;
use serde::Serialize;

use super::batches::{epoch_order, pack, pad, stream, Stream};
use super::inputs::{class_of, score_of};
use super::model::{layer_lr_factor, Classifier};
use crate::error::{DataError, Result};
use crate::glue::Feature;
use crate::model::config::EncoderConfig;
use crate::model::export::ExportedEncoder;
use crate::model::flops::encoder_matmul_train_flops_per_token;
use crate::model::heads::HeadShape;
use crate::model::layers::{Dropout, Init};
use crate::model::safetensors::NamedTensor;
use crate::model::weights::{load_named, named_tensors};
use crate::pretrain_data::Cursor;
use crate::training::checkpoint::{self, TrainingState};
use crate::training::optimizer::{AdamW, AdamWSettings, Schedule};
use crate::training::step_log::StepLog;

/// The per-step log in the checkpoint area (copied to the outputs at the end).
pub const TRAIN_LOG: &str = "train_log.jsonl";

/// One line of [`TRAIN_LOG`].
#[derive(Debug, Clone, Copy, Serialize)]
struct TrainStep {
    step: u64,
    epoch: u64,
    loss: f64,
    lr: f64,
    grad_norm: f64,
}

/// Everything the loop needs besides the data and the starting weights.
#[derive(Debug, Clone, PartialEq)]
pub struct FinetuneSettings {
    /// Classes, or `None` for regression (one output, squared error).
    pub classes: Option<usize>,
    /// Training examples per step.
    pub batch_size: usize,
    /// Examples per evaluation batch.
    pub eval_batch_size: usize,
    /// Passes over the training examples.
    pub epochs: u64,
    /// Peak rate, warm-up and total steps.
    pub schedule: Schedule,
    /// Optimiser settings.
    pub adamw: AdamWSettings,
    /// Layer-wise learning-rate decay (see [`layer_lr_factor`]).
    pub layer_decay: f64,
    /// Dropout inside the encoder while fine-tuning (whatever the pretraining used).
    pub dropout: f64,
    /// Dropout on the pooled state before the head.
    pub head_dropout: f64,
    /// What the head reads and computes.
    pub head: HeadShape,
    /// Seed of the head, the data order and dropout.
    pub seed: u64,
}

impl FinetuneSettings {
    /// Steps in one epoch of `examples`.
    pub fn steps_per_epoch(batch_size: usize, examples: usize) -> u64 {
        examples.div_ceil(batch_size) as u64
    }

    fn outputs(&self) -> usize {
        self.classes.unwrap_or(1)
    }
}

/// Where the encoder's weights come from.
pub enum Start<'a> {
    /// An exported pretrained encoder (and its file, for errors).
    Pretrained(&'a ExportedEncoder, &'a Path),
    /// Random initialisation of this shape: the sanity baseline.
    Scratch(EncoderConfig),
}

impl Start<'_> {
    fn config(&self) -> EncoderConfig {
        match self {
            Start::Pretrained(exported, _) => exported.config,
            Start::Scratch(config) => *config,
        }
    }
}

/// Predictions on one split, in its order.
#[derive(Debug, Clone, PartialEq)]
pub enum Predictions {
    /// Class ids (argmax).
    Classes(Vec<u32>),
    /// Regression outputs.
    Scores(Vec<f64>),
}

/// The result of a finished run.
pub struct Finetuned {
    /// Predictions per evaluation split, in the order given.
    pub predictions: Vec<Predictions>,
    /// Mean training loss over the last epoch's steps this process ran (NaN if none ran).
    pub last_epoch_loss: f64,
    /// The step training resumed from (0 for a fresh start).
    pub resumed_from: u64,
    /// Training examples per second over the steps this process ran.
    pub examples_per_second: f64,
    /// The encoder's matrix products per second over those steps, in GFLOP/s: the work
    /// actually done on the positions of each batch's packed rows, their leftover padding
    /// included (see
    /// [`encoder_matmul_train_flops_per_token`]).
    pub matmul_gflops_per_second: f64,
    /// The fine-tuned weights (`embeddings.*`, `encoder.*`, `head.*`), kept when the head is
    /// transformers' (to export).
    pub weights: Option<BTreeMap<String, NamedTensor>>,
}

/// Fine-tunes on `train` for `settings.schedule.total` steps (resuming from
/// `ctx.checkpoint_dir` when a checkpoint is there), then predicts every split of `evals`.
pub fn finetune<B: AutodiffBackend>(
    settings: &FinetuneSettings,
    start: &Start<'_>,
    train: &[&Feature],
    evals: &[&[Feature]],
    ctx: &StageContext<'_>,
    device: &B::Device,
) -> Result<Finetuned> {
    let config = start.config();
    let mut init_rng = stream(settings.seed, Stream::Init);
    let mut init = Init::<B> {
        device,
        rng: &mut init_rng,
    };
    let mut model = match start {
        Start::Pretrained(exported, source) => Classifier::pretrained(
            &mut init,
            exported,
            settings.outputs(),
            settings.head,
            source,
        )?,
        Start::Scratch(config) => {
            Classifier::new(&mut init, config, settings.outputs(), settings.head)
        }
    };
    let mut optimizer = AdamW::<B>::new(settings.adamw);
    let mut first = 0;
    if let Some(saved) = checkpoint::load(&ctx.checkpoint_dir)? {
        model = load_named(model, &saved.model, device, &ctx.checkpoint_dir)?;
        optimizer.import(saved.moments, saved.state.step, device);
        first = saved.state.step;
        tracing::info!(step = first, "resuming from checkpoint");
    }
    let mut log = StepLog::open(&ctx.checkpoint_dir.join(TRAIN_LOG), first)?;
    let per_epoch = FinetuneSettings::steps_per_epoch(settings.batch_size, train.len());
    let total = settings.schedule.total;
    let started = Instant::now();
    let (mut seen, mut epoch_loss, mut epoch_steps) = (0usize, 0.0, 0u32);
    let mut matmul_flops = 0.0;
    let mut order: Option<(u64, Vec<usize>)> = None;
    for step in first..total {
        if ctx.cancel.is_cancelled() {
            save_checkpoint(ctx, settings, &model, &optimizer, step, per_epoch)?;
            return Err(DataError::Cancelled);
        }
        let epoch = step / per_epoch;
        if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            order = Some((epoch, epoch_order(train.len(), settings.seed, epoch)));
            (epoch_loss, epoch_steps) = (0.0, 0);
        }
        let positions = &order.as_ref().expect("set above").1;
        let from = ((step % per_epoch) as usize) * settings.batch_size;
        let to = (from + settings.batch_size).min(train.len());
        let batch: Vec<&Feature> = positions[from..to].iter().map(|&i| train[i]).collect();

        let mut rng = stream(settings.seed, Stream::Step(step));
        let (encoder_seed, head_seed) = (rng.random(), rng.random());
        let input = pack(&batch, device);
        let [rows, row_len] = input.ids.dims();
        let outputs = model.forward(
            &input,
            &mut Dropout::train(settings.dropout, encoder_seed, 0),
            &mut Dropout::train(settings.head_dropout, head_seed, 0),
        );
        let loss = task_loss(outputs, &batch, settings.classes.is_some(), device);
        let loss_value = f64::from(loss.clone().into_scalar().elem::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let lr = settings.schedule.lr(step);
        let decay = settings.layer_decay;
        let (updated, grad_norm) = optimizer.step_scaled(model, grads, lr, &|path| {
            layer_lr_factor(path, config.layers, decay)
        });
        model = updated;
        seen += batch.len();
        matmul_flops +=
            (rows * row_len) as f64 * encoder_matmul_train_flops_per_token(&config, row_len);
        epoch_loss += loss_value;
        epoch_steps += 1;
        log.write(&TrainStep {
            step: step + 1,
            epoch: epoch + 1,
            loss: loss_value,
            lr,
            grad_norm,
        })?;
        let rate = seen as f64 / started.elapsed().as_secs_f64();
        ctx.progress.update(
            step + 1,
            Some(total),
            &format!(
                "epoch {}/{} · loss {loss_value:.3} · {rate:.0} ex/s",
                epoch + 1,
                settings.epochs
            ),
        );
        let done = step + 1;
        if done % per_epoch == 0 && done < total {
            save_checkpoint(ctx, settings, &model, &optimizer, done, per_epoch)?;
        }
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    let examples_per_second = seen as f64 / seconds;
    let matmul_gflops_per_second = matmul_flops / seconds / 1e9;
    let model = model.valid();
    let predictions = evals
        .iter()
        .map(|split| predict(&model, split, settings, device))
        .collect();
    let weights = settings
        .head
        .is_transformers()
        .then(|| named_tensors(&model));
    Ok(Finetuned {
        predictions,
        last_epoch_loss: epoch_loss / f64::from(epoch_steps),
        resumed_from: first,
        examples_per_second,
        matmul_gflops_per_second,
        weights,
    })
}

/// Cross-entropy over the classes, or squared error of the single output (STS-B).
fn task_loss<B: Backend>(
    outputs: Tensor<B, 2>,
    batch: &[&Feature],
    classification: bool,
    device: &B::Device,
) -> Tensor<B, 1> {
    let b = batch.len();
    if classification {
        let labels: Vec<i64> = batch.iter().map(|f| i64::from(class_of(f))).collect();
        let labels = Tensor::<B, 2, Int>::from_data(TensorData::new(labels, [b, 1]), device);
        -log_softmax(outputs, 1).gather(1, labels).mean()
    } else {
        let targets: Vec<f32> = batch.iter().map(|f| score_of(f) as f32).collect();
        let targets = Tensor::<B, 1>::from_data(TensorData::new(targets, [b]), device);
        (outputs.reshape([b]) - targets).powi_scalar(2).mean()
    }
}

/// Predicts `split` in batches of similar length (fewer padded positions), returned in the
/// split's order.
fn predict<B: Backend>(
    model: &Classifier<B>,
    split: &[Feature],
    settings: &FinetuneSettings,
    device: &B::Device,
) -> Predictions {
    let mut by_length: Vec<usize> = (0..split.len()).collect();
    by_length.sort_by_key(|&i| (split[i].input_ids.len(), i));
    let mut outputs = vec![Vec::new(); split.len()];
    for chunk in by_length.chunks(settings.eval_batch_size) {
        let batch: Vec<&Feature> = chunk.iter().map(|&i| &split[i]).collect();
        let result = model.forward(&pad(&batch, device), &mut Dropout::Off, &mut Dropout::Off);
        let k = settings.outputs();
        let values: Vec<f32> = result.into_data().iter::<f32>().collect();
        for (row, &i) in chunk.iter().enumerate() {
            outputs[i] = values[row * k..(row + 1) * k].to_vec();
        }
    }
    match settings.classes {
        Some(_) => Predictions::Classes(
            outputs
                .iter()
                .map(|o| {
                    // The first of equal maxima, as numpy's argmax.
                    let mut best = 0;
                    for (k, v) in o.iter().enumerate() {
                        if *v > o[best] {
                            best = k;
                        }
                    }
                    best as u32
                })
                .collect(),
        ),
        None => Predictions::Scores(outputs.iter().map(|o| f64::from(o[0])).collect()),
    }
}

fn save_checkpoint<B: AutodiffBackend>(
    ctx: &StageContext<'_>,
    settings: &FinetuneSettings,
    model: &Classifier<B>,
    optimizer: &AdamW<B>,
    step: u64,
    per_epoch: u64,
) -> Result<()> {
    let cursor = Cursor {
        epoch: step / per_epoch,
        position: (step % per_epoch) * settings.batch_size as u64,
    };
    let state = TrainingState::new(step, cursor, settings.seed);
    checkpoint::save(
        &ctx.checkpoint_dir,
        &state,
        &named_tensors(model),
        &optimizer.export(),
    )?;
    tracing::info!(step, "checkpoint written");
    Ok(())
}
