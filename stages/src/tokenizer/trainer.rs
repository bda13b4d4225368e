//! Trains a WordPiece vocabulary the way Hugging Face's `WordPieceTrainer` does (BPE merges
//! over words, `##` marking continuations), but deterministically.
//!
//! The `tokenizers` trainer assigns ids in hash-map order, and its merge queue breaks ties by
//! id, so two runs on the same corpus can give different vocabularies. Here words are sorted
//! before ids are assigned and ties go to the lower pair of ids, so the vocabulary depends only
//! on the corpus and the options. Words are counted in parallel; merging is sequential.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use rayon::prelude::*;
use tokenizers::{
    NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer,
};

use super::vocab::SPECIAL_TOKENS;
use crate::error::{DataError, Result};

/// The prefix of a token that continues a word.
pub const CONTINUATION: &str = "##";

/// Adds the words (after normalisation and pre-tokenisation) of `lines` to `totals`,
/// counting in parallel on the current rayon pool.
pub fn count_words<N, P>(
    lines: &[String],
    normalizer: &N,
    pre_tokenizer: &P,
    totals: &mut HashMap<String, u64>,
) -> Result<()>
where
    N: Normalizer + Sync,
    P: PreTokenizer + Sync,
{
    let counts = lines
        .par_chunks(1024)
        .map(|chunk| -> Result<HashMap<String, u64>> {
            let mut counts = HashMap::new();
            for line in chunk {
                let mut normalized = NormalizedString::from(line.as_str());
                normalizer
                    .normalize(&mut normalized)
                    .map_err(|e| DataError::Config(format!("normalising text: {e}")))?;
                let mut words = PreTokenizedString::from(normalized);
                pre_tokenizer
                    .pre_tokenize(&mut words)
                    .map_err(|e| DataError::Config(format!("pre-tokenising text: {e}")))?;
                for (word, _, _) in words.get_splits(OffsetReferential::Original, OffsetType::Byte)
                {
                    *counts.entry(word.to_owned()).or_insert(0) += 1;
                }
            }
            Ok(counts)
        })
        .try_reduce(HashMap::new, |mut a, b| {
            for (word, n) in b {
                *a.entry(word).or_insert(0) += n;
            }
            Ok(a)
        })?;
    for (word, n) in counts {
        *totals.entry(word).or_insert(0) += n;
    }
    Ok(())
}

/// What to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VocabOptions {
    /// Stop when the vocabulary has this many tokens (special tokens included).
    pub vocab_size: usize,
    /// Stop when the most frequent pair occurs fewer times than this.
    pub min_frequency: u64,
    /// Keep at most this many distinct characters (the most frequent).
    pub limit_alphabet: usize,
}

