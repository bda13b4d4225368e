//! Reading what the report summarises: each pretrained model's `config.json` and
//! `metrics.jsonl`, and every fine-tuning `metrics.json`, matched to the checkpoint it started
//! from by the encoder file's digest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{DataError, Result};
use crate::pretrain::config::{EncoderConfig, Preset};

/// One snapshot of a pretraining run, as its `config.json` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Snapshot {
    /// Steps done.
    pub step: u64,
    /// Of the run's steps.
    pub fraction: f64,
    /// BLAKE3 of the snapshot file.
    pub digest: String,
}

/// The part of a pretraining stage's `config.json` the report uses.
#[derive(Debug, Clone, Deserialize)]
pub struct PretrainSummary {
    /// `electra` or `bert`.
    pub objective: String,
    /// The exported model's shape.
    pub encoder: EncoderConfig,
    /// Parameters of the exported model.
    pub parameters: usize,
    /// Training steps.
    pub steps: u64,
    /// Examples per step.
    pub batch_size: usize,
    /// Train FLOPs of one step.
    pub flops_per_step: f64,
    /// Train FLOPs in total.
    pub train_flops: f64,
    /// Wall time of the training steps.
    pub train_seconds: f64,
    /// What trained it.
    pub hardware: String,
    /// BLAKE3 of `model.safetensors`.
    pub model_digest: String,
    /// The kept snapshots.
    pub snapshots: Vec<Snapshot>,
}

/// One line of a pretraining `metrics.jsonl`.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct CurvePoint {
    /// Steps done.
    pub step: u64,
    /// Masked-LM loss (the generator's for ELECTRA).
    pub mlm_loss: f64,
    /// The discriminator's BCE (ELECTRA; 0 for BERT).
    #[serde(default)]
    pub bce_loss: f64,
    /// Cumulative train FLOPs.
    pub train_flops: f64,
}

/// A pretrained model: its label in the report, summary and loss curve.
#[derive(Debug, Clone)]
pub struct Model {
    /// The row label (the key under `models`).
    pub name: String,
    /// Its `config.json`.
    pub summary: PretrainSummary,
    /// Its `metrics.jsonl`.
    pub curve: Vec<CurvePoint>,
    /// Where the config came from (for errors and the provenance list).
    pub config_path: PathBuf,
}

/// The encoder a fine-tuning run started from, as its `metrics.json` records it.
#[derive(Debug, Clone, Deserialize)]
pub struct EncoderOrigin {
    /// Random initialisation.
    pub from_scratch: bool,
    /// BLAKE3 of the encoder file (pretrained only).
    pub digest: Option<String>,
    /// The encoder's shape.
    pub config: Option<EncoderConfig>,
}

/// The part of a fine-tuning `metrics.json` the report uses.
#[derive(Debug, Clone, Deserialize)]
pub struct FinetuneResult {
    /// GLUE task.
    pub task: String,
    /// The paper's metric for it.
    pub metric: String,
    /// Its value on the scored dev split (0–1).
    pub score: f64,
    /// Fine-tuning seed.
    pub seed: u64,
    /// Training examples used.
    pub train_examples: usize,
    /// Available in the task's train split.
    pub train_examples_available: usize,
    /// Passes over them.
    pub epochs: u64,
    /// Where it started.
    pub encoder: EncoderOrigin,
}

/// Which weights a fine-tuning result started from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// Model `index` of the report's `models`, at `step` (`None`: its final weights).
    Pretrained {
        /// Index into the models.
        model: usize,
        /// A snapshot's step, or `None` for the final weights.
        step: Option<u64>,
    },
    /// Random initialisation of this size label.
    Scratch(String),
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    crate::json_file::read(path, what)
}

/// Reads a pretrained model's config and curve.
pub fn read_model(name: &str, config: &Path, metrics: &Path) -> Result<Model> {
    let summary: PretrainSummary = read_json(config, "a pretrain stage's config.json")?;
    let mut reader = crate::textfile::LineReader::open(metrics)?;
    let mut curve = Vec::new();
    while let Some(line) = reader.next_line() {
        let (number, text) = line?;
        curve.push(serde_json::from_str(text).map_err(|e| {
            DataError::malformed(metrics, number, format!("expected a metrics line: {e}"))
        })?);
    }
    Ok(Model {
        name: name.to_owned(),
        summary,
        curve,
        config_path: config.to_owned(),
    })
}

/// Reads a fine-tuning `metrics.json`.
pub fn read_result(path: &Path) -> Result<FinetuneResult> {
    read_json(path, "a finetune stage's metrics.json")
}

