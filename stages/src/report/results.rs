//! Reading what the report summarises: each pretrained model's `config.json` and
//! `metrics.jsonl`, and every fine-tuning `metrics.json`, matched to the checkpoint it started
//! from by the encoder file's digest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::model::config::{EncoderConfig, Preset};
use crate::records::finetune::FinetuneSummary;
use crate::records::pretrain::{read_steps, PretrainSummary, StepRecord};

/// A pretrained model: its label in the report, summary and loss curve.
#[derive(Debug, Clone)]
pub struct Model {
    /// The row label (the key under `models`).
    pub name: String,
    /// Its `config.json`.
    pub summary: PretrainSummary,
    /// Its `metrics.jsonl`.
    pub curve: Vec<StepRecord>,
    /// Where the config came from (for errors and the provenance list).
    pub config_path: PathBuf,
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

/// Reads a pretrained model's config and curve.
pub fn read_model(name: &str, config: &Path, metrics: &Path) -> Result<Model> {
    Ok(Model {
        name: name.to_owned(),
        summary: PretrainSummary::read(config)?,
        curve: read_steps(metrics)?,
        config_path: config.to_owned(),
    })
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
    results: Vec<(PathBuf, FinetuneSummary)>,
) -> Result<BTreeMap<Origin, Vec<FinetuneSummary>>> {
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
    let mut groups: BTreeMap<Origin, Vec<FinetuneSummary>> = BTreeMap::new();
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

    use crate::pretrain::masking::Replacement;
    use crate::records::finetune::test_summary;
    use crate::records::pretrain::{
        MatchedCompute, ObjectiveName, SnapshotRecord, PRETRAIN_SUMMARY_FORMAT,
    };
    use crate::tokenizer::SpecialIds;

    fn snapshot(step: u64, fraction: f64, digest: &str) -> SnapshotRecord {
        SnapshotRecord {
            step,
            fraction,
            file: format!("snapshots/{step}"),
            digest: digest.to_owned(),
        }
    }

    fn model(digest: &str, snapshot_digest: &str) -> Model {
        Model {
            name: "ELECTRA".to_owned(),
            summary: PretrainSummary {
                format: PRETRAIN_SUMMARY_FORMAT.to_owned(),
                objective: ObjectiveName::Electra,
                encoder: Preset::Tiny.encoder(100),
                generator: Some(Preset::Tiny.encoder(100).generator(0.25)),
                special: SpecialIds::LEADING,
                max_seq_len: 64,
                unigram_entropy: 7.0,
                steps: 10,
                batch_size: 2,
                match_compute: MatchedCompute {
                    stage: None,
                    train_flops: None,
                },
                lr: 5e-4,
                warmup_steps: 1,
                lr_decay: Default::default(),
                mask_prob: 0.15,
                replacement: Replacement::Electra,
                lambda: 50.0,
                weight_decay: 0.01,
                adam_beta2: 0.999,
                clip_norm: 1.0,
                seed: 0,
                flops_per_step: 1.0,
                train_flops: 10.0,
                parameters: 1,
                snapshots: vec![snapshot(5, 0.5, snapshot_digest), snapshot(10, 1.0, digest)],
                model_digest: digest.to_owned(),
                backend: "flex".to_owned(),
                hardware: "cpu".to_owned(),
                train_seconds: 1.0,
            },
            curve: Vec::new(),
            config_path: PathBuf::from("config.json"),
        }
    }

    fn result(digest: Option<&str>, from_scratch: bool) -> (PathBuf, FinetuneSummary) {
        let digest = digest.filter(|_| !from_scratch);
        let result = test_summary("rte", 1, &[0, 1], &[0, 0], digest);
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
