//! Dynamic masking, drawn anew at every step from the step's random stream.
//!
//! Per sequence, `round(mask_prob · candidates)` positions (at least 1, at most
//! `max_predictions`) are chosen uniformly among the real, non-special tokens. Each chosen
//! token is then replaced by the configured scheme: ELECTRA's code uses 85% `[MASK]` and 15%
//! kept as is; BERT's is 80% `[MASK]`, 10% a random token, 10% kept.

use std::ops::Range;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::pretrain_data::Batch;
use crate::tokenizer::SpecialIds;

/// What a chosen position is replaced with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Replacement {
    /// ELECTRA's code: 85% `[MASK]`, 15% unchanged.
    Electra,
    /// BERT's: 80% `[MASK]`, 10% random token, 10% unchanged.
    Bert,
}

/// How to mask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskingOptions {
    /// Share of candidate tokens to predict.
    pub mask_prob: f64,
    /// Most predictions per sequence.
    pub max_predictions: usize,
    /// Replacement scheme.
    pub replacement: Replacement,
}

/// Whether token `id` may be masked: every token but `[CLS]`, `[SEP]` and `[PAD]`.
pub fn is_candidate(id: u32, special: SpecialIds) -> bool {
    id != special.cls && id != special.sep && id != special.pad
}

impl MaskingOptions {
    /// ELECTRA's cap on predictions per sequence: `⌊(mask_prob + 0.005) · max_seq_len⌋` (19 for
    /// 15% of 128).
    pub fn max_predictions_for(mask_prob: f64, max_seq_len: usize) -> usize {
        ((mask_prob + 0.005) * max_seq_len as f64) as usize
    }
}

/// A batch with masked positions: what the masked-LM model reads and must predict.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskedBatch {
    /// Rows.
    pub batch_size: usize,
    /// Columns.
    pub seq_len: usize,
    /// The unmasked token ids, `[b · s]`.
    pub original: Vec<u32>,
    /// The ids with masked positions replaced, `[b · s]`.
    pub masked: Vec<u32>,
    /// Segment ids, `[b · s]`.
    pub segments: Vec<u32>,
    /// 1 on real tokens, 0 on padding, `[b · s]`.
    pub attention: Vec<f32>,
    /// Flat indices `row · s + column` of the positions to predict, `[n]`, row-major.
    pub positions: Vec<usize>,
    /// The original token at each of `positions`, `[n]`.
    pub targets: Vec<u32>,
    /// One uniform number in [0, 1) per masked position, `[n]`: the draw from which a
    /// generator picks its replacement there (by inverse CDF). Drawn with the masks, so that a
    /// position's replacement does not depend on which micro-batch or replica computes it.
    pub replacement_draws: Vec<f32>,
    /// The counts of the step's whole batch, which this batch may be a micro-batch of.
    pub whole: WholeBatch,
}

/// The counts of a step's whole batch that every mean a micro-batch's loss takes is divided
/// by, so that its micro-batches' losses (and gradients) add up to the whole batch's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WholeBatch {
    /// Masked positions.
    pub masked: usize,
    /// Real (non-padding) tokens.
    pub tokens: usize,
}

impl MaskedBatch {
    /// Real (non-padding) tokens.
    pub fn tokens(&self) -> usize {
        self.attention.iter().filter(|&&a| a > 0.0).count()
    }

    /// The micro-batches of `rows` rows each (the last may have fewer), in order ([`Self::rows`]).
    pub fn split(&self, rows: usize) -> Vec<MaskedBatch> {
        let rows = rows.max(1);
        (0..self.batch_size)
            .step_by(rows)
            .map(|first| self.rows(first..(first + rows).min(self.batch_size)))
            .collect()
    }

    /// The rows `rows` of this batch: their masked positions (renumbered), targets and
    /// replacement draws; the whole batch's counts are kept.
    pub fn rows(&self, rows: Range<usize>) -> MaskedBatch {
        let s = self.seq_len;
        let cells = rows.start * s..rows.end * s;
        // Positions are row-major: the rows' are one run of them.
        let from = self.positions.partition_point(|&p| p < cells.start);
        let to = self.positions.partition_point(|&p| p < cells.end);
        MaskedBatch {
            batch_size: rows.len(),
            seq_len: s,
            original: self.original[cells.clone()].to_vec(),
            masked: self.masked[cells.clone()].to_vec(),
            segments: self.segments[cells.clone()].to_vec(),
            attention: self.attention[cells.clone()].to_vec(),
            positions: self.positions[from..to]
                .iter()
                .map(|&p| p - cells.start)
                .collect(),
            targets: self.targets[from..to].to_vec(),
            replacement_draws: self.replacement_draws[from..to].to_vec(),
            whole: self.whole,
        }
    }

    /// This batch's share of the whole batch's masked positions: the factor of a mean over its
    /// masked positions (1 for a whole batch).
    pub fn masked_share(&self) -> f64 {
        share(self.positions.len(), self.whole.masked)
    }

    /// This batch's share of the whole batch's real tokens: the factor of a mean over its
    /// real tokens (1 for a whole batch).
    pub fn token_share(&self) -> f64 {
        share(self.tokens(), self.whole.tokens)
    }
}

/// `part / whole`, exactly 1 when they are equal (and 0 of 0 is all of it).
fn share(part: usize, whole: usize) -> f64 {
    if part == whole {
        1.0
    } else {
        part as f64 / whole as f64
    }
}

