//! Train FLOPs of the pretraining objectives, from their networks' counts in
//! [`crate::model::flops`] (the official ELECTRA code's, `flops_computation.py`):
//!
//! - each objective's forward FLOPs per example are its networks' (ELECTRA: the discriminator
//!   with its binary head plus the generator's masked LM);
//! - train FLOPs = 2 × batch × steps × forward FLOPs (the official factor for forward plus
//!   backward), whatever micro-batches the batch is computed in;
//! - `match_compute` gives another objective the steps of the same train FLOPs.

use crate::model::config::EncoderConfig;
use crate::model::flops::{forward_flops, mlm_output_fraction, Head};

/// Train FLOPs step by step: the same every step, or, for two-stage training, another count
/// for the first steps (the generator alone).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlopsSchedule {
    /// Train FLOPs of a step (after the first stage, in two-stage training).
    pub per_step: f64,
    /// Two-stage training's first stage: its steps and its train FLOPs per step.
    pub first_stage: Option<(u64, f64)>,
}

impl FlopsSchedule {
    /// `per_step` on every step.
    pub fn uniform(per_step: f64) -> Self {
        FlopsSchedule {
            per_step,
            first_stage: None,
        }
    }

    /// Mean train FLOPs per step over a run of `steps` (`per_step` itself when uniform).
    pub fn mean_per_step(&self, steps: u64) -> f64 {
        match self.first_stage {
            None => self.per_step,
            Some(_) => self.after(steps) / steps.max(1) as f64,
        }
    }

    /// Train FLOPs of the first `steps` steps.
    pub fn after(&self, steps: u64) -> f64 {
        match self.first_stage {
            None => self.per_step * steps as f64,
            Some((first_steps, first)) => {
                first * steps.min(first_steps) as f64
                    + self.per_step * steps.saturating_sub(first_steps) as f64
            }
        }
    }
}

/// Train FLOPs of `steps` steps of `batch` examples: 2 × batch × steps × forward FLOPs.
pub fn train_flops(forward_per_example: f64, batch: usize, steps: u64) -> f64 {
    2.0 * batch as f64 * steps as f64 * forward_per_example
}

/// Forward FLOPs per example of BERT: the encoder with an MLM head, `mask_prob` of the tokens
/// masked.
pub fn bert_forward_flops(encoder: &EncoderConfig, seq_len: usize, mask_prob: f64) -> f64 {
    forward_flops(
        encoder,
        seq_len,
        Head::MaskedLm(mlm_output_fraction(mask_prob)),
    )
}

/// Forward FLOPs per example of a generator network (none for a unigram generator, whose draws
/// are not counted): a masked LM on `mask_prob` of the tokens.
fn generator_flops(generator: Option<&EncoderConfig>, seq_len: usize, mask_prob: f64) -> f64 {
    generator.map_or(0.0, |g| bert_forward_flops(g, seq_len, mask_prob))
}

/// Forward FLOPs per example of ELECTRA (and ELECTRA 15%, which does the same work): the
/// discriminator with its binary head plus the generator, `mask_prob` of the tokens masked.
pub fn electra_forward_flops(
    discriminator: &EncoderConfig,
    generator: Option<&EncoderConfig>,
    seq_len: usize,
    mask_prob: f64,
) -> f64 {
    forward_flops(discriminator, seq_len, Head::Binary)
        + generator_flops(generator, seq_len, mask_prob)
}

/// Forward FLOPs per example of Replace MLM (derived: BERT's count for the model plus
/// ELECTRA's for the generator) or, with `all_tokens`, All-Tokens MLM (the masked-LM head on
/// every position, and the copy gate).
pub fn replace_mlm_forward_flops(
    encoder: &EncoderConfig,
    generator: Option<&EncoderConfig>,
    seq_len: usize,
    mask_prob: f64,
    all_tokens: bool,
) -> f64 {
    let model = if all_tokens {
        forward_flops(encoder, seq_len, Head::AllTokensWithCopy)
    } else {
        bert_forward_flops(encoder, seq_len, mask_prob)
    };
    model + generator_flops(generator, seq_len, mask_prob)
}

