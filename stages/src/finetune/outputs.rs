//! What a fine-tuning run writes: the scores of every dev split in `metrics.json`, the dev
//! predictions, the GLUE submission files and the training log.

use std::collections::BTreeMap;

use electra_pipe_api::{Metrics, StageContext};
use serde_json::json;

use super::inputs::{class_of, score_of, Prepared, Split};
use super::metrics::{score_name, task_metrics, Scored};
use super::predictions;
use super::train::{FinetuneSettings, Finetuned, Predictions, TRAIN_LOG};
use super::transformers::{self, FineTunedClassifier};
use super::{FinetuneParams, METRICS_FILE, PREDICTIONS_DIR, SUBMISSION_DIR};
use crate::error::{DataError, Result};
use crate::glue::Task;
use crate::records::finetune::{
    EncoderOrigin, FinetuneSummary, ScoredExamples, FINETUNE_SUMMARY_FORMAT,
};

/// Scores every dev split; writes `metrics.json`, the predictions, the submission files and
/// the training log.
pub fn write_outputs(
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
        Some((exported, path)) => EncoderOrigin::pretrained(exported, path)?,
        None => EncoderOrigin::scratch(prepared.encoder),
    };
    let summary = FinetuneSummary {
        format: FINETUNE_SUMMARY_FORMAT.to_owned(),
        task: task.name.to_owned(),
        metric: metric.to_owned(),
        score,
        scored_split: scored_split.clone(),
        dev: dev_metrics.clone(),
        seed: params.seed,
        train_examples,
        train_examples_available: prepared.train.features.len(),
        max_train_examples: params.max_train_examples,
        epochs: settings.epochs,
        steps: settings.schedule.total,
        warmup_steps: settings.schedule.warmup,
        batch_size: settings.batch_size,
        lr: params.lr,
        layerwise_lr_decay: params.layerwise_lr_decay,
        weight_decay: params.weight_decay,
        adam_bias_correction: settings.adamw.bias_correction,
        dropout: settings.dropout,
        pooling: settings.head.pooling,
        head: settings.head.layers,
        last_epoch_loss: Some(finetuned.last_epoch_loss).filter(|l| l.is_finite()),
        encoder,
        backend: params.backend.clone(),
        seconds,
        examples_per_second: finetuned.examples_per_second,
        submission_files,
        scored_examples: scored_examples(&prepared.devs[0], &dev_predictions[0]),
    };
    summary.write(&ctx.out_dir.join(METRICS_FILE))?;
    if let (Some(tokenizer), Some(tensors)) = (&prepared.export_tokenizer, &finetuned.weights) {
        let classifier = FineTunedClassifier {
            tensors,
            encoder: prepared.encoder,
            task,
            dropout: (settings.dropout, settings.head_dropout),
        };
        let written = transformers::write(
            &ctx.out_dir.join(transformers::TRANSFORMERS_DIR),
            &classifier,
            tokenizer,
        )?;
        tracing::info!(
            class = written.class,
            "transformers checkpoint {}/ written (from_pretrained loads it)",
            transformers::TRANSFORMERS_DIR
        );
    }
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
        (
            "matmul_gflops_per_second".to_owned(),
            json!(finetuned.matmul_gflops_per_second),
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
    match predicted {
        Predictions::Classes(predicted) => {
            let gold: Vec<u32> = split.features.iter().map(class_of).collect();
            let scored = Scored::Classes {
                predicted,
                gold: &gold,
            };
            task_metrics(task, &scored)
        }
        Predictions::Scores(predicted) => {
            let gold: Vec<f64> = split.features.iter().map(score_of).collect();
            let scored = Scored::Scores {
                predicted,
                gold: &gold,
            };
            task_metrics(task, &scored)
        }
    }
}

/// The gold labels and predictions of one dev split, as numbers.
fn scored_examples(split: &Split, predicted: &Predictions) -> ScoredExamples {
    match predicted {
        Predictions::Classes(predicted) => ScoredExamples {
            gold: split
                .features
                .iter()
                .map(|f| f64::from(class_of(f)))
                .collect(),
            predicted: predicted.iter().map(|&p| f64::from(p)).collect(),
        },
        Predictions::Scores(predicted) => ScoredExamples {
            gold: split.features.iter().map(score_of).collect(),
            predicted: predicted.clone(),
        },
    }
}
