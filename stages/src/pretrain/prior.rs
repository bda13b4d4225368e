//! The output heads' starting biases. The paper starts them at 0. `output_bias: prior` starts
//! them where a model that ignores context ends: the masked-LM bias at the log unigram
//! probabilities of the masking candidates, the discriminator's at the log-odds of a token
//! being replaced. Then the first gradients carry no "predict the prior" component that is the
//! same for every token, the push that otherwise moves every token's state the same way and
//! collapses short, fast runs at the plateau (docs/stage-kinds.md).

use serde::{Deserialize, Serialize};

use super::masking::is_candidate;
use crate::tokenizer::SpecialIds;

/// How the output heads' biases start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputBias {
    /// At 0 (the paper's).
    #[default]
    Zero,
    /// At the context-free solution ([`OutputPrior`]).
    Prior,
}

/// The context-free solution of both objectives' heads, from the training data.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputPrior {
    /// Per token id: the log of its add-one smoothed share among masking candidates (every
    /// token but `[CLS]`, `[SEP]` and `[PAD]`, which get the floor of a zero count).
    pub token_log_probs: Vec<f32>,
    /// `ln(q / (1 − q))` for `q = mask_prob · (1 − Σ pᵢ²)`: the expected share of replaced
    /// tokens when the generator samples the unigram distribution (a sample equal to the
    /// original counts as real).
    pub replaced_logit: f32,
    /// `ln(r / (1 − r))` for `r = 1 − Σ pᵢ²`: the same share among the masked positions only
    /// (where ELECTRA 15%'s discriminator is scored).
    pub masked_replaced_logit: f32,
}

impl OutputPrior {
    /// The prior of data whose token counts per id are `counts`, masked at `mask_prob`.
    pub fn new(counts: &[u64], special: SpecialIds, mask_prob: f64) -> Self {
        let count = |id: usize, c: u64| {
            if is_candidate(id as u32, special) {
                c
            } else {
                0
            }
        };
        let total: u64 = counts.iter().enumerate().map(|(id, &c)| count(id, c)).sum();
        let denominator = (total + counts.len() as u64) as f64;
        let probs: Vec<f64> = counts
            .iter()
            .enumerate()
            .map(|(id, &c)| (count(id, c) + 1) as f64 / denominator)
            .collect();
        let collision: f64 = probs.iter().map(|p| p * p).sum();
        let log_odds = |q: f64| (q / (1.0 - q)).ln() as f32;
        OutputPrior {
            token_log_probs: probs.iter().map(|p| p.ln() as f32).collect(),
            replaced_logit: log_odds(mask_prob * (1.0 - collision)),
            masked_replaced_logit: log_odds(1.0 - collision),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prior_is_the_smoothed_unigram_distribution_and_the_replaced_log_odds() {
        let special = SpecialIds::LEADING;
        // [PAD] [UNK] [CLS] [SEP] [MASK] a b: only ids 1, 4, 5, 6 are candidates.
        let counts = [100, 0, 50, 50, 0, 6, 2];
        let prior = OutputPrior::new(&counts, special, 0.15);
        let p: Vec<f64> = prior
            .token_log_probs
            .iter()
            .map(|&l| f64::from(l).exp())
            .collect();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-6, "{p:?}");
        assert!((p[5] - 7.0 / 15.0).abs() < 1e-6 && (p[0] - 1.0 / 15.0).abs() < 1e-6);
        let q = 0.15 * (1.0 - p.iter().map(|x| x * x).sum::<f64>());
        assert!((f64::from(prior.replaced_logit) - (q / (1.0 - q)).ln()).abs() < 1e-5);
        let r = q / 0.15;
        assert!((f64::from(prior.masked_replaced_logit) - (r / (1.0 - r)).ln()).abs() < 1e-5);
    }
}