/// Masks `batch` with `options`, drawing from `rng`.
pub fn mask_batch(
    batch: &Batch,
    special: SpecialIds,
    vocab_size: usize,
    options: &MaskingOptions,
    rng: &mut ChaCha8Rng,
) -> MaskedBatch {
    let (b, s) = (batch.batch_size, batch.seq_len);
    let mut masked = batch.input_ids.clone();
    let mut positions = Vec::new();
    let mut targets = Vec::new();
    let mut attention = vec![0.0f32; b * s];
    for row in 0..b {
        let len = batch.lengths[row];
        attention[row * s..row * s + len].fill(1.0);
        let mut candidates: Vec<usize> = (0..len)
            .filter(|&c| is_candidate(batch.input_ids[row * s + c], special))
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let wanted = (candidates.len() as f64 * options.mask_prob).round() as usize;
        let count = wanted.clamp(1, options.max_predictions.max(1));
        // Partial Fisher–Yates: the first `count` candidates become a uniform sample.
        for i in 0..count.min(candidates.len()) {
            let j = rng.random_range(i..candidates.len());
            candidates.swap(i, j);
        }
        let mut chosen = candidates[..count.min(candidates.len())].to_vec();
        chosen.sort_unstable();
        for column in chosen {
            let at = row * s + column;
            positions.push(at);
            targets.push(batch.input_ids[at]);
            let draw: f64 = rng.random();
            masked[at] = match options.replacement {
                Replacement::Electra if draw < 0.85 => special.mask,
                Replacement::Bert if draw < 0.8 => special.mask,
                Replacement::Bert if draw < 0.9 => rng.random_range(0..vocab_size as u32),
                _ => batch.input_ids[at],
            };
        }
    }
    let replacement_draws = positions.iter().map(|_| rng.random::<f32>()).collect();
    let whole = WholeBatch {
        masked: positions.len(),
        tokens: batch.lengths.iter().sum(),
    };
    MaskedBatch {
        batch_size: b,
        seq_len: s,
        original: batch.input_ids.clone(),
        masked,
        segments: batch.segment_ids.clone(),
        attention,
        positions,
        targets,
        replacement_draws,
        whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const SPECIAL: SpecialIds = SpecialIds::LEADING;

    fn batch() -> Batch {
        // Two rows of 40: [CLS] 10..44 [SEP] and a shorter one padded.
        let mut ids = vec![2u32];
        ids.extend(10..48);
        ids.push(3);
        let mut short = vec![2u32];
        short.extend(100..110);
        short.push(3);
        let lengths = vec![40, short.len()];
        short.resize(40, 0);
        ids.extend(short);
        Batch {
            batch_size: 2,
            seq_len: 40,
            segment_ids: vec![0; 80],
            input_ids: ids,
            lengths,
        }
    }

    #[test]
    fn masks_fifteen_percent_of_real_non_special_tokens() {
        let options = MaskingOptions {
            mask_prob: 0.15,
            max_predictions: MaskingOptions::max_predictions_for(0.15, 40),
            replacement: Replacement::Electra,
        };
        let m = mask_batch(
            &batch(),
            SPECIAL,
            1000,
            &options,
            &mut ChaCha8Rng::seed_from_u64(1),
        );
        // 38 candidates → 6 (cap 6); 10 candidates → 2.
        assert_eq!(m.positions.iter().filter(|&&p| p < 40).count(), 6);
        assert_eq!(m.positions.iter().filter(|&&p| p >= 40).count(), 2);
        for (&p, &t) in m.positions.iter().zip(&m.targets) {
            assert!(![2, 3, 0].contains(&m.original[p]));
            assert_eq!(m.original[p], t);
            assert!(m.masked[p] == 4 || m.masked[p] == t);
            assert!(p % 40 < if p < 40 { 40 } else { 12 });
        }
        assert_eq!(m.attention.iter().filter(|&&a| a == 1.0).count(), 52);
        let unmasked: Vec<usize> = (0..80).filter(|p| !m.positions.contains(p)).collect();
        assert!(unmasked.iter().all(|&p| m.masked[p] == m.original[p]));
    }

    #[test]
    fn the_replacement_schemes_have_their_proportions() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut count = |replacement| {
            let options = MaskingOptions {
                mask_prob: 0.5,
                max_predictions: 40,
                replacement,
            };
            let (mut masks, mut kept, mut total) = (0, 0, 0);
            for _ in 0..300 {
                let m = mask_batch(&batch(), SPECIAL, 1000, &options, &mut rng);
                for (&p, &t) in m.positions.iter().zip(&m.targets) {
                    total += 1;
                    masks += usize::from(m.masked[p] == 4);
                    kept += usize::from(m.masked[p] == t);
                }
            }
            (masks as f64 / total as f64, kept as f64 / total as f64)
        };
        let (mask, kept) = count(Replacement::Electra);
        assert!(
            (mask - 0.85).abs() < 0.02 && (kept - 0.15).abs() < 0.02,
            "{mask} {kept}"
        );
        let (mask, kept) = count(Replacement::Bert);
        assert!(
            (mask - 0.8).abs() < 0.02 && (kept - 0.1).abs() < 0.02,
            "{mask} {kept}"
        );
    }
}
