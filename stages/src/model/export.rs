//! The format of exported encoders (`model.safetensors`, `generator.safetensors`, snapshots):
//! safetensors with tensors `embeddings.*`, `encoder.*` and `head.*` (the pretraining head),
//! and metadata that makes the file self-describing: `format`, `objective`, `encoder` (the
//! [`EncoderConfig`] as JSON) and, for snapshots, `step` and `total_steps`. A fine-tuning
//! stage needs nothing but this file.

use std::collections::BTreeMap;
use std::path::Path;

use super::config::EncoderConfig;
use super::safetensors::{self, NamedTensor};
use crate::error::{DataError, Result};

/// The `format` metadata of exported weights.
pub const ENCODER_FORMAT: &str = "electra-pipe encoder v1";

/// An exported encoder read back.
#[derive(Debug, Clone)]
pub struct ExportedEncoder {
    /// Tensors by name (`embeddings.word`, `encoder.blocks.0.attention.query.weight`, ...).
    pub tensors: BTreeMap<String, NamedTensor>,
    /// The encoder's shape.
    pub config: EncoderConfig,
    /// `electra` or `bert`.
    pub objective: String,
    /// Pretraining steps taken, for snapshots.
    pub step: Option<u64>,
}

/// The metadata written with an exported encoder.
pub fn metadata(
    config: &EncoderConfig,
    objective: &str,
    snapshot: Option<Snapshot>,
) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::from([
        ("format".to_owned(), ENCODER_FORMAT.to_owned()),
        ("objective".to_owned(), objective.to_owned()),
        (
            "encoder".to_owned(),
            serde_json::to_string(config).expect("a config serializes"),
        ),
    ]);
    if let Some(snapshot) = snapshot {
        metadata.insert("step".to_owned(), snapshot.step.to_string());
        metadata.insert("total_steps".to_owned(), snapshot.total_steps.to_string());
    }
    metadata
}

/// The encoder configuration an exported file's `metadata` holds (the key `encoder`).
pub fn encoder_config(metadata: &BTreeMap<String, String>) -> Option<EncoderConfig> {
    metadata
        .get("encoder")
        .and_then(|json| serde_json::from_str(json).ok())
}

/// Where a snapshot was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Steps done.
    pub step: u64,
    /// Steps of the whole run.
    pub total_steps: u64,
}

/// The snapshot file in `dir` (a pretrain stage's `snapshots/`) taken after `fraction` of
/// training; the error lists the fractions there are.
pub fn find_snapshot(dir: &Path, fraction: f64) -> Result<std::path::PathBuf> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(format!("listing {}", dir.display()), e))?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "safetensors") {
            continue;
        }
        let metadata = safetensors::read_metadata(&path)?;
        let number = |key: &str| metadata.get(key).and_then(|v| v.parse::<u64>().ok());
        if let (Some(step), Some(total)) = (number("step"), number("total_steps")) {
            if step == ((fraction * total as f64).round() as u64).clamp(1, total) {
                return Ok(path);
            }
            found.push(format!(
                "{} (step {step} of {total})",
                step as f64 / total as f64
            ));
        }
    }
    found.sort();
    Err(DataError::invalid(
        dir,
        format!(
            "no snapshot after {fraction} of training: expected one of {} (the pretrain stage's `snapshots`)",
            if found.is_empty() { "none".to_owned() } else { found.join(", ") }
        ),
    ))
}

impl ExportedEncoder {
    /// `embeddings` and `encoder` (fresh modules of this encoder's shape) with this encoder's
    /// weights, its `embeddings.*` and `encoder.*` tensors; `source` names the file in errors.
    pub fn load_into<B: burn::tensor::backend::Backend>(
        &self,
        embeddings: super::encoder::Embeddings<B>,
        encoder: super::encoder::Encoder<B>,
        device: &B::Device,
        source: &Path,
    ) -> Result<(super::encoder::Embeddings<B>, super::encoder::Encoder<B>)> {
        use super::weights::{load_named, part, Part};
        let tensors = |of| part(&self.tensors, of);
        Ok((
            load_named(embeddings, &tensors(Part::Embeddings), device, source)?,
            load_named(encoder, &tensors(Part::Encoder), device, source)?,
        ))
    }

