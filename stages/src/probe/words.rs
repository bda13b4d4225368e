//! The probe's data: the tagged sentences split into training and held-out documents, each
//! word tokenized with the encoder's tokenizer and represented by its first WordPiece, and
//! what the controls need from the training split: each word type's tags (for the
//! majority-tag baseline and the ambiguous and unseen tokens) and a fixed random tag per type
//! (Hewitt & Liang's control task).
//!
//! A word type is the word lower-cased: the key of the majority tagger, the control task and
//! the ambiguous/unseen classes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use tokenizers::{EncodeInput, InputSequence};

use super::Split;
use crate::error::{DataError, Result};
use crate::glue::Feature;
use crate::tagged::TaggedSentence;
use crate::tokenizer::BertTokenizer;

/// One sentence as the encoder reads it, and where its probed words are.
pub struct ProbeSentence {
    /// `doc:line`.
    pub id: String,
    /// `[CLS] tokens [SEP]`, segment 0.
    pub feature: Feature,
    /// Per probed word: its index in the sentence, the position of its first WordPiece in
    /// `feature`, the word, and its gold tag id.
    pub words: Vec<ProbeWord>,
}

/// One probed word of a sentence.
pub struct ProbeWord {
    /// Its index among the sentence's words.
    pub index: usize,
    /// The position of its first WordPiece in the encoder's input.
    pub position: usize,
    /// The word as written.
    pub word: String,
    /// Its tag's id in the tagset.
    pub gold: u8,
}

/// The sentences of one side of the split.
pub struct Side {
    /// The documents.
    pub docs: Vec<String>,
    /// The sentences, in document order.
    pub sentences: Vec<ProbeSentence>,
}

impl Side {
    /// Every probed word, in order, with its sentence's index.
    pub fn words(&self) -> impl Iterator<Item = (usize, &ProbeWord)> {
        self.sentences
            .iter()
            .enumerate()
            .flat_map(|(s, sentence)| sentence.words.iter().map(move |w| (s, w)))
    }

    /// Each sentence's rows: the range of its words' numbers among the side's words (in
    /// [`Side::words`] order), where its features and predictions are.
    pub fn rows(&self) -> Vec<std::ops::Range<usize>> {
        let mut start = 0;
        self.sentences
            .iter()
            .map(|s| {
                let rows = start..start + s.words.len();
                start = rows.end;
                rows
            })
            .collect()
    }

