//! The FLOPs of a network, counted exactly as the official ELECTRA code does
//! (`flops_computation.py`), so that compute-matched comparisons mean what the paper's do; and
//! the matrix-product FLOPs a training step actually does, for GFLOP/s. What a pretraining
//! objective adds on top (its networks, train FLOPs over a run, compute matching) is
//! [`crate::pretrain::flops`].
//!
//! - forward FLOPs per example = embeddings + blocks + output head, each per token × `s`;
//! - the input embedding is a dense one-hot product (2·e·V per token), plus segment and
//!   position embeddings, their sum, LayerNorm, dropout, and the e→h projection when e ≠ h;
//! - an MLM head (dense e←h, GELU, LayerNorm, tied output 2·e·V, softmax) is counted on
//!   15.625% of positions; the discriminator's binary head on all of them.
//!
//! Two counts are derived here for knobs the official script does not have, each the same
//! unit cost applied to the extra work: with `mask_prob` other than the paper's 15%, the MLM
//! head's share of positions scales with it (15.625% × mask_prob / 0.15); a pre-LayerNorm
//! encoder adds its final LayerNorm (5·h per token). Knobs that change no work (dropout, the
//! learning rate and its schedule, the optimiser, gradient accumulation) leave the count as it
//! is.

use super::config::{EncoderConfig, Norm};

const DROPOUT_FLOPS: f64 = 4.0;
const LAYER_NORM_FLOPS: f64 = 5.0;
const ACTIVATION_FLOPS: f64 = 8.0;
const SOFTMAX_FLOPS: f64 = 5.0;

/// The share of positions the official count charges an MLM output head for.
pub const MLM_OUTPUT_FRACTION: f64 = 0.15625;

/// The share of positions an MLM head is charged for when `mask_prob` of the tokens are
/// masked: [`MLM_OUTPUT_FRACTION`] at the paper's 15%, in proportion otherwise.
pub fn mlm_output_fraction(mask_prob: f64) -> f64 {
    MLM_OUTPUT_FRACTION * mask_prob / 0.15
}

/// What sits on top of the encoder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Head {
    /// Masked-LM head on this share of positions (BERT, ELECTRA's generator; see
    /// [`mlm_output_fraction`]).
    MaskedLm(f64),
    /// Replaced-token-detection head on every position (ELECTRA's discriminator).
    Binary,
    /// All-Tokens MLM: a masked-LM head on every position, plus its copy gate.
    AllTokensWithCopy,
}

/// The official hyper-parameters of one encoder at one sequence length.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Shape {
    h: f64,
    l: f64,
    s: f64,
    v: f64,
    e: f64,
    i: f64,
    heads: f64,
}

impl Shape {
    fn new(config: &EncoderConfig, seq_len: usize) -> Self {
        Shape {
            h: config.hidden as f64,
            l: config.layers as f64,
            s: seq_len as f64,
            v: config.vocab_size as f64,
            e: config.embedding as f64,
            i: config.intermediate as f64,
            heads: config.heads as f64,
        }
    }

    /// One transformer block, all positions.
    fn block(&self) -> f64 {
        let Shape { h, s, i, heads, .. } = *self;
        let kqv = h;
        let per_token = 3.0 * 2.0 * h * kqv      // query, key, value projections
            + 3.0 * kqv                           // their biases
            + 2.0 * kqv * s                       // attention scores
            + SOFTMAX_FLOPS * s * heads           // softmax
            + DROPOUT_FLOPS * s * heads           // attention dropout
            + s * heads                           // scaling
            + 2.0 * h * s                         // weighted average of values
            + 2.0 * h * h + h                     // attention output projection + bias
            + DROPOUT_FLOPS * h + h               // dropout + residual
            + LAYER_NORM_FLOPS * h                // LayerNorm
            + 2.0 * h * i + ACTIVATION_FLOPS * i + i // FFN in, GELU, bias
            + 2.0 * h * i + h                     // FFN out + bias
            + DROPOUT_FLOPS * h + h               // dropout + residual
            + LAYER_NORM_FLOPS * h; // LayerNorm
        per_token * s
    }

