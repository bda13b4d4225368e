//! What a pretraining step measures besides its loss, to make learning visible where the loss
//! hides it: the discriminator's accuracy against "all original", precision, recall and
//! **ROC-AUC** (it ranks replaced above original tokens long before it beats the base rate);
//! the **collapse** of the kept network's final hidden states (mean pairwise cosine similarity
//! across real tokens: 1 when every token has the same state, the failure mode of small
//! encoders at the unigram plateau); and the corpus's **unigram entropy**, the masked-LM loss
//! of a model that ignores context.

use serde::Serialize;

use super::masking::is_candidate;
use crate::tokenizer::SpecialIds;

/// What one step measured, for the metrics log.
///
/// A step over micro-batches measures each and [`StepStats::merge`]s them into the whole
/// batch's figures: every mean a micro-batch reports (the losses, the masked-LM accuracy) is
/// already multiplied by its share of the whole batch's positions, so the means add up; the
/// discriminator's figures and the collapse statistic are recomputed from the raw material the
/// micro-batches keep (`scored`, `states`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepStats {
    /// Masked-LM cross-entropy (generator for ELECTRA).
    pub mlm_loss: f64,
    /// Replaced-token-detection BCE over real tokens (ELECTRA; 0 for BERT).
    pub bce_loss: f64,
    /// The optimised loss.
    pub loss: f64,
    /// Share of masked positions whose argmax prediction is the original token.
    pub mlm_accuracy: f64,
    /// Share of real tokens the discriminator classifies right (ELECTRA).
    pub disc_accuracy: f64,
    /// Share of real tokens that were not replaced: the "all original" baseline (ELECTRA).
    pub disc_baseline: f64,
    /// Of tokens predicted replaced, the share that were (ELECTRA).
    pub disc_precision: f64,
    /// Of replaced tokens, the share predicted replaced (ELECTRA).
    pub disc_recall: f64,
    /// ROC-AUC of the discriminator's logits, replaced against original tokens (ELECTRA; 0.5
    /// is chance, and a batch without both kinds).
    pub disc_auc: f64,
    /// Mean pairwise cosine similarity of the kept network's final hidden states over the
    /// batch's real tokens.
    pub hidden_cosine: f64,
    /// Masked positions.
    pub masked: usize,
    /// Real (non-padding) tokens.
    pub tokens: usize,
    /// The discriminator's `(logit, replaced)` on each scored position (ELECTRA).
    #[serde(skip)]
    pub scored: Vec<(f32, bool)>,
    /// The kept network's final hidden states over the real tokens, as unit vectors summed.
    #[serde(skip)]
    pub states: UnitSum,
}

impl StepStats {
    /// Keeps the discriminator's `logits` against `labels` (1 = replaced) over the positions
    /// where `counted` is 1 (the real tokens, or ELECTRA 15%'s masked ones), for
    /// [`StepStats::finished`].
    pub fn score_discriminator(&mut self, logits: &[f32], labels: &[f32], counted: &[f32]) {
        self.scored = logits
            .iter()
            .zip(labels)
            .zip(counted)
            .filter(|(_, &a)| a != 0.0)
            .map(|((&logit, &label), _)| (logit, label > 0.5))
            .collect();
    }

    /// The whole batch's measurements from its micro-batches' (each [`StepStats::finished`]).
    pub fn merge(parts: Vec<StepStats>) -> StepStats {
        if parts.len() == 1 {
            // One pass over the whole batch: its figures are already the whole's (no second
            // sort of its scored positions for the ROC-AUC).
            return parts.into_iter().next().expect("one part");
        }
        let mut parts = parts.into_iter();
        let mut whole = parts.next().unwrap_or_default();
        for part in parts {
            whole.mlm_loss += part.mlm_loss;
            whole.bce_loss += part.bce_loss;
            whole.loss += part.loss;
            whole.mlm_accuracy += part.mlm_accuracy;
            whole.masked += part.masked;
            whole.tokens += part.tokens;
            whole.scored.extend(part.scored);
            whole.states.add(&part.states);
        }
        whole.finished()
    }

    /// The stats with the figures computed from the raw material: the collapse statistic,
    /// and the discriminator's accuracy, all-original baseline, precision, recall and ROC-AUC
    /// (where it scored positions).
    pub fn finished(mut self) -> StepStats {
        self.hidden_cosine = self.states.mean_pairwise_cosine();
        if self.scored.is_empty() {
            return self;
        }
        let (mut correct, mut original, mut tp, mut predicted, mut replaced) = (0, 0, 0, 0, 0);
        for &(logit, was_replaced) in &self.scored {
            let says_replaced = logit > 0.0;
            correct += usize::from(says_replaced == was_replaced);
            original += usize::from(!was_replaced);
            tp += usize::from(says_replaced && was_replaced);
            predicted += usize::from(says_replaced);
            replaced += usize::from(was_replaced);
        }
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        self.disc_accuracy = ratio(correct, self.scored.len());
        self.disc_baseline = ratio(original, self.scored.len());
        self.disc_precision = ratio(tp, predicted);
        self.disc_recall = ratio(tp, replaced);
        let mut ranked = self.scored.clone();
        self.disc_auc = roc_auc(&mut ranked);
        self
    }
}

