//! What a pretraining run writes: the exported networks, the snapshots taken during training,
//! the per-step metrics and `config.json` (a [`PretrainSummary`]); and the stage's metrics.

use std::path::Path;

use electra_pipe_api::{Metrics, StageContext};
use serde_json::json;

use super::objective::Role;
use super::params::{Budget, PretrainParams, Training};
use super::train::{snapshot_file, ExportedWeights, TrainSettings, Trained};
use crate::error::{DataError, Result};
use crate::model::export::encoder_config;
use crate::model::weights::TransformersModel;
use crate::model::{safetensors, transformers_export};
use crate::pretrain_data::ShardIndex;
use crate::records::pretrain::{
    read_steps, MatchedCompute, PretrainSummary, SnapshotRecord, PRETRAIN_SUMMARY_FORMAT,
};

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
/// The model to fine-tune as a Hugging Face transformers checkpoint directory.
pub const TRANSFORMERS_DIR: &str = "hf";
/// ELECTRA's generator as a transformers checkpoint directory.
pub const TRANSFORMERS_GENERATOR_DIR: &str = "hf-generator";

/// The file of an exported network.
fn file_of(role: Role) -> &'static str {
    match role {
        Role::Kept => MODEL_FILE,
        Role::Generator => GENERATOR_FILE,
    }
}

/// The transformers checkpoint directory of an exported network.
fn transformers_dir_of(role: Role) -> &'static str {
    match role {
        Role::Kept => TRANSFORMERS_DIR,
        Role::Generator => TRANSFORMERS_GENERATOR_DIR,
    }
}

/// Writes `export` as a transformers checkpoint (see [`transformers_export`]) with the
/// tokenizer the data was made with; logs the class and any tensor left out.
fn write_transformers_checkpoint(
    export: &ExportedWeights,
    index: &ShardIndex,
    tokenizer: &Path,
    out_dir: &Path,
) -> Result<()> {
    let config = encoder_config(&export.metadata)
        .expect("an exported network's metadata holds its encoder config");
    let name = transformers_dir_of(export.role);
    if let Some(reason) = transformers_export::unsupported(&config) {
        tracing::info!(reason, "no transformers checkpoint {name}/");
        return Ok(());
    }
    let checkpoint = transformers_export::Checkpoint {
        tensors: &export.tensors,
        config: &config,
        model: TransformersModel::for_tensors(&export.tensors),
        pad_token_id: index.special.pad,
        extra_config: Default::default(),
    };
    let written =
        transformers_export::write_checkpoint(&out_dir.join(name), &checkpoint, tokenizer)?;
    tracing::info!(
        class = written.class,
        left_out = ?written.left_out,
        "transformers checkpoint {name}/ written (from_pretrained loads it)"
    );
    Ok(())
}

/// The run's outputs and its facts.
pub struct Run<'a> {
    /// The stage's params.
    pub params: &'a PretrainParams,
    /// The settings it trained with.
    pub settings: &'a TrainSettings,
    /// The data's index.
    pub index: &'a ShardIndex,
    /// The steps, and the stage whose compute they matched.
    pub budget: &'a Budget,
    /// The data's unigram entropy (nats).
    pub unigram_entropy: f64,
    /// The trained weights.
    pub trained: &'a Trained,
    /// The tokenizer the data was made with.
    pub tokenizer: &'a Path,
}

/// Writes every output into `ctx.out_dir`; returns the stage's metrics.
pub fn write_outputs(run: &Run<'_>, ctx: &StageContext<'_>) -> Result<Metrics> {
    let Run {
        params,
        settings,
        index,
        budget,
        unigram_entropy,
        trained,
        tokenizer,
    } = run;
    let matched_flops = budget.matched.as_ref().map(|m| m.train_flops);
    for export in &trained.exports {
        safetensors::write(
            &ctx.out_dir.join(file_of(export.role)),
            &export.tensors,
            &export.metadata,
        )?;
        write_transformers_checkpoint(export, index, tokenizer, &ctx.out_dir)?;
    }
    // Snapshots were written in the exported layout as training reached them.
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

    let steps = settings.schedule.total;
    let parameters: usize = trained.exports[0]
        .tensors
        .values()
        .map(|t| t.values.len())
        .sum();
    let snapshots = settings
        .snapshot_steps
        .iter()
        .map(|&step| {
            let file = format!("{SNAPSHOTS_DIR}/{}", snapshot_file(step));
            Ok(SnapshotRecord {
                step,
                fraction: step as f64 / steps as f64,
                digest: crate::digest::file_digest(&ctx.out_dir.join(&file))?,
                file,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let train_flops = settings.flops.after(steps);
    let flops_per_step = settings.flops.mean_per_step(steps);
    let generator = settings
        .objective
        .generator()
        .and_then(|g| g.shape.network());
    let summary = PretrainSummary {
        format: PRETRAIN_SUMMARY_FORMAT.to_owned(),
        objective: params.objective,
        recipe: params.recipe(),
        encoder: settings.encoder,
        generator_kind: params.generator,
        generator,
        special: index.special,
        max_seq_len: index.max_seq_len,
        unigram_entropy: *unigram_entropy,
        steps,
        batch_size: params.batch_size,
        micro_batch: params.micro_batch,
        devices: params.devices,
        match_compute: MatchedCompute {
            stage: budget.matched.as_ref().map(|m| m.stage.clone()),
            train_flops: matched_flops,
            recipe: budget.matched.as_ref().map(|m| m.recipe.clone()),
        },
        lr: params.lr,
        warmup_steps: settings.schedule.warmup,
        lr_decay: settings.schedule.decay,
        mask_prob: params.mask_prob,
        replacement: params.replacement,
        lambda: params.lambda,
        temperature: params.temperature,
        generator_weight: params.generator_weight,
        weight_sharing: params.weight_sharing,
        training: params.training,
        generator_share: (params.training == Training::TwoStage).then_some(params.generator_share),
        weight_decay: params.weight_decay,
        adam_beta2: params.adam_beta2,
        clip_norm: params.clip_norm,
        seed: params.seed,
        flops_per_step,
        train_flops,
        parameters,
        snapshots,
        model_digest: crate::digest::file_digest(&ctx.out_dir.join(MODEL_FILE))?,
        backend: params.backend.clone(),
        hardware: crate::backend::hardware(&params.backend, ctx.cpus),
        train_seconds: train_seconds(&ctx.out_dir.join(METRICS_FILE))?,
    };
    summary.write(&ctx.out_dir.join(CONFIG_FILE))?;
    let last = &trained.last;
    Ok(Metrics::from([
        ("steps".to_owned(), json!(steps)),
        ("matched_train_flops".to_owned(), json!(matched_flops)),
        ("resumed_from".to_owned(), json!(trained.resumed_from)),
        ("parameters".to_owned(), json!(parameters)),
        ("train_flops".to_owned(), json!(train_flops)),
        ("flops_per_step".to_owned(), json!(flops_per_step)),
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
    Ok(read_steps(metrics)?.iter().map(|s| s.seconds).sum())
}
