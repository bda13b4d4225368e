//! Hugging Face transformers checkpoints as encoders to fine-tune: a directory with
//! `config.json` and `model.safetensors`, of model type `electra` (a discriminator, a
//! generator or a bare `ElectraModel`) or `bert`. Its encoder body is renamed to electra-pipe's
//! names by the one table in [`super::weights`]; heads and pooler are left out and listed.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::config::{EncoderConfig, Norm};
use super::export::ExportedEncoder;
use super::layers::LAYER_NORM_EPS;
use super::safetensors::{self, NamedTensor};
use super::weights::{body_from_transformers, from_transformers, TransformersModel};
use crate::error::{DataError, Result};

/// The checkpoint's `config.json`.
pub const CONFIG_FILE: &str = "config.json";
/// Its weights.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// Whether `path` is a transformers checkpoint directory (it holds a `config.json`).
pub fn is_checkpoint(path: &Path) -> bool {
    path.is_dir() && path.join(CONFIG_FILE).is_file()
}

/// A transformers checkpoint read as an encoder, and the checkpoint's tensors it did not use.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The encoder, under electra-pipe's names.
    pub encoder: ExportedEncoder,
    /// The checkpoint's tensors that are not part of the encoder (heads, pooler, buffers).
    pub unused: Vec<String>,
}

/// The encoder shape `config.json` describes; the error names the field.
fn encoder_config(config: &Value, path: &Path) -> Result<(EncoderConfig, String)> {
    let bad = |message: String| DataError::invalid(path, message);
    let model_type = config["model_type"].as_str().unwrap_or_default().to_owned();
    if model_type != "electra" && model_type != "bert" {
        return Err(bad(format!(
            "model_type: expected `electra` or `bert` (the encoders electra-pipe fine-tunes), found {:?}",
            config["model_type"]
        )));
    }
    let size = |field: &str| -> Result<usize> {
        config[field].as_u64().map(|v| v as usize).ok_or_else(|| {
            bad(format!(
                "{field}: expected a positive integer, found {}",
                config[field]
            ))
        })
    };
    let hidden = size("hidden_size")?;
    let embedding = match config.get("embedding_size") {
        Some(Value::Null) | None => hidden,
        Some(_) => size("embedding_size")?,
    };
    let act = config["hidden_act"].as_str().unwrap_or("gelu");
    if act != "gelu" {
        return Err(bad(format!(
            "hidden_act: expected `gelu` (the exact GELU electra-pipe's blocks use), found `{act}`"
        )));
    }
    let eps = config["layer_norm_eps"].as_f64().unwrap_or(LAYER_NORM_EPS);
    if (eps - LAYER_NORM_EPS).abs() > 1e-15 {
        return Err(bad(format!(
            "layer_norm_eps: expected {LAYER_NORM_EPS} (ELECTRA's and BERT's, which electra-pipe's LayerNorm uses), found {eps}"
        )));
    }
    let encoder = EncoderConfig {
        vocab_size: size("vocab_size")?,
        embedding,
        hidden,
        layers: size("num_hidden_layers")?,
        heads: size("num_attention_heads")?,
        intermediate: size("intermediate_size")?,
        max_positions: size("max_position_embeddings")?,
        segments: size("type_vocab_size")?,
        dropout: config["hidden_dropout_prob"].as_f64().unwrap_or(0.1),
        norm: Norm::Post,
    };
    encoder
        .validate()
        .map_err(|(field, message)| bad(format!("{field}: {message}")))?;
    Ok((encoder, model_type))
}

/// The expected shape of each imported tensor, from the config.
fn expected_shape(name: &str, config: &EncoderConfig) -> Option<Vec<usize>> {
    let (e, h, i) = (config.embedding, config.hidden, config.intermediate);
    let block = name.strip_prefix("encoder.blocks.").map(|rest| {
        rest.split_once('.')
            .map_or(rest.to_owned(), |(_, r)| r.to_owned())
    });
    Some(match (name, block.as_deref()) {
        ("embeddings.word", _) => vec![config.vocab_size, e],
        ("embeddings.position", _) => vec![config.max_positions, e],
        ("embeddings.segment", _) => vec![config.segments, e],
        ("embeddings.norm.gamma" | "embeddings.norm.beta", _) => vec![e],
        ("encoder.projection.weight", _) => vec![e, h],
        ("encoder.projection.bias", _) => vec![h],
        (_, Some("intermediate.weight")) => vec![h, i],
        (_, Some("intermediate.bias")) => vec![i],
        (_, Some("output.weight")) => vec![i, h],
        (_, Some(rest)) if rest.ends_with(".weight") => vec![h, h],
        (_, Some(_)) => vec![h],
        _ => return None,
    })
}

