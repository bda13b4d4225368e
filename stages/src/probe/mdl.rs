//! The online (prequential) codelength of the training labels given the features (Voita &
//! Titov 2020, "Information-Theoretic Probing with Minimum Description Length"): the training
//! rows, in a fixed order, are sent in blocks ending at 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.25,
//! 12.5, 25, 50 and 100% of them; the first block costs `log2 K` bits a label (a uniform
//! code), and each later block costs `−log2 p(label)` under a probe trained on every block
//! before it. A representation whose labels are easy to learn from few examples compresses
//! them more; it separates pretrained from random features better than accuracy does.

use super::classifier::{train, Features, ProbeSettings};

/// Where the blocks end, as fractions of the rows (Voita & Titov's).
pub const BLOCK_ENDS: [f64; 11] = [
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.0625, 0.125, 0.25, 0.5, 1.0,
];

/// The blocks' ends in rows for `n` rows: increasing, the first at least 1, the last `n`.
pub fn block_ends(n: usize) -> Vec<usize> {
    let mut ends: Vec<usize> = Vec::new();
    for fraction in BLOCK_ENDS {
        let end = ((fraction * n as f64).ceil() as usize).clamp(1, n);
        if ends.last() != Some(&end) {
            ends.push(end);
        }
    }
    ends
}

/// Each row's codelength in bits, in the order of `order` (the training rows as sent), and
/// the block each was sent in (0: the uniform one).
pub fn online_codelength(
    features: Features<'_>,
    order: &[usize],
    labels: &[u8],
    classes: usize,
    settings: &ProbeSettings,
    seed: u64,
) -> Vec<(usize, f64)> {
    let ends = block_ends(order.len());
    let uniform = (classes as f64).log2();
    let mut bits = Vec::with_capacity(order.len());
    let mut start = 0;
    for (block, &end) in ends.iter().enumerate() {
        if block == 0 {
            bits.extend((start..end).map(|_| (0, uniform)));
        } else {
            let probe = train(
                features,
                &order[..start],
                labels,
                classes,
                settings,
                seed.wrapping_add(block as u64),
            );
            bits.extend(order[start..end].iter().map(|&i| {
                let log_prob = probe.log_probs(features.row(i))[labels[i] as usize];
                (block, -log_prob / std::f64::consts::LN_2)
            }));
        }
        start = end;
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_every_row_once() {
        assert_eq!(block_ends(3), vec![1, 2, 3]);
        let ends = block_ends(70_000);
        assert_eq!(ends[0], 70);
        assert_eq!(*ends.last().unwrap(), 70_000);
        assert!(ends.windows(2).all(|w| w[0] < w[1]));
    }
}
