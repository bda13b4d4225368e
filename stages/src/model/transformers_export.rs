//! electra-pipe's exported networks written as Hugging Face transformers checkpoint
//! directories, which `from_pretrained` loads: `config.json` (an `ElectraConfig`),
//! `model.safetensors` under transformers' names (the one table in [`super::weights`]) and
//! the tokenizer's files ([`crate::tokenizer::write_transformers_tokenizer`]).
//!
//! A pretraining network's class follows its head ([`TransformersModel::for_tensors`]): a
//! replaced-token head exports as `ElectraForPreTraining`, a masked-LM head as
//! `ElectraForMaskedLM`, anything else as a bare `ElectraModel` (head tensors transformers has
//! no place for are left out and listed). A fine-tuned classifier with transformers' head
//! exports as `ElectraForSequenceClassification`, its labels in `config.json`.
//! Pre-LN encoders have no transformers ELECTRA class and are not exported.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use super::config::{EncoderConfig, Norm};
use super::layers::LAYER_NORM_EPS;
use super::safetensors::{self, NamedTensor};
use super::transformers::{CONFIG_FILE, WEIGHTS_FILE};
use super::weights::{to_transformers, TransformersModel};
use crate::error::{DataError, Result};
use crate::json_file;
use crate::tokenizer::write_transformers_tokenizer;

/// What [`write_checkpoint`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenCheckpoint {
    /// The transformers class (`architectures` in `config.json`).
    pub class: &'static str,
    /// electra-pipe's tensors with no place in that class, left out.
    pub left_out: Vec<String>,
}

/// Why `config` has no transformers ELECTRA counterpart, if it has none.
pub fn unsupported(config: &EncoderConfig) -> Option<&'static str> {
    (config.norm == Norm::Pre).then_some(
        "pre-LN blocks (`norm: pre`) have no transformers ELECTRA class, which is post-LN",
    )
}

/// transformers' `ElectraConfig` for an encoder of shape `config`, as class `class`.
pub fn transformers_config(config: &EncoderConfig, class: &str, pad_token_id: u32) -> Value {
    json!({
        "architectures": [class],
        "model_type": "electra",
        "vocab_size": config.vocab_size,
        "embedding_size": config.embedding,
        "hidden_size": config.hidden,
        "num_hidden_layers": config.layers,
        "num_attention_heads": config.heads,
        "intermediate_size": config.intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": config.dropout,
        "attention_probs_dropout_prob": config.dropout,
        "max_position_embeddings": config.max_positions,
        "type_vocab_size": config.segments,
        "initializer_range": 0.02,
        "layer_norm_eps": LAYER_NORM_EPS,
        "tie_word_embeddings": true,
        "position_embedding_type": "absolute",
        "pad_token_id": pad_token_id,
        "summary_type": "first",
        "summary_use_proj": true,
        "summary_activation": "gelu",
        "summary_last_dropout": config.dropout,
        "torch_dtype": "float32",
    })
}

/// A network to write as a transformers checkpoint.
#[derive(Debug, Clone)]
pub struct Checkpoint<'a> {
    /// Its tensors under electra-pipe's exported names.
    pub tensors: &'a BTreeMap<String, NamedTensor>,
    /// Its encoder's shape (and the dropout `config.json` records).
    pub config: &'a EncoderConfig,
    /// The class it is written as; [`TransformersModel::for_tensors`] picks a pretraining
    /// network's.
    pub model: TransformersModel,
    /// The tokenizer's `[PAD]` id.
    pub pad_token_id: u32,
    /// Fields `config.json` gets besides the encoder's (a classifier's labels).
    pub extra_config: Map<String, Value>,
}

/// Writes `checkpoint` into `dir` as a transformers checkpoint, with the tokenizer in
/// `tokenizer_json`. Tensors with no row in its class's table are left out and listed.
pub fn write_checkpoint(
    dir: &Path,
    checkpoint: &Checkpoint<'_>,
    tokenizer_json: &Path,
) -> Result<WrittenCheckpoint> {
    let Checkpoint {
        tensors,
        config,
        model,
        ..
    } = checkpoint;
    if let Some(reason) = unsupported(config) {
        return Err(DataError::Config(format!(
            "cannot write {} as a transformers checkpoint: {reason}",
            dir.display()
        )));
    }
    let (kept, left_out): (BTreeMap<_, _>, BTreeMap<_, _>) = tensors
        .iter()
        .map(|(name, tensor)| (name.clone(), tensor.clone()))
        .partition(|(name, _)| model.maps(name));
    let theirs = to_transformers(&kept, model).map_err(|name| {
        DataError::Config(format!(
            "tensor {name} has no transformers name for {}",
            model.class
        ))
    })?;
    std::fs::create_dir_all(dir)
        .map_err(|e| DataError::io(format!("creating {}", dir.display()), e))?;
    let metadata = BTreeMap::from([("format".to_owned(), "pt".to_owned())]);
    safetensors::write(&dir.join(WEIGHTS_FILE), &theirs, &metadata)?;
    let mut json = transformers_config(config, model.class, checkpoint.pad_token_id);
    if let Value::Object(fields) = &mut json {
        fields.extend(checkpoint.extra_config.clone());
    }
    json_file::write_pretty(&dir.join(CONFIG_FILE), &json)?;
    write_transformers_tokenizer(tokenizer_json, dir, config.max_positions)?;
    Ok(WrittenCheckpoint {
        class: model.class,
        left_out: left_out.into_keys().collect(),
    })
}