    /// Input embeddings (dense one-hot lookup), all positions.
    fn input_embedding(&self) -> f64 {
        let Shape { h, s, e, v, .. } = *self;
        let mut per_token = 2.0 * e * v            // one-hot × embedding table
            + 2.0 * e * (s + 2.0)                  // segment and position embeddings
            + 2.0 * e                              // adding them
            + LAYER_NORM_FLOPS * e
            + DROPOUT_FLOPS * e;
        if e != h {
            per_token += 2.0 * h * e + h; // projection e → h
        }
        per_token * s
    }

    /// The MLM output head, on `fraction` of positions.
    fn mlm_head(&self, fraction: f64) -> f64 {
        let Shape { h, s, e, v, .. } = *self;
        let per_token = 2.0 * e * v                // tied output embedding
            + 2.0 * h * e + e                      // dense h → e + bias
            + ACTIVATION_FLOPS * e
            + LAYER_NORM_FLOPS * e
            + SOFTMAX_FLOPS * v
            + 2.0 * v; // picking the target word
        fraction * per_token * s
    }

    /// The discriminator's binary head, all positions.
    fn binary_head(&self) -> f64 {
        let h = self.h;
        (2.0 * h * h + h + ACTIVATION_FLOPS * h + 2.0 * h) * self.s
    }

    /// All-Tokens MLM's copy gate, all positions: dense h → 1 with its bias, the sigmoid (one
    /// activation) and the mix `D · copy + (1 − D) · p` (4).
    fn copy_gate(&self) -> f64 {
        (2.0 * self.h + 1.0 + ACTIVATION_FLOPS + 4.0) * self.s
    }
}

/// Forward FLOPs of one example of `seq_len` tokens through `encoder` and `head`.
pub fn forward_flops(encoder: &EncoderConfig, seq_len: usize, head: Head) -> f64 {
    let shape = Shape::new(encoder, seq_len);
    let head_flops = match head {
        Head::MaskedLm(fraction) => shape.mlm_head(fraction),
        Head::Binary => shape.binary_head(),
        Head::AllTokensWithCopy => shape.mlm_head(1.0) + shape.copy_gate(),
    };
    let final_norm = match encoder.norm {
        Norm::Post => 0.0,
        Norm::Pre => LAYER_NORM_FLOPS * shape.h * shape.s,
    };
    shape.input_embedding() + shape.l * shape.block() + final_norm + head_flops
}

/// Matrix-product FLOPs per token of one training step of `encoder` with `head` on sequences
/// of `seq_len`: the work actually done, for the benchmarks' GFLOP/s (the official count above
/// is the one compute matching uses). Two FLOPs per multiply-add of every product: the e → h
/// projection, each block's projections, attention scores, weighted values and FFN, and the
/// head (a masked-LM head on its share of positions only, as electra-pipe computes it); times
/// three for the forward pass and the backward pass's input and weight gradients. No one-hot
/// embeddings and no elementwise work.
pub fn matmul_train_flops_per_token(encoder: &EncoderConfig, seq_len: usize, head: Head) -> f64 {
    let Shape { h, v, e, .. } = Shape::new(encoder, seq_len);
    let mlm = |fraction: f64| fraction * (2.0 * h * e + 2.0 * e * v);
    let head = match head {
        Head::MaskedLm(fraction) => mlm(fraction),
        Head::Binary => 2.0 * h * h + 2.0 * h,
        Head::AllTokensWithCopy => mlm(1.0) + 2.0 * h,
    };
    encoder_matmul_train_flops_per_token(encoder, seq_len) + 3.0 * head
}

