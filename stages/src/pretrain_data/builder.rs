//! Packs tokenized sentences into pretraining examples the way ELECTRA's
//! `build_pretraining_dataset.py` (`ExampleBuilder`) does.
//!
//! Sentences of one document accumulate until they reach a target length (usually
//! `max_seq_len`); they are then split into segment A and segment B:
//! - with probability `single_segment_prob` (0.1) everything goes to A, as in single-sentence
//!   classification tasks;
//! - otherwise A takes sentences while it stays under `(target - 3) / 2` tokens (the first
//!   sentence always, and with probability 0.5 the one that crosses the half), B the rest.
//!
//! A is cut to `max_seq_len - 2` tokens and B to what is left after `[CLS]`, `[SEP]`, `[SEP]`.
//! After each example, with probability `random_length_prob` (0.05), the next target is a
//! random length in `5..=max_seq_len`. A document's end flushes what has accumulated, so
//! examples never cross documents.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::tokenizer::SpecialIds;

/// The shortest target a random-length example may get (ELECTRA's `randint(5, max_length)`).
pub const MIN_RANDOM_LENGTH: usize = 5;

/// How examples are shaped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PackingOptions {
    /// Longest example, `[CLS]` and `[SEP]`s included.
    pub max_seq_len: usize,
    /// Chance that an example is a single segment.
    pub single_segment_prob: f64,
    /// Chance that the next example gets a random shorter target length.
    pub random_length_prob: f64,
}

/// One packed example: `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedExample {
    /// Token ids, special tokens included.
    pub input_ids: Vec<u32>,
    /// Whether a B segment is present.
    pub two_segments: bool,
    /// Whether this example was built towards a random shorter target length.
    pub random_length: bool,
}

/// Accumulates one document's sentences and emits examples.
pub struct ExampleBuilder {
    options: PackingOptions,
    special: SpecialIds,
    rng: ChaCha8Rng,
    sentences: Vec<Vec<u32>>,
    length: usize,
    target_length: usize,
}

impl ExampleBuilder {
    /// A builder drawing its random choices from `rng`.
    pub fn new(options: PackingOptions, special: SpecialIds, rng: ChaCha8Rng) -> Self {
        ExampleBuilder {
            options,
            special,
            rng,
            sentences: Vec::new(),
            length: 0,
            target_length: options.max_seq_len,
        }
    }

    /// Adds the next sentence of the current document; returns an example once the target
    /// length is reached.
    pub fn add_sentence(&mut self, ids: Vec<u32>) -> Option<PackedExample> {
        self.length += ids.len();
        self.sentences.push(ids);
        (self.length >= self.target_length).then(|| self.create_example())
    }

    /// Ends the current document, flushing what has accumulated into an example.
    pub fn end_document(&mut self) -> Option<PackedExample> {
        if self.length == 0 {
            self.sentences.clear();
            return None;
        }
        Some(self.create_example())
    }

    fn create_example(&mut self) -> PackedExample {
        let max = self.options.max_seq_len;
        let random_length = self.target_length != max;
        let first_target = if self.rng.random::<f64>() < self.options.single_segment_prob {
            usize::MAX
        } else {
            (self.target_length - 3) / 2
        };
        let mut first: Vec<u32> = Vec::with_capacity(max);
        let mut second: Vec<u32> = Vec::with_capacity(max);
        for sentence in self.sentences.drain(..) {
            // Short-circuits like the reference, so the coin is only tossed when it decides.
            let to_first = first.is_empty()
                || first.len() + sentence.len() < first_target
                || (second.is_empty()
                    && first.len() < first_target
                    && self.rng.random::<f64>() < 0.5);
            if to_first {
                first.extend_from_slice(&sentence);
            } else {
                second.extend_from_slice(&sentence);
            }
        }
        first.truncate(max - 2);
        second.truncate(max.saturating_sub(first.len() + 3));
        self.length = 0;
        self.target_length = if self.rng.random::<f64>() < self.options.random_length_prob {
            self.rng.random_range(MIN_RANDOM_LENGTH..=max)
        } else {
            max
        };
        let mut input_ids = Vec::with_capacity(first.len() + second.len() + 3);
        input_ids.push(self.special.cls);
        input_ids.extend_from_slice(&first);
        input_ids.push(self.special.sep);
        let two_segments = !second.is_empty();
        if two_segments {
            input_ids.extend_from_slice(&second);
            input_ids.push(self.special.sep);
        }
        PackedExample {
            input_ids,
            two_segments,
            random_length,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const SPECIAL: SpecialIds = SpecialIds::LEADING;

    fn builder(single: f64, random: f64) -> ExampleBuilder {
        let options = PackingOptions {
            max_seq_len: 16,
            single_segment_prob: single,
            random_length_prob: random,
        };
        ExampleBuilder::new(options, SPECIAL, ChaCha8Rng::seed_from_u64(7))
    }

    fn sentence(start: u32, len: u32) -> Vec<u32> {
        (start..start + len).collect()
    }

    #[test]
    fn splits_into_two_segments_at_the_half() {
        let mut b = builder(0.0, 0.0);
        // target 16: first segment under (16-3)/2 = 6 tokens.
        assert!(b.add_sentence(sentence(100, 4)).is_none());
        assert!(b.add_sentence(sentence(200, 4)).is_none());
        let example = b.add_sentence(sentence(300, 9)).unwrap();
        // 4 then 8 (not < 6) unless the coin says so; the third never fits in A.
        let ids = &example.input_ids;
        assert_eq!(ids[0], 2);
        assert!(ids.len() <= 16, "{ids:?}");
        assert_eq!(*ids.last().unwrap(), 3);
        assert_eq!(ids.iter().filter(|&&t| t == 3).count(), 2);
        assert!(example.two_segments);
    }

    #[test]
    fn single_segment_examples_take_everything_into_a() {
        let mut b = builder(1.0, 0.0);
        b.add_sentence(sentence(100, 5));
        let example = b.add_sentence(sentence(200, 20)).unwrap();
        assert!(!example.two_segments);
        assert_eq!(example.input_ids.len(), 16);
        assert_eq!(example.input_ids[1..6], [100, 101, 102, 103, 104]);
        assert_eq!(example.input_ids[15], 3);
    }

    #[test]
    fn document_end_flushes_and_never_crosses() {
        let mut b = builder(0.0, 0.0);
        b.add_sentence(sentence(100, 3));
        let example = b.end_document().unwrap();
        assert_eq!(example.input_ids, [2, 100, 101, 102, 3]);
        assert!(b.end_document().is_none());
    }

    #[test]
    fn random_targets_stay_in_range() {
        let mut b = builder(0.0, 1.0);
        for i in 0..200 {
            if let Some(example) = b.add_sentence(sentence(i, 3)) {
                assert!(example.input_ids.len() <= 16);
            }
            assert!((MIN_RANDOM_LENGTH..=16).contains(&b.target_length));
        }
    }
}
