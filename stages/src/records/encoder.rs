//! Which encoder a result came from, as fine-tuning and probe results record it: what a
//! report matches to a pretraining run's weights by digest.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::config::EncoderConfig;
use crate::model::export::ExportedEncoder;

/// The encoder a result started from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderOrigin {
    /// Random initialisation (the baseline).
    pub from_scratch: bool,
    /// The pretraining objective (pretrained only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<String>,
    /// The snapshot's pretraining step (pretrained snapshots only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrain_step: Option<u64>,
    /// BLAKE3 of the encoder file (pretrained only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The encoder's shape.
    pub config: Option<EncoderConfig>,
}

impl EncoderOrigin {
    /// The exported encoder read from `path`.
    pub fn pretrained(exported: &ExportedEncoder, path: &Path) -> Result<Self> {
        Ok(EncoderOrigin {
            from_scratch: false,
            objective: Some(exported.objective.clone()),
            pretrain_step: exported.step,
            digest: Some(crate::digest::file_digest(path)?),
            config: Some(exported.config),
        })
    }

    /// A random initialisation of `config`'s shape.
    pub fn scratch(config: EncoderConfig) -> Self {
        EncoderOrigin {
            from_scratch: true,
            objective: None,
            pretrain_step: None,
            digest: None,
            config: Some(config),
        }
    }
}