    /// Reads an exported encoder; the error names the file and what it lacks.
    pub fn read(path: &Path) -> Result<Self> {
        let (tensors, metadata) = safetensors::read_with_metadata(path)?;
        let bad = |message: String| DataError::invalid(path, message);
        if metadata.get("format").map(String::as_str) != Some(ENCODER_FORMAT) {
            return Err(bad(format!(
                "expected an encoder exported by a pretrain stage (metadata format `{ENCODER_FORMAT}`), found format {:?}",
                metadata.get("format")
            )));
        }
        let config = encoder_config(&metadata).ok_or_else(|| {
            bad("expected the encoder's configuration in the metadata key `encoder`".to_owned())
        })?;
        Ok(ExportedEncoder {
            tensors,
            config,
            objective: metadata.get("objective").cloned().unwrap_or_default(),
            step: metadata.get("step").and_then(|s| s.parse().ok()),
        })
    }
}

/// The encoder file a stage names: `encoder`, or with `snapshot` the snapshot taken after that
/// fraction of training in the `encoder` directory.
pub fn encoder_file(encoder: &str, snapshot: Option<f64>) -> Result<std::path::PathBuf> {
    match snapshot {
        Some(fraction) => find_snapshot(Path::new(encoder), fraction),
        None => Ok(std::path::PathBuf::from(encoder)),
    }
}

/// The encoder in `path` and the file of its weights: a file a pretrain stage exported, or a
/// Hugging Face transformers checkpoint directory (whose unused tensors, heads and pooler, the
/// stage log lists).
pub fn read_encoder(path: &Path) -> Result<(ExportedEncoder, std::path::PathBuf)> {
    if !super::transformers::is_checkpoint(path) {
        return Ok((ExportedEncoder::read(path)?, path.to_owned()));
    }
    let imported = super::transformers::read_checkpoint(path)?;
    tracing::info!(
        checkpoint = %path.display(),
        model = %imported.encoder.objective,
        unused = imported.unused.len(),
        "a transformers checkpoint: its encoder is used"
    );
    for name in &imported.unused {
        tracing::info!(tensor = %name, "not part of the encoder, unused");
    }
    Ok((
        imported.encoder,
        path.join(super::transformers::WEIGHTS_FILE),
    ))
}

/// Checks the params that name a stage's encoder: exactly one of `encoder` (an exported file,
/// a `snapshots` directory with `snapshot`, or a transformers checkpoint) and `from_scratch`
/// (a valid size); `snapshot` only with `encoder`, as a fraction of training in (0, 1].
pub fn check_encoder_params(
    encoder: Option<&str>,
    snapshot: Option<f64>,
    from_scratch: Option<&super::config::ModelParams>,
) -> std::result::Result<(), electra_pipe_api::ParamError> {
    use electra_pipe_api::ParamError;
    match (encoder, from_scratch) {
        (Some(_), Some(_)) => {
            return Err(ParamError::new(
                "from_scratch",
                "both `encoder` and `from_scratch` are set: expected one",
            ))
        }
        (None, None) => {
            return Err(ParamError::new(
                "",
                "expected `encoder` (a pretrain stage's model.safetensors, its snapshots with `snapshot`, or a transformers checkpoint) or `from_scratch: {preset: ...}`",
            ))
        }
        (None, Some(model)) => model
            .encoder(1)
            .validate()
            .map_err(|(field, message)| ParamError::new(format!("from_scratch.{field}"), message))?,
        (Some(_), None) => {}
    }
    if let Some(fraction) = snapshot {
        if encoder.is_none() || !(fraction > 0.0 && fraction <= 1.0) {
            return Err(ParamError::new(
                "snapshot",
                format!("expected a fraction of training in (0, 1] with `encoder: \"@<pretrain stage>/snapshots\"`, found {fraction}"),
            ));
        }
    }
    Ok(())
}