/// `dir`'s `config.json`, and the encoder shape and model type it describes.
fn read_config(dir: &Path) -> Result<(Value, EncoderConfig, String)> {
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| DataError::io(format!("reading {}", config_path.display()), e))?;
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| DataError::invalid(&config_path, format!("expected JSON: {e}")))?;
    let (config, model_type) = encoder_config(&json, &config_path)?;
    Ok((json, config, model_type))
}

/// Reads a whole `ElectraForPreTraining` (a discriminator), `ElectraForMaskedLM` (a
/// generator, or BERT) or `ElectraForSequenceClassification` (a fine-tuned classifier)
/// checkpoint, head included, under electra-pipe's exported names: the network a pretrain or
/// finetune stage exports. Every tensor must have a place; the error names the one
/// that has none.
pub fn read_network(dir: &Path) -> Result<ExportedEncoder> {
    let (json, config, _) = read_config(dir)?;
    let class = json["architectures"][0].as_str().unwrap_or_default();
    let models = [
        TransformersModel::PRE_TRAINING,
        TransformersModel::MASKED_LM,
        TransformersModel::SEQUENCE_CLASSIFICATION,
    ];
    let model = models
        .into_iter()
        .find(|model| model.class == class)
        .ok_or_else(|| {
            DataError::invalid(
                &dir.join(CONFIG_FILE),
                format!(
                    "architectures: expected one of {:?}, found {:?}",
                    models.map(|m| m.class),
                    json["architectures"]
                ),
            )
        })?;
    let weights = dir.join(WEIGHTS_FILE);
    let (tensors, _) = safetensors::read_floats(&weights)?;
    let tensors = from_transformers(&tensors, &model).map_err(|name| {
        DataError::invalid(&weights, format!("unexpected tensor {name} in an {class}"))
    })?;
    check_shapes(&tensors, &config, &weights)?;
    Ok(ExportedEncoder {
        tensors,
        config,
        objective: format!("transformers {class}"),
        step: None,
    })
}

/// Reads the transformers checkpoint in `dir` as an encoder to fine-tune.
pub fn read_checkpoint(dir: &Path) -> Result<Imported> {
    let (json, config, model_type) = read_config(dir)?;
    let weights = dir.join(WEIGHTS_FILE);
    if !weights.is_file() {
        let hint = if dir.join("pytorch_model.bin").is_file() {
            ": the checkpoint has only pytorch_model.bin; convert it with transformers (`AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)`)"
        } else {
            ""
        };
        return Err(DataError::invalid(
            dir,
            format!("expected the weights in {WEIGHTS_FILE}{hint}"),
        ));
    }
    let (tensors, buffers) = safetensors::read_floats(&weights)?;
    let body = [model_type.as_str(), ""]
        .into_iter()
        .find(|body| {
            let prefix = format!("{body}{}embeddings.", if body.is_empty() { "" } else { "." });
            tensors.keys().any(|name| name.starts_with(&prefix))
        })
        .ok_or_else(|| {
            DataError::invalid(
                &weights,
                format!(
                    "no `{model_type}.embeddings.*` (or bare `embeddings.*`) tensors: expected a {model_type} checkpoint"
                ),
            )
        })?;
    let projection = model_type == "electra" && config.embedding != config.hidden;
    let imported = body_from_transformers(&tensors, body, config.layers, projection);
    if !imported.missing.is_empty() {
        return Err(DataError::invalid(
            &weights,
            format!(
                "missing {} tensor(s) of a {}-block {model_type} encoder: {}",
                imported.missing.len(),
                config.layers,
                imported.missing.join(", ")
            ),
        ));
    }
    check_shapes(&imported.tensors, &config, &weights)?;
    let mut unused = imported.unused;
    unused.extend(
        buffers
            .into_iter()
            .map(|(name, dtype)| format!("{name} ({dtype})")),
    );
    let architecture = json["architectures"][0].as_str().unwrap_or(&model_type);
    Ok(Imported {
        encoder: ExportedEncoder {
            tensors: imported.tensors,
            config,
            objective: format!("transformers {architecture}"),
            step: None,
        },
        unused,
    })
}

/// Every imported tensor has the shape `config.json` implies; the error names the tensor.
fn check_shapes(
    tensors: &BTreeMap<String, NamedTensor>,
    config: &EncoderConfig,
    weights: &Path,
) -> Result<()> {
    for (name, tensor) in tensors {
        let Some(expected) = expected_shape(name, config) else {
            continue;
        };
        if tensor.shape != expected {
            return Err(DataError::invalid(
                weights,
                format!(
                    "tensor for {name} has shape {:?}, but config.json implies {expected:?} (vocab_size, embedding_size, hidden_size, intermediate_size, max_position_embeddings, type_vocab_size)",
                    tensor.shape
                ),
            ));
        }
    }
    Ok(())
}
