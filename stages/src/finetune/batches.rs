//! Batches for fine-tuning: the seeded training subset, each epoch's seeded order, and a
//! batch's rows: padded to its longest member with an attention mask ([`pad`]), or its
//! sequences packed side by side into rows as long as the longest ([`pack`]).

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::glue::Feature;
use crate::model::encoder::{EncoderInput, Layout, Packing, MASKED};

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
        layout: Layout::Padded(Tensor::from_data(
            TensorData::new(attention, [b, s]),
            device,
        )),
    }
}

/// Where each sequence of `lengths` goes when they are packed into rows of `capacity`
/// tokens: `(row, column)` of its first token, and the number of rows. First fit, longest
/// first (ties in input order), so the same lengths always give the same rows. A sequence
/// longer than `capacity` gets a row of its own.
pub fn pack_rows(lengths: &[usize], capacity: usize) -> (Vec<(usize, usize)>, usize) {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(lengths[i]), i));
    let mut filled: Vec<usize> = Vec::new();
    let mut places = vec![(0, 0); lengths.len()];
    for i in order {
        let row = filled
            .iter()
            .position(|&used| used + lengths[i] <= capacity)
            .unwrap_or_else(|| {
                filled.push(0);
                filled.len() - 1
            });
        places[i] = (row, filled[row]);
        filled[row] += lengths[i];
    }
    (places, filled.len())
}

/// `features` packed side by side into rows as long as the longest of them ([`pack_rows`]),
/// each sequence attending only to itself and numbering its positions from 0: the same
/// function of every sequence as [`pad`] computes, on about a third of the positions for
/// SST-2's short sentences. The encoder's outputs come back one sequence per row in
/// `features`' order ([`crate::model::encoder::Backbone::sequences`]).
pub fn pack<B: Backend>(features: &[&Feature], device: &B::Device) -> EncoderInput<B> {
    let lengths: Vec<usize> = features.iter().map(|f| f.input_ids.len()).collect();
    let s = lengths.iter().copied().max().unwrap_or(1).max(1);
    let (places, b) = pack_rows(&lengths, s);
    let (m, t) = (features.len(), s);
    let mut ids = vec![0i64; b * s];
    let mut segments = vec![0i64; b * s];
    let mut positions = vec![0i64; b * s];
    // Which sequence each cell holds; padding is a sequence of its own in each row.
    let mut owner = vec![usize::MAX; b * s];
    let mut unpack = vec![0i64; m * t];
    let mut attention = vec![0f32; m * t];
    for (sequence, (f, &(row, column))) in features.iter().zip(&places).enumerate() {
        let start = row * s + column;
        for (k, (&id, &segment)) in f.input_ids.iter().zip(&f.segment_ids).enumerate() {
            ids[start + k] = i64::from(id);
            segments[start + k] = i64::from(segment);
            positions[start + k] = k as i64;
            owner[start + k] = sequence;
            unpack[sequence * t + k] = (start + k) as i64;
            attention[sequence * t + k] = 1.0;
        }
    }
    let mut mask_bias = vec![0f32; b * s * s];
    for (row, owners) in owner.chunks(s).enumerate() {
        for (query, bias) in mask_bias[row * s * s..(row + 1) * s * s]
            .chunks_mut(s)
            .enumerate()
        {
            for (bias, key) in bias.iter_mut().zip(owners) {
                if *key != owners[query] {
                    *bias = MASKED;
                }
            }
        }
    }
    let ints = |values: Vec<i64>| Tensor::from_data(TensorData::new(values, [b, s]), device);
    EncoderInput {
        ids: ints(ids),
        segments: ints(segments),
        layout: Layout::Packed(Packing {
            positions: ints(positions),
            mask_bias: Tensor::from_data(TensorData::new(mask_bias, [b, 1, s, s]), device),
            unpack: Tensor::from_data(TensorData::new(unpack, [m * t]), device),
            attention: Tensor::from_data(TensorData::new(attention, [m, t]), device),
        }),
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
    fn packing_places_every_sequence_once_without_overlap_or_overflow() {
        let lengths = [5, 9, 2, 9, 4, 1, 7, 3, 3];
        let (places, rows) = pack_rows(&lengths, 9);
        // 43 tokens in rows of 9: five rows is the least possible, and first fit finds it.
        assert_eq!(rows, 5);
        let mut cells = vec![None; rows * 9];
        for (sequence, (&(row, column), &len)) in places.iter().zip(&lengths).enumerate() {
            assert!(column + len <= 9, "sequence {sequence} overflows its row");
            for cell in &mut cells[row * 9 + column..row * 9 + column + len] {
                assert_eq!(*cell, None, "sequence {sequence} overlaps another");
                *cell = Some(sequence);
            }
        }
        assert_eq!(
            cells.iter().flatten().count(),
            lengths.iter().sum::<usize>()
        );
        // Longest first: the two 9s fill the first two rows, in input order.
        assert_eq!((places[1], places[3]), ((0, 0), (1, 0)));
        assert_eq!(pack_rows(&lengths, 9), (places, rows), "deterministic");
        assert_eq!(pack_rows(&[12, 3], 9).1, 2, "too long: a row of its own");
        assert_eq!(pack_rows(&[], 9), (vec![], 0));
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