/// Steps of `forward_per_example` at `batch` whose train FLOPs equal `target` (rounded to
/// the nearest step, at least 1): how `match_compute` gives two objectives the same budget.
pub fn steps_to_match(target: f64, forward_per_example: f64, batch: usize) -> u64 {
    (target / (2.0 * batch as f64 * forward_per_example))
        .round()
        .max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::Preset;
    use crate::model::flops::tests::{within, VOCAB};

    #[test]
    fn bert_small_matches_the_official_flops_per_step() {
        let bert = Preset::Small.encoder(VOCAB);
        within(
            train_flops(bert_forward_flops(&bert, 128, 0.15), 128, 1),
            9.784e11,
            0.005,
        );
        within(
            train_flops(bert_forward_flops(&bert, 128, 0.15), 128, 1_450_000),
            1.419e18,
            0.005,
        );
    }

    #[test]
    fn electra_small_matches_the_official_flops_per_step() {
        let disc = Preset::Small.encoder(VOCAB);
        let gen = disc.generator(0.25, 1.0);
        within(
            train_flops(forward_flops(&disc, 128, Head::Binary), 128, 1),
            9.414e11,
            0.005,
        );
        within(
            train_flops(bert_forward_flops(&gen, 128, 0.15), 128, 1),
            3.524e11,
            0.005,
        );
        let per_step = train_flops(electra_forward_flops(&disc, Some(&gen), 128, 0.15), 128, 1);
        within(per_step, 1.294e12, 0.005);
        within(per_step * 1e6, 1.294e18, 0.005);
        // A unigram generator is drawn, not computed: the discriminator alone.
        within(
            train_flops(electra_forward_flops(&disc, None, 128, 0.15), 128, 1),
            9.414e11,
            0.005,
        );
    }

    #[test]
    fn table_5_objectives_count_their_model_and_their_generator() {
        let disc = Preset::Small.encoder(VOCAB);
        let gen = disc.generator(0.25, 1.0);
        let s = 128.0;
        let (h, e, v) = (256.0, 128.0, VOCAB as f64);
        // Written out: the MLM head per predicted token (tied output, dense, GELU, LayerNorm,
        // softmax, picking the target) and the copy gate per token (dense, bias, sigmoid, mix).
        let mlm_head = 2.0 * e * v + 2.0 * h * e + e + 8.0 * e + 5.0 * e + 5.0 * v + 2.0 * v;
        let copy_gate = 2.0 * h + 1.0 + 8.0 + 4.0;
        let body = forward_flops(&disc, 128, Head::MaskedLm(0.0));
        let generator = bert_forward_flops(&gen, 128, 0.15);
        within(
            replace_mlm_forward_flops(&disc, Some(&gen), 128, 0.15, false),
            body + 0.15625 * mlm_head * s + generator,
            1e-9,
        );
        within(
            replace_mlm_forward_flops(&disc, Some(&gen), 128, 0.15, true),
            body + (mlm_head + copy_gate) * s + generator,
            1e-9,
        );
        // Replace MLM is BERT plus the generator; compute matching works between any two.
        within(
            replace_mlm_forward_flops(&disc, Some(&gen), 128, 0.15, false),
            bert_forward_flops(&disc, 128, 0.15) + generator,
            1e-9,
        );
        let electra = train_flops(
            electra_forward_flops(&disc, Some(&gen), 128, 0.15),
            128,
            1000,
        );
        let all_tokens = replace_mlm_forward_flops(&disc, Some(&gen), 128, 0.15, true);
        let steps = steps_to_match(electra, all_tokens, 128);
        within(train_flops(all_tokens, 128, steps), electra, 0.005);
    }

    #[test]
    fn compute_matching_gives_bert_the_electra_budget() {
        let disc = Preset::Small.encoder(VOCAB);
        let electra = train_flops(
            electra_forward_flops(&disc, Some(&disc.generator(0.25, 1.0)), 128, 0.15),
            128,
            1_000_000,
        );
        let steps = steps_to_match(electra, bert_forward_flops(&disc, 128, 0.15), 128);
        within(steps as f64, 1.322e6, 0.005);
        within(
            train_flops(bert_forward_flops(&disc, 128, 0.15), 128, steps),
            electra,
            1e-6,
        );
    }
}
