//! How much device memory a pretraining step takes, to choose a `micro_batch` that fits a
//! device: the training state (weights, their gradients and AdamW's two moments: four f32
//! values per parameter) plus the activations autodiff keeps for the backward pass, which grow
//! with the examples of a micro-batch.
//!
//! Activations are counted in f32 values, per token and per transformer block, as the values
//! the backward pass of burn's composed operations (what every backend but `flex` runs) keeps:
//! the block's input, Q, K and V, the attended context, the output projection and its dropout,
//! the two LayerNorms' intermediate values, the FFN's values around GELU and its output's
//! dropout ([`BLOCK_HIDDEN`] values of width h and [`BLOCK_INTERMEDIATE`] of width i); and,
//! per head and key, the attention scores through the softmax and its dropout
//! ([`ATTENTION_MAPS`] maps of `heads × s` values). Embeddings keep [`EMBEDDING`] values of
//! width e per token (and h after an e → h projection); a masked-LM head keeps its logits and
//! their softmax (2·V) and four values of width e per predicted position; the
//! replaced-token-detection head three of width h per token. The coefficients were fitted to
//! the heap a real step takes on CPU with the composed operations (the `ndarray` backend),
//! where the estimate is within 10% above the measurement for `tiny` and `mini` at 64 and 128
//! tokens, BERT and ELECTRA (`stages/tests/memory.rs`); `flex`'s fused kernels keep less
//! (65–80% of it). It does not count the backend's workspace and caches (cubecl's memory
//! pools), so leave room on a GPU: the paper pipelines fill at most ¾ of a device.

use super::generator::GeneratorShape;
use super::params::PretrainParams;
use super::train::Objective;
use crate::model::config::EncoderConfig;

/// Values of width h a transformer block keeps per token.
const BLOCK_HIDDEN: f64 = 12.0;
/// Values of width i (the FFN's) a transformer block keeps per token.
const BLOCK_INTERMEDIATE: f64 = 3.0;
/// Attention maps (`heads × s` values per token) a transformer block keeps.
const ATTENTION_MAPS: f64 = 3.5;
/// Values of width e the embeddings keep per token.
const EMBEDDING: f64 = 5.0;
/// Bytes of one f32 value.
const F32: f64 = 4.0;
/// Weights, gradients and two AdamW moments per parameter.
const STATE_VALUES: f64 = 4.0;

/// The memory a pretraining step takes on one device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryEstimate {
    /// Weights, gradients and optimiser moments, in bytes.
    pub state_bytes: f64,
    /// Activations per example of the sequence length, in bytes.
    pub activation_bytes_per_example: f64,
}

impl MemoryEstimate {
    /// The whole step with micro-batches of `micro_batch` examples, in bytes.
    pub fn bytes(&self, micro_batch: usize) -> f64 {
        self.state_bytes + self.activation_bytes_per_example * micro_batch as f64
    }

    /// The largest micro-batch (at least 1) whose step fits in `device_bytes`.
    pub fn largest_micro_batch(&self, device_bytes: f64) -> usize {
        let room = (device_bytes - self.state_bytes).max(0.0);
        ((room / self.activation_bytes_per_example) as usize).max(1)
    }
}

/// The estimate for a `pretrain` stage with `params` over sequences of `seq_len` tokens from a
/// vocabulary of `vocab_size`.
pub fn estimate(params: &PretrainParams, vocab_size: usize, seq_len: usize) -> MemoryEstimate {
    let encoder = params.encoder(vocab_size);
    let objective = params.objective(&encoder, 1);
    let s = seq_len as f64;
    let predicted = (params.mask_prob * s).round();
    let generator = objective.generator().and_then(|g| match g.shape {
        GeneratorShape::MaskedLm(config) => Some(config),
        GeneratorShape::Unigram => None,
    });
    // The generator reads the masked input through its own pass of the embeddings.
    let generator_values = generator.map_or(0.0, |g| {
        encoder_values(&g, s) + masked_lm_head_values(&g, predicted)
    });
    let (values, parameters) = match objective {
        Objective::Electra { .. } => (
            encoder_values(&encoder, s) + 3.0 * encoder.hidden as f64 * s + generator_values,
            encoder_parameters(&encoder)
                + binary_head_parameters(&encoder)
                + generator.map_or(0.0, |g| body_parameters(&g) + masked_lm_head_parameters(&g)),
        ),
        Objective::Bert => (
            encoder_values(&encoder, s) + masked_lm_head_values(&encoder, predicted),
            encoder_parameters(&encoder) + masked_lm_head_parameters(&encoder),
        ),
        Objective::ReplaceMlm { all_tokens, .. } => {
            let positions = if all_tokens { s } else { predicted };
            (
                encoder_values(&encoder, s)
                    + masked_lm_head_values(&encoder, positions)
                    + generator_values,
                encoder_parameters(&encoder)
                    + masked_lm_head_parameters(&encoder)
                    + generator
                        .map_or(0.0, |g| body_parameters(&g) + masked_lm_head_parameters(&g)),
            )
        }
    };
    MemoryEstimate {
        state_bytes: STATE_VALUES * F32 * parameters,
        activation_bytes_per_example: F32 * values,
    }
}

/// Activation values per example of `s` tokens through `config`'s embeddings and blocks.
fn encoder_values(config: &EncoderConfig, s: f64) -> f64 {
    let (e, h) = (config.embedding as f64, config.hidden as f64);
    let projection = if config.embedding != config.hidden {
        h
    } else {
        0.0
    };
    let block = BLOCK_HIDDEN * h
        + BLOCK_INTERMEDIATE * config.intermediate as f64
        + ATTENTION_MAPS * config.heads as f64 * s;
    s * (EMBEDDING * e + projection + config.layers as f64 * block)
}

/// Activation values of a masked-LM head over `positions` predicted positions.
fn masked_lm_head_values(config: &EncoderConfig, positions: f64) -> f64 {
    positions * (2.0 * config.vocab_size as f64 + 4.0 * config.embedding as f64)
}

/// Parameters of `config`'s embeddings and blocks.
fn encoder_parameters(config: &EncoderConfig) -> f64 {
    let e = config.embedding as f64;
    let embeddings =
        (config.vocab_size + config.max_positions + config.segments) as f64 * e + 2.0 * e;
    embeddings + body_parameters(config)
}

/// Parameters of `config`'s blocks (and projection), without the embeddings.
fn body_parameters(config: &EncoderConfig) -> f64 {
    let (e, h, i) = (
        config.embedding as f64,
        config.hidden as f64,
        config.intermediate as f64,
    );
    let projection = if config.embedding != config.hidden {
        e * h + h
    } else {
        0.0
    };
    let block = 4.0 * (h * h + h) + 2.0 * h * i + i + h + 4.0 * h;
    projection + config.layers as f64 * block
}

/// Parameters of a masked-LM head (dense h → e, LayerNorm, output bias; tied output weights).
fn masked_lm_head_parameters(config: &EncoderConfig) -> f64 {
    let (e, h) = (config.embedding as f64, config.hidden as f64);
    h * e + e + 2.0 * e + config.vocab_size as f64
}

/// Parameters of the replaced-token-detection head (dense h → h, h → 1).
fn binary_head_parameters(config: &EncoderConfig) -> f64 {
    let h = config.hidden as f64;
    h * h + h + h + 1.0
}