/// A size label: the preset's name when the shape is one, else `L·H·E`.
pub fn size_label(config: &EncoderConfig) -> String {
    for preset in [Preset::Tiny, Preset::Mini, Preset::Small, Preset::Base] {
        let shape = preset.encoder(config.vocab_size);
        if (
            shape.layers,
            shape.hidden,
            shape.heads,
            shape.intermediate,
            shape.embedding,
        ) == (
            config.layers,
            config.hidden,
            config.heads,
            config.intermediate,
            config.embedding,
        ) {
            return format!("{preset:?}").to_lowercase();
        }
    }
    format!(
        "L{} H{} E{}",
        config.layers, config.hidden, config.embedding
    )
}

/// Groups fine-tuning results by the weights they started from; a pretrained encoder that is
/// none of `models`' final weights or snapshots is an error naming the result.
pub fn group(
    models: &[Model],
    results: Vec<(PathBuf, FinetuneResult)>,
) -> Result<BTreeMap<Origin, Vec<FinetuneResult>>> {
    let mut by_digest = BTreeMap::new();
    for (index, model) in models.iter().enumerate() {
        by_digest.insert(
            model.summary.model_digest.clone(),
            Origin::Pretrained {
                model: index,
                step: None,
            },
        );
        for snapshot in &model.summary.snapshots {
            // The last snapshot is the final model; keep the final label for it.
            by_digest
                .entry(snapshot.digest.clone())
                .or_insert(Origin::Pretrained {
                    model: index,
                    step: Some(snapshot.step),
                });
        }
    }
    let mut groups: BTreeMap<Origin, Vec<FinetuneResult>> = BTreeMap::new();
    for (path, result) in results {
        let origin = if result.encoder.from_scratch {
            Origin::Scratch(
                result
                    .encoder
                    .config
                    .as_ref()
                    .map_or_else(|| "unknown size".to_owned(), size_label),
            )
        } else {
            let digest = result.encoder.digest.clone().unwrap_or_default();
            by_digest.get(&digest).cloned().ok_or_else(|| {
                DataError::invalid(
                    &path,
                    format!(
                        "this result fine-tuned an encoder (digest {digest}) that is none of the report's models or their snapshots: expected its pretraining stage under `models`"
                    ),
                )
            })?
        };
        groups.entry(origin).or_default().push(result);
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(digest: &str, snapshot: &str) -> Model {
        Model {
            name: "ELECTRA".to_owned(),
            summary: PretrainSummary {
                objective: "electra".to_owned(),
                encoder: Preset::Tiny.encoder(100),
                parameters: 1,
                steps: 10,
                batch_size: 2,
                flops_per_step: 1.0,
                train_flops: 10.0,
                train_seconds: 1.0,
                hardware: "cpu".to_owned(),
                model_digest: digest.to_owned(),
                snapshots: vec![
                    Snapshot {
                        step: 5,
                        fraction: 0.5,
                        digest: snapshot.to_owned(),
                    },
                    Snapshot {
                        step: 10,
                        fraction: 1.0,
                        digest: digest.to_owned(),
                    },
                ],
            },
            curve: Vec::new(),
            config_path: PathBuf::from("config.json"),
        }
    }

    fn result(digest: Option<&str>, from_scratch: bool) -> (PathBuf, FinetuneResult) {
        let result = FinetuneResult {
            task: "rte".to_owned(),
            metric: "accuracy".to_owned(),
            score: 0.5,
            seed: 1,
            train_examples: 10,
            train_examples_available: 10,
            epochs: 1,
            encoder: EncoderOrigin {
                from_scratch,
                digest: digest.map(str::to_owned),
                config: Some(Preset::Tiny.encoder(100)),
            },
        };
        (PathBuf::from("ft/metrics.json"), result)
    }

    #[test]
    fn results_join_their_checkpoint_by_digest() {
        let models = [model("final", "half")];
        let groups = group(
            &models,
            vec![
                result(Some("final"), false),
                result(Some("half"), false),
                result(None, true),
            ],
        )
        .unwrap();
        let origins: Vec<&Origin> = groups.keys().collect();
        assert_eq!(
            origins,
            [
                &Origin::Pretrained {
                    model: 0,
                    step: None
                },
                &Origin::Pretrained {
                    model: 0,
                    step: Some(5)
                },
                &Origin::Scratch("tiny".to_owned()),
            ]
        );
    }

    #[test]
    fn a_result_from_an_unknown_encoder_names_its_file() {
        let err = group(
            &[model("final", "half")],
            vec![result(Some("other"), false)],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("ft/metrics.json") && err.contains("digest other"),
            "{err}"
        );
    }
}
