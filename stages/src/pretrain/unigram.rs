//! ELECTRA's smallest generator: replacements drawn from the corpus's unigram distribution
//! among masking candidates, with no network and nothing to learn (the paper's Figure 3 puts
//! it at the small end of its generator-size axis). A replacement's identity alone then says
//! nothing about whether it was replaced, since the originals at masked positions have the
//! same distribution: only the context gives it away.

use super::masking::is_candidate;
use crate::tokenizer::SpecialIds;

/// Draws tokens from the candidates' unigram distribution, sharpened or flattened by a
/// sampling temperature as a generator's softmax would be.
#[derive(Debug, Clone, PartialEq)]
pub struct UnigramSampler {
    /// `cdf[i]`: the probability of drawing an id ≤ `i`; the last entry is 1.
    cdf: Vec<f64>,
    /// Per id, the log-probability of drawing it (−∞ for ids never drawn).
    log_probs: Vec<f64>,
    /// The most probable id.
    mode: u32,
}

impl UnigramSampler {
    /// The sampler of data whose token counts per id are `counts`: each masking candidate in
    /// proportion to `count^(1/temperature)`; `[CLS]`, `[SEP]`, `[PAD]` and unseen ids never.
    pub fn new(counts: &[u64], special: SpecialIds, temperature: f64) -> Self {
        let weights: Vec<f64> = counts
            .iter()
            .enumerate()
            .map(|(id, &c)| {
                if c > 0 && is_candidate(id as u32, special) {
                    (c as f64).powf(1.0 / temperature)
                } else {
                    0.0
                }
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let mut running = 0.0;
        let mut cdf: Vec<f64> = weights
            .iter()
            .map(|w| {
                running += w / total;
                running
            })
            .collect();
        if let Some(last) = cdf.last_mut() {
            *last = 1.0;
        }
        let mode = (0..weights.len())
            .max_by(|&a, &b| weights[a].total_cmp(&weights[b]).then(b.cmp(&a)))
            .unwrap_or(0) as u32;
        UnigramSampler {
            cdf,
            log_probs: weights.iter().map(|w| (w / total).ln()).collect(),
            mode,
        }
    }

    /// The token the uniform number `u` in [0, 1) draws, by inverse CDF.
    pub fn sample(&self, u: f32) -> u32 {
        let u = f64::from(u);
        let at = self.cdf.partition_point(|&c| c <= u);
        at.min(self.cdf.len() - 1) as u32
    }

    /// As a masked LM, on `targets`: the mean cross-entropy (nats) and the share the mode
    /// predicts (the generator's loss and accuracy, for the step log).
    pub fn masked_lm_loss(&self, targets: &[u32]) -> (f64, f64) {
        let n = targets.len().max(1) as f64;
        let loss = -targets
            .iter()
            .map(|&t| self.log_probs[t as usize])
            .sum::<f64>()
            / n;
        let correct = targets.iter().filter(|&&t| t == self.mode).count();
        (loss, correct as f64 / n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const SPECIAL: SpecialIds = SpecialIds::LEADING;

    #[test]
    fn draws_follow_the_candidates_counts_and_never_a_special_or_unseen_id() {
        // [PAD] [UNK] [CLS] [SEP] [MASK] a b c: candidates 1, 4, 5, 6, 7; [MASK] and c unseen.
        let counts = [100, 10, 50, 50, 0, 60, 30, 0];
        let sampler = UnigramSampler::new(&counts, SPECIAL, 1.0);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut drawn = [0usize; 8];
        let draws = 100_000;
        for _ in 0..draws {
            drawn[sampler.sample(rng.random()) as usize] += 1;
        }
        assert_eq!(
            (drawn[0], drawn[2], drawn[3], drawn[4], drawn[7]),
            (0, 0, 0, 0, 0)
        );
        for (id, expected) in [(1, 0.1), (5, 0.6), (6, 0.3)] {
            let share = drawn[id] as f64 / draws as f64;
            assert!((share - expected).abs() < 0.01, "id {id}: {share}");
        }
        // Cross-entropy of the counts' own distribution on targets drawn from it.
        let (loss, accuracy) = sampler.masked_lm_loss(&[5, 5, 6, 1]);
        let expected = -(2.0 * 0.6f64.ln() + 0.3f64.ln() + 0.1f64.ln()) / 4.0;
        assert!(
            (loss - expected).abs() < 1e-9 && accuracy == 0.5,
            "{loss} {accuracy}"
        );
    }

    #[test]
    fn a_higher_temperature_flattens_the_draws() {
        let counts = [0, 1, 0, 0, 0, 81];
        let flat = UnigramSampler::new(&counts, SPECIAL, 2.0);
        // Weights 1 and 9 (81^½): [UNK] is drawn a tenth of the time.
        let (loss, _) = flat.masked_lm_loss(&[1]);
        assert!((loss - 10f64.ln()).abs() < 1e-9, "{loss}");
    }
}
