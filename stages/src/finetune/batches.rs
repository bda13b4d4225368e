//! Batches for fine-tuning: the seeded training subset, each epoch's seeded order, and
//! padding a batch to its longest member with an attention mask.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::glue::Feature;
use crate::model::encoder::EncoderInput;

/// The random stream of `purpose` for `seed`: streams are disjoint, so the head's
/// initialisation, the subset, each epoch's order and each step's dropout never share draws.
pub fn stream(seed: u64, purpose: Stream) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(match purpose {
        Stream::Init => 0,
        Stream::Subset => 1,
        Stream::Epoch(epoch) => u64::MAX - epoch,
        Stream::Step(step) => 2 + step,
    });
    rng
}

/// What a random stream is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Initial weights (the task head; the whole model when training from scratch).
    Init,
    /// Which training examples a `max_train_examples` cap keeps.
    Subset,
    /// The order of an epoch.
    Epoch(u64),
    /// A step's dropout masks.
    Step(u64),
}

/// Positions of the training examples to use: all of `len`, or `cap` of them drawn by `seed`
/// (in file order).
pub fn training_subset(len: usize, cap: Option<usize>, seed: u64) -> Vec<usize> {
    let mut positions: Vec<usize> = (0..len).collect();
    if let Some(cap) = cap.filter(|&cap| cap < len) {
        positions.shuffle(&mut stream(seed, Stream::Subset));
        positions.truncate(cap);
        positions.sort_unstable();
    }
    positions
}

/// The order in which epoch `epoch` visits `len` examples.
pub fn epoch_order(len: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut stream(seed, Stream::Epoch(epoch)));
    order
}

/// `features` padded to the longest of them. Padding ids are 0; they never matter, since
/// no token attends to padding (its attention bias is −10000, exactly 0 after softmax).
pub fn pad<B: Backend>(features: &[&Feature], device: &B::Device) -> EncoderInput<B> {
    let b = features.len();
    let s = features
        .iter()
        .map(|f| f.input_ids.len())
        .max()
        .unwrap_or(1);
    let mut ids = vec![0i64; b * s];
    let mut segments = vec![0i64; b * s];
    let mut attention = vec![0f32; b * s];
    for (row, f) in features.iter().enumerate() {
        for (col, (&id, &segment)) in f.input_ids.iter().zip(&f.segment_ids).enumerate() {
            ids[row * s + col] = i64::from(id);
            segments[row * s + col] = i64::from(segment);
            attention[row * s + col] = 1.0;
        }
    }
    EncoderInput {
        ids: Tensor::from_data(TensorData::new(ids, [b, s]), device),
        segments: Tensor::from_data(TensorData::new(segments, [b, s]), device),
        attention: Tensor::from_data(TensorData::new(attention, [b, s]), device),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capped_subset_depends_on_the_seed_only() {
        assert_eq!(training_subset(5, None, 1), [0, 1, 2, 3, 4]);
        assert_eq!(training_subset(5, Some(9), 1), [0, 1, 2, 3, 4]);
        let a = training_subset(1000, Some(10), 1);
        assert_eq!(a.len(), 10);
        assert_eq!(a, training_subset(1000, Some(10), 1));
        assert_ne!(a, training_subset(1000, Some(10), 2));
        assert!(a.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn epochs_are_different_permutations() {
        let first = epoch_order(50, 3, 0);
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(first, epoch_order(50, 3, 1));
        assert_eq!(first, epoch_order(50, 3, 0));
    }
}