/// [`matmul_train_flops_per_token`] of the encoder alone, without a head: what a fine-tuning
/// step does per (padded) position, its classifier working on one position per sequence.
pub fn encoder_matmul_train_flops_per_token(encoder: &EncoderConfig, seq_len: usize) -> f64 {
    let Shape { h, l, s, e, i, .. } = Shape::new(encoder, seq_len);
    let projection = if e != h { 2.0 * e * h } else { 0.0 };
    let block = 2.0 * 4.0 * h * h + 2.0 * 2.0 * h * s + 2.0 * 2.0 * h * i;
    3.0 * (projection + l * block)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::config::Preset;

    /// BERT's uncased vocabulary, the official counts' size.
    pub(crate) const VOCAB: usize = 30522;

    /// Asserts `actual` is within `tolerance` (relative) of `expected`.
    pub(crate) fn within(actual: f64, expected: f64, tolerance: f64) {
        let error = (actual - expected).abs() / expected;
        assert!(
            error < tolerance,
            "{actual:.4e} differs from {expected:.4e} by {:.3}%",
            error * 100.0
        );
    }

    #[test]
    fn the_matrix_product_count_is_three_times_the_forward_products() {
        // BERT-Small at 128 tokens by hand: e 128 → h 256, 12 blocks of h 256, FFN 1024,
        // a masked-LM head on 15.625% of the positions.
        let small = Preset::Small.encoder(VOCAB);
        let block = 8.0 * 256.0 * 256.0 + 4.0 * 256.0 * 128.0 + 4.0 * 256.0 * 1024.0;
        let head = 0.15625 * (2.0 * 256.0 * 128.0 + 2.0 * 128.0 * VOCAB as f64);
        let expected = 3.0 * (2.0 * 128.0 * 256.0 + 12.0 * block + head);
        let counted = matmul_train_flops_per_token(&small, 128, Head::MaskedLm(0.15625));
        within(counted, expected, 1e-12);
        // Without the one-hot embeddings and the elementwise work it is under the official
        // count's 3 × forward FLOPs per token.
        let official = 3.0 * forward_flops(&small, 128, Head::MaskedLm(0.15625)) / 128.0;
        assert!(counted < official, "{counted} against {official}");
    }

    #[test]
    fn the_encoder_count_leaves_the_head_out_and_follows_the_sequence_length() {
        // Small at 25 tokens (a padded SST-2 batch): the attention products shrink with s.
        let small = Preset::Small.encoder(VOCAB);
        let block = 8.0 * 256.0 * 256.0 + 4.0 * 256.0 * 25.0 + 4.0 * 256.0 * 1024.0;
        let expected = 3.0 * (2.0 * 128.0 * 256.0 + 12.0 * block);
        within(
            encoder_matmul_train_flops_per_token(&small, 25),
            expected,
            1e-12,
        );
        let with_head = matmul_train_flops_per_token(&small, 25, Head::Binary);
        within(
            with_head - expected,
            3.0 * (2.0 * 256.0 * 256.0 + 2.0 * 256.0),
            1e-9,
        );
    }

    #[test]
    fn derived_counts_add_the_extra_work_only() {
        let masked_lm = |encoder: &EncoderConfig, mask_prob: f64| {
            forward_flops(encoder, 128, Head::MaskedLm(mlm_output_fraction(mask_prob)))
        };
        let post = Preset::Small.encoder(VOCAB);
        let pre = EncoderConfig {
            norm: Norm::Pre,
            ..post
        };
        let extra = masked_lm(&pre, 0.15) - masked_lm(&post, 0.15);
        within(extra, LAYER_NORM_FLOPS * 256.0 * 128.0, 1e-9);
        let base = Shape::new(&post, 128);
        let more_masked = masked_lm(&post, 0.25) - masked_lm(&post, 0.15);
        within(
            more_masked,
            base.mlm_head(mlm_output_fraction(0.25)) - base.mlm_head(MLM_OUTPUT_FRACTION),
            1e-9,
        );
        within(mlm_output_fraction(0.25), 0.15625 / 0.15 * 0.25, 1e-12);
        let no_dropout = EncoderConfig {
            dropout: 0.0,
            ..post
        };
        assert_eq!(masked_lm(&no_dropout, 0.15), masked_lm(&post, 0.15));
    }
}
