//! The fine-tuned model as a Hugging Face transformers `ElectraForSequenceClassification`
//! checkpoint (`hf/`), written when the head is transformers' own (`head: dense_gelu` on
//! `[CLS]`) and the encoder is post-LN: the only combination that class computes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::FinetuneParams;
use crate::error::{DataError, Result};
use crate::glue::Task;
use crate::model::config::EncoderConfig;
use crate::model::safetensors::NamedTensor;
use crate::model::transformers_export::{self, Checkpoint, WrittenCheckpoint};
use crate::model::weights::TransformersModel;
use crate::tokenizer::BertTokenizer;

/// The fine-tuned model as a transformers checkpoint directory.
pub const TRANSFORMERS_DIR: &str = "hf";

/// Whether the stage writes [`TRANSFORMERS_DIR`]: with transformers' head (the encoder's
/// LayerNorm placement is checked by `parse` for a random-init encoder and by
/// [`tokenizer_for_export`] for a pretrained one, both before training).
pub fn planned(params: &FinetuneParams) -> bool {
    params.head_shape().is_transformers()
}

/// Why `head: dense_gelu` cannot go with an encoder that has no transformers class.
pub fn no_class(reason: &str) -> String {
    format!("dense_gelu writes the fine-tuned model as transformers' ElectraForSequenceClassification, but {reason}: expected a post-LN encoder, or `head: pooler` or `linear` (which do not export)")
}

/// For a stage that exports: the tokenizer the task's features in `features` were made with,
/// after checking that the encoder of shape `encoder` has a transformers class. `None` when
/// the stage does not export.
pub fn tokenizer_for_export(
    params: &FinetuneParams,
    encoder: &EncoderConfig,
    features: &Path,
) -> Result<Option<PathBuf>> {
    if !planned(params) {
        return Ok(None);
    }
    if let Some(reason) = transformers_export::unsupported(encoder) {
        return Err(DataError::Config(format!("head: {}", no_class(reason))));
    }
    crate::tokenizer::copied_into(features, "a glue_task stage, beside task.json,").map(Some)
}

/// `config.json`'s task fields: the labels (GLUE's label strings) and the problem type.
fn task_config(task: &Task, head_dropout: f64) -> Map<String, Value> {
    let labels: Vec<&str> = task.labels.map_or_else(|| vec!["score"], <[&str]>::to_vec);
    let id2label: Map<String, Value> = labels
        .iter()
        .enumerate()
        .map(|(id, label)| (id.to_string(), json!(label)))
        .collect();
    let label2id: Map<String, Value> = labels
        .iter()
        .enumerate()
        .map(|(id, label)| ((*label).to_owned(), json!(id)))
        .collect();
    let problem_type = if task.labels.is_some() {
        "single_label_classification"
    } else {
        "regression"
    };
    Map::from_iter([
        ("num_labels".to_owned(), json!(labels.len())),
        ("id2label".to_owned(), Value::Object(id2label)),
        ("label2id".to_owned(), Value::Object(label2id)),
        ("problem_type".to_owned(), json!(problem_type)),
        ("classifier_dropout".to_owned(), json!(head_dropout)),
        ("finetuning_task".to_owned(), json!(task.name)),
    ])
}

/// What [`write`] needs: the fine-tuned classifier and how it was trained.
pub struct FineTunedClassifier<'a> {
    /// Its tensors (`embeddings.*`, `encoder.*`, `head.*`).
    pub tensors: &'a BTreeMap<String, NamedTensor>,
    /// Its encoder's shape.
    pub encoder: EncoderConfig,
    /// The task it was fine-tuned on.
    pub task: &'static Task,
    /// The encoder's and the head's dropout during fine-tuning.
    pub dropout: (f64, f64),
}

/// Writes `classifier` into `dir` as `ElectraForSequenceClassification`, with `tokenizer`.
pub fn write(
    dir: &Path,
    classifier: &FineTunedClassifier<'_>,
    tokenizer: &Path,
) -> Result<WrittenCheckpoint> {
    let (dropout, head_dropout) = classifier.dropout;
    let config = EncoderConfig {
        dropout,
        ..classifier.encoder
    };
    let checkpoint = Checkpoint {
        tensors: classifier.tensors,
        config: &config,
        model: TransformersModel::SEQUENCE_CLASSIFICATION,
        pad_token_id: BertTokenizer::load(tokenizer)?.special().pad,
        extra_config: task_config(classifier.task, head_dropout),
    };
    let written = transformers_export::write_checkpoint(dir, &checkpoint, tokenizer)?;
    if !written.left_out.is_empty() {
        return Err(DataError::Config(format!(
            "the fine-tuned model's tensors {:?} have no place in {}",
            written.left_out, written.class
        )));
    }
    Ok(written)
}