/// The vocabulary being built: tokens by id and ids by token.
#[derive(Default)]
struct Vocab {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Vocab {
    fn id(&mut self, token: &str) -> u32 {
        if let Some(&id) = self.ids.get(token) {
            return id;
        }
        let id = self.tokens.len() as u32;
        self.tokens.push(token.to_owned());
        self.ids.insert(token.to_owned(), id);
        id
    }
}

/// The characters to keep: the `limit` most frequent (ties to the lower code point).
fn alphabet(words: &[(String, u64)], limit: usize) -> Vec<char> {
    let mut counts: BTreeMap<char, u64> = BTreeMap::new();
    for (word, n) in words {
        for c in word.chars() {
            *counts.entry(c).or_insert(0) += n;
        }
    }
    let mut by_count: Vec<(char, u64)> = counts.into_iter().collect();
    by_count.sort_by_key(|&(c, n)| (Reverse(n), c));
    by_count.truncate(limit);
    let mut kept: Vec<char> = by_count.into_iter().map(|(c, _)| c).collect();
    kept.sort_unstable();
    kept
}

type Pair = (u32, u32);

/// Trains the vocabulary (tokens in id order, special tokens first) from sorted word counts.
pub fn train_vocab(words: &[(String, u64)], options: VocabOptions) -> Vec<String> {
    let mut vocab = Vocab::default();
    for token in SPECIAL_TOKENS {
        vocab.id(token);
    }
    let kept = alphabet(words, options.limit_alphabet);
    for c in &kept {
        vocab.id(&c.to_string());
    }
    let kept: HashSet<char> = kept.into_iter().collect();
    // Each word as symbol ids; characters outside the alphabet are dropped, as in `tokenizers`.
    let mut symbols: Vec<Vec<u32>> = Vec::with_capacity(words.len());
    for (word, _) in words {
        let mut ids = Vec::with_capacity(word.len());
        for (i, c) in word.chars().filter(|c| kept.contains(c)).enumerate() {
            let token = if i == 0 {
                c.to_string()
            } else {
                format!("{CONTINUATION}{c}")
            };
            ids.push(vocab.id(&token));
        }
        symbols.push(ids);
    }
    let counts: Vec<i64> = words.iter().map(|(_, n)| *n as i64).collect();
    let mut pair_counts: HashMap<Pair, i64> = HashMap::new();
    let mut where_seen: HashMap<Pair, HashSet<usize>> = HashMap::new();
    for (w, ids) in symbols.iter().enumerate() {
        for pair in ids.windows(2) {
            let pair = (pair[0], pair[1]);
            *pair_counts.entry(pair).or_insert(0) += counts[w];
            where_seen.entry(pair).or_default().insert(w);
        }
    }
    // Max-heap on count; among equal counts the lower pair of ids first.
    let mut queue: BinaryHeap<(i64, Reverse<Pair>)> = pair_counts
        .iter()
        .map(|(&pair, &n)| (n, Reverse(pair)))
        .collect();
    while vocab.tokens.len() < options.vocab_size {
        let Some((count, Reverse(pair))) = queue.pop() else {
            break;
        };
        let current = pair_counts.get(&pair).copied().unwrap_or(0);
        if current != count {
            if current > 0 {
                queue.push((current, Reverse(pair)));
            }
            continue;
        }
        if (current as u64) < options.min_frequency.max(1) {
            break;
        }
        let (left, right) = (
            &vocab.tokens[pair.0 as usize],
            &vocab.tokens[pair.1 as usize],
        );
        let merged = format!(
            "{left}{}",
            right.strip_prefix(CONTINUATION).unwrap_or(right)
        );
        let new_id = vocab.id(&merged);
        let mut touched: HashSet<Pair> = HashSet::new();
        let mut affected: Vec<usize> = where_seen
            .remove(&pair)
            .map(|set| set.into_iter().collect())
            .unwrap_or_default();
        affected.sort_unstable();
        for w in affected {
            let n = counts[w];
            let ids = &mut symbols[w];
            let mut change = |p: Pair, delta: i64| {
                *pair_counts.entry(p).or_insert(0) += delta;
                if delta > 0 {
                    where_seen.entry(p).or_default().insert(w);
                    touched.insert(p);
                }
            };
            let mut i = 0;
            while i + 1 < ids.len() {
                if (ids[i], ids[i + 1]) == pair {
                    if i > 0 {
                        change((ids[i - 1], pair.0), -n);
                        change((ids[i - 1], new_id), n);
                    }
                    if i + 2 < ids.len() {
                        change((pair.1, ids[i + 2]), -n);
                        change((new_id, ids[i + 2]), n);
                    }
                    ids[i] = new_id;
                    ids.remove(i + 1);
                }
                i += 1;
            }
        }
        pair_counts.remove(&pair);
        let mut touched: Vec<Pair> = touched.into_iter().collect();
        touched.sort_unstable();
        for p in touched {
            if let Some(&n) = pair_counts.get(&p).filter(|&&n| n > 0) {
                queue.push((n, Reverse(p)));
            }
        }
    }
    vocab.tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[(&str, u64)]) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = list.iter().map(|(w, n)| (w.to_string(), *n)).collect();
        v.sort();
        v
    }

    fn options(vocab_size: usize) -> VocabOptions {
        VocabOptions {
            vocab_size,
            min_frequency: 2,
            limit_alphabet: 1000,
        }
    }

    #[test]
    fn merges_the_most_frequent_pairs_with_continuation_prefixes() {
        let w = words(&[
            ("hug", 10),
            ("pug", 5),
            ("pun", 12),
            ("bun", 4),
            ("hugs", 5),
        ]);
        let vocab = train_vocab(&w, options(100));
        assert_eq!(vocab[..5], SPECIAL_TOKENS);
        // Alphabet (sorted), then continuations in word order, then merges.
        // The alphabet in code point order comes right after the special tokens.
        assert_eq!(vocab[5..12], ["b", "g", "h", "n", "p", "s", "u"]);
        assert!(vocab.contains(&"##un".to_owned()), "{vocab:?}");
        assert!(vocab.contains(&"hug".to_owned()), "{vocab:?}");
        assert!(vocab.iter().all(|t| !t.contains("####")));
    }

    #[test]
    fn stops_at_the_size_and_below_min_frequency() {
        let w = words(&[("abab", 3), ("cd", 1)]);
        // 5 special tokens, a b c d, then ##b ##a ##d: 12 before any merge.
        let small = train_vocab(&w, options(13));
        assert_eq!(small.len(), 13);
        assert_eq!(small[12], "ab", "ties go to the lowest ids: (a, ##b)");
        let all = train_vocab(&w, options(1000));
        // "cd" occurs once: below min_frequency 2, never merged.
        assert!(!all.contains(&"cd".to_owned()), "{all:?}");
        assert!(all.contains(&"abab".to_owned()), "{all:?}");
    }

    #[test]
    fn the_alphabet_keeps_the_most_frequent_characters() {
        let w = words(&[("aaab", 5), ("z", 1)]);
        let vocab = train_vocab(
            &w,
            VocabOptions {
                vocab_size: 7,
                min_frequency: 2,
                limit_alphabet: 2,
            },
        );
        assert_eq!(vocab[5..7], ["a", "b"]);
    }
}