/// ROC-AUC of `(score, positive)` pairs: the chance that a random positive scores above a
/// random negative, ties counting half (the Mann–Whitney statistic, with average ranks). 0.5
/// when one class is absent.
pub fn roc_auc(scored: &mut [(f32, bool)]) -> f64 {
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = scored.iter().filter(|(_, p)| *p).count() as f64;
    let negatives = scored.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return 0.5;
    }
    let mut positive_ranks = 0.0;
    let mut start = 0;
    while start < scored.len() {
        let end = start
            + scored[start..]
                .iter()
                .take_while(|(s, _)| *s == scored[start].0)
                .count();
        let rank = (start + end + 1) as f64 / 2.0; // 1-based average rank of the tie group
        let tied_positives = scored[start..end].iter().filter(|(_, p)| *p).count();
        positive_ranks += rank * tied_positives as f64;
        start = end;
    }
    (positive_ranks - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// Hidden states as the sum of their unit vectors and their count: enough for the mean
/// cosine similarity over their pairs, and it adds up over micro-batches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnitSum {
    sum: Vec<f64>,
    count: usize,
}

impl UnitSum {
    /// The real tokens' states of `hidden` (`[tokens, h]` row-major; `attention` 1 on the rows
    /// to count; rows of zeros left out).
    pub fn of(hidden: &[f32], h: usize, attention: &[f32]) -> UnitSum {
        let mut sum = vec![0.0f64; h];
        let mut count = 0usize;
        for (row, _) in hidden
            .chunks_exact(h)
            .zip(attention)
            .filter(|(_, &a)| a > 0.0)
        {
            let norm = row
                .iter()
                .map(|&x| f64::from(x) * f64::from(x))
                .sum::<f64>()
                .sqrt();
            if norm == 0.0 {
                continue;
            }
            for (s, &x) in sum.iter_mut().zip(row) {
                *s += f64::from(x) / norm;
            }
            count += 1;
        }
        UnitSum { sum, count }
    }

    /// Adds `other`'s states.
    pub fn add(&mut self, other: &UnitSum) {
        if self.sum.is_empty() {
            self.sum = vec![0.0; other.sum.len()];
        }
        for (s, o) in self.sum.iter_mut().zip(&other.sum) {
            *s += o;
        }
        self.count += other.count;
    }

    /// Mean cosine similarity over the pairs of distinct states: with unit vectors `u_i`,
    /// `Σ_{i≠j} u_i·u_j = |Σ u_i|² − n`. 0 for fewer than two states.
    pub fn mean_pairwise_cosine(&self) -> f64 {
        let n = self.count as f64;
        if self.count < 2 {
            return 0.0;
        }
        let squared: f64 = self.sum.iter().map(|s| s * s).sum();
        (squared - n) / (n * (n - 1.0))
    }
}

/// The entropy (nats) of the token distribution among masking candidates (every token but
/// `[CLS]`, `[SEP]` and `[PAD]`), from `counts` per token id: the masked-LM loss of the best
/// model that ignores context.
pub fn unigram_entropy(counts: &[u64], special: SpecialIds) -> f64 {
    let candidate = |id: usize| is_candidate(id as u32, special);
    let total: u64 = counts
        .iter()
        .enumerate()
        .filter(|&(id, _)| candidate(id))
        .map(|(_, &c)| c)
        .sum();
    counts
        .iter()
        .enumerate()
        .filter(|&(id, &c)| candidate(id) && c > 0)
        .map(|(_, &c)| {
            let p = c as f64 / total as f64;
            -p * p.ln()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ranked_pairs_and_ties_as_half() {
        let mut perfect = [(0.1, false), (0.9, true), (0.5, true), (0.2, false)];
        assert_eq!(roc_auc(&mut perfect), 1.0);
        let mut inverted = [(0.9, false), (0.1, true)];
        assert_eq!(roc_auc(&mut inverted), 0.0);
        // One positive tied with one of two negatives, above the other: (1 + 0.5) / 2.
        let mut tied = [(0.5, true), (0.5, false), (0.2, false)];
        assert_eq!(roc_auc(&mut tied), 0.75);
        let mut constant = [(0.3, true), (0.3, false), (0.3, false)];
        assert_eq!(roc_auc(&mut constant), 0.5);
        assert_eq!(roc_auc(&mut [(0.3, false)]), 0.5);
    }

    #[test]
    fn collapse_is_one_for_identical_states_and_zero_for_orthogonal_ones() {
        let same = [1.0, 2.0, 1.0, 2.0, 1.0, 2.0];
        assert!(
            (UnitSum::of(&same, 2, &[1.0, 1.0, 1.0]).mean_pairwise_cosine() - 1.0).abs() < 1e-12
        );
        let orthogonal = [1.0, 0.0, 0.0, 3.0, 5.0, 5.0];
        // The third row is padding.
        assert!(
            UnitSum::of(&orthogonal, 2, &[1.0, 1.0, 0.0])
                .mean_pairwise_cosine()
                .abs()
                < 1e-12
        );
        let opposite = [1.0, 0.0, -2.0, 0.0];
        assert!(
            (UnitSum::of(&opposite, 2, &[1.0, 1.0]).mean_pairwise_cosine() + 1.0).abs() < 1e-12
        );
    }

    #[test]
    fn unigram_entropy_leaves_out_separators_and_padding() {
        let special = SpecialIds::LEADING;
        let mut counts = vec![0u64; 10];
        counts[special.cls as usize] = 100;
        counts[special.sep as usize] = 100;
        counts[7] = 5;
        counts[8] = 5;
        assert!((unigram_entropy(&counts, special) - std::f64::consts::LN_2).abs() < 1e-12);
    }
}