    /// Number of probed words.
    pub fn len(&self) -> usize {
        self.sentences.iter().map(|s| s.words.len()).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The probe's data.
pub struct ProbeData {
    /// The tag names, by id.
    pub tags: Vec<String>,
    /// The training documents' sentences.
    pub train: Side,
    /// The held-out documents' sentences.
    pub eval: Side,
    /// Words past the encoder's positions (cut from long sentences) and words the tokenizer
    /// gave no WordPiece: not probed.
    pub dropped_words: usize,
}

/// The word type of `word`.
pub fn word_type(word: &str) -> String {
    word.to_lowercase()
}

/// Holds out whole documents, stratified over the genres: within each genre (documents in
/// name order), the first `eval_per_genre` documents are held out and the next
/// `train_per_genre` (all the rest when `None`) are the probe's training split.
pub fn split_documents(sentences: &[TaggedSentence], split: &Split) -> (Vec<String>, Vec<String>) {
    let mut by_genre: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in sentences {
        by_genre.entry(&s.genre).or_default().insert(&s.doc);
    }
    let (mut train, mut eval) = (Vec::new(), Vec::new());
    for docs in by_genre.values() {
        let docs: Vec<&str> = docs.iter().copied().collect();
        let held = split.eval_files_per_genre.min(docs.len());
        eval.extend(docs[..held].iter().map(|d| d.to_string()));
        let rest = &docs[held..];
        let take = split
            .train_files_per_genre
            .unwrap_or(rest.len())
            .min(rest.len());
        train.extend(rest[..take].iter().map(|d| d.to_string()));
    }
    (train, eval)
}

/// Tokenizes the sentences of `docs` with `tokenizer`: `[CLS]` the words' WordPieces `[SEP]`,
/// cut to `max_seq_len`; each word probed at its first WordPiece. Returns the side and the
/// words dropped.
fn tokenize_side(
    sentences: &[&TaggedSentence],
    docs: Vec<String>,
    tokenizer: &BertTokenizer,
    tag_of: &dyn Fn(&TaggedSentence, usize) -> Option<u8>,
    max_seq_len: usize,
    source: &Path,
) -> Result<(Side, usize)> {
    let special = tokenizer.special();
    let mut dropped = 0;
    let mut out = Vec::with_capacity(sentences.len());
    for sentence in sentences {
        let words: Vec<&str> = sentence.words.iter().map(String::as_str).collect();
        let input = EncodeInput::Single(InputSequence::from(words.as_slice()));
        let encoding = tokenizer.inner().encode(input, false).map_err(|e| {
            DataError::invalid(source, format!("tokenizing {}: {e}", sentence.id()))
        })?;
        let room = max_seq_len - 2;
        let ids = encoding.get_ids();
        let kept = ids.len().min(room);
        let mut input_ids = Vec::with_capacity(kept + 2);
        input_ids.push(special.cls);
        input_ids.extend_from_slice(&ids[..kept]);
        input_ids.push(special.sep);
        let mut first: Vec<Option<usize>> = vec![None; words.len()];
        for (position, word) in encoding.get_word_ids().iter().enumerate().take(kept) {
            if let Some(word) = word {
                first[*word as usize].get_or_insert(position + 1);
            }
        }
        let mut probed = Vec::new();
        for (index, position) in first.iter().enumerate() {
            match (position, tag_of(sentence, index)) {
                (Some(position), Some(gold)) => probed.push(ProbeWord {
                    index,
                    position: *position,
                    word: sentence.words[index].clone(),
                    gold,
                }),
                _ => dropped += 1,
            }
        }
        let n = input_ids.len();
        out.push(ProbeSentence {
            id: sentence.id(),
            feature: Feature {
                index: out.len().to_string(),
                input_ids,
                segment_ids: vec![0; n],
                label: None,
            },
            words: probed,
        });
    }
    Ok((
        Side {
            docs,
            sentences: out,
        },
        dropped,
    ))
}

/// Splits, tokenizes and tags `sentences` (read from `source`) for a probe of `tagset`.
pub fn prepare(
    sentences: &[TaggedSentence],
    source: &Path,
    tokenizer: &BertTokenizer,
    split: &Split,
    brown_tags: bool,
    max_seq_len: usize,
) -> Result<ProbeData> {
    let tags: Vec<String> = if brown_tags {
        let mut all: Vec<String> = sentences
            .iter()
            .flat_map(|s| s.brown.iter().cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    } else {
        crate::tagged::tags::UNIVERSAL
            .iter()
            .map(|t| t.to_string())
            .collect()
    };
    if tags.len() > u8::MAX as usize {
        return Err(DataError::invalid(
            source,
            format!("{} distinct tags: expected at most 255", tags.len()),
        ));
    }
    let ids: HashMap<&str, u8> = tags
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i as u8))
        .collect();
    let tag_of = |s: &TaggedSentence, i: usize| {
        let tag = if brown_tags {
            &s.brown[i]
        } else {
            &s.universal[i]
        };
        ids.get(tag.as_str()).copied()
    };
    let (train_docs, eval_docs) = split_documents(sentences, split);
    let pick = |docs: &[String]| -> Vec<&TaggedSentence> {
        let docs: HashSet<&str> = docs.iter().map(String::as_str).collect();
        sentences
            .iter()
            .filter(|s| docs.contains(s.doc.as_str()))
            .collect()
    };
    let (train_sentences, eval_sentences) = (pick(&train_docs), pick(&eval_docs));
    if train_sentences.is_empty() || eval_sentences.is_empty() {
        return Err(DataError::invalid(
            source,
            format!(
                "the split leaves {} training and {} held-out sentences: expected both sides non-empty (split.eval_files_per_genre, split.train_files_per_genre)",
                train_sentences.len(),
                eval_sentences.len()
            ),
        ));
    }
    let (train, dropped_train) = tokenize_side(
        &train_sentences,
        train_docs,
        tokenizer,
        &tag_of,
        max_seq_len,
        source,
    )?;
    let (eval, dropped_eval) = tokenize_side(
        &eval_sentences,
        eval_docs,
        tokenizer,
        &tag_of,
        max_seq_len,
        source,
    )?;
    Ok(ProbeData {
        tags,
        train,
        eval,
        dropped_words: dropped_train + dropped_eval,
    })
}

/// What the training split says about each word type: its tags' counts.
pub struct TypeTags {
    counts: HashMap<String, BTreeMap<u8, usize>>,
    /// The most frequent tag of the training split (for unseen words).
    most_common: u8,
    /// The training split's tag distribution (the control task draws from it).
    distribution: Vec<f64>,
}

impl TypeTags {
    /// Counts the training split's tags per word type; `classes` tags in all.
    pub fn count(train: &Side, classes: usize) -> Self {
        let mut counts: HashMap<String, BTreeMap<u8, usize>> = HashMap::new();
        let mut totals = vec![0usize; classes];
        for (_, w) in train.words() {
            *counts
                .entry(word_type(&w.word))
                .or_default()
                .entry(w.gold)
                .or_default() += 1;
            totals[w.gold as usize] += 1;
        }
        let most_common = argmax_count(totals.iter().enumerate().map(|(t, &c)| (t as u8, c)));
        let sum: usize = totals.iter().sum();
        let distribution = totals
            .iter()
            .map(|&c| c as f64 / sum.max(1) as f64)
            .collect();
        TypeTags {
            counts,
            most_common,
            distribution,
        }
    }

    /// How many distinct tags the type of `word` had in the training split (0: unseen; more
    /// than 1: ambiguous).
    pub fn distinct(&self, word: &str) -> usize {
        self.counts.get(&word_type(word)).map_or(0, BTreeMap::len)
    }

    /// The majority-tag baseline: the type's most frequent training tag (ties to the lowest
    /// id), or the training split's most frequent tag for an unseen type.
    pub fn majority(&self, word: &str) -> u8 {
        match self.counts.get(&word_type(word)) {
            Some(tags) => argmax_count(tags.iter().map(|(&t, &c)| (t, c))),
            None => self.most_common,
        }
    }

    /// The control task's tag of `word`'s type: drawn once per type from the training split's
    /// tag distribution by a hash of the type and `seed` (Hewitt & Liang 2019), so every
    /// occurrence of a type, in training or held out, seen or not, has the same control tag.
    pub fn control(&self, word: &str, seed: u64) -> u8 {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&seed.to_le_bytes());
        hasher.update(word_type(word).as_bytes());
        let bytes: [u8; 8] = hasher.finalize().as_bytes()[..8]
            .try_into()
            .expect("8 bytes");
        let u = (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64;
        let mut cumulative = 0.0;
        for (tag, p) in self.distribution.iter().enumerate() {
            cumulative += p;
            if u < cumulative {
                return tag as u8;
            }
        }
        self.most_common
    }
}

/// The key of the largest count, the lowest key among ties.
fn argmax_count(counts: impl Iterator<Item = (u8, usize)>) -> u8 {
    let mut best = (0u8, 0usize);
    for (tag, count) in counts {
        if count > best.1 {
            best = (tag, count);
        }
    }
    best.0
}
