//! A BERT-style WordPiece tokenizer built on the Hugging Face `tokenizers` crate: BERT
//! normaliser and pre-tokeniser, WordPiece with `##` continuations, `[CLS] A [SEP] B [SEP]`
//! post-processing. Built from a `vocab.txt`, trained on a corpus, or loaded from a
//! `tokenizer.json`.

use std::collections::HashMap;
use std::path::Path;

use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, Model, Tokenizer};

use super::trainer;
use super::vocab::{missing_specials, SpecialIds, SPECIAL_TOKENS};
use crate::error::{DataError, Result};
use crate::textfile::LineReader;

/// Lines counted at once when training: bounds memory, keeps every core busy.
const COUNT_CHUNK_LINES: usize = 100_000;

/// The longest word WordPiece tries to split; longer ones become `[UNK]` (BERT's value).
const MAX_INPUT_CHARS_PER_WORD: usize = 100;

/// How to train a WordPiece vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainOptions {
    /// Target vocabulary size, special tokens included.
    pub vocab_size: usize,
    /// A merge must occur at least this often.
    pub min_frequency: u64,
    /// Lower-case (and strip accents from) the text first, as BERT uncased does.
    pub lowercase: bool,
    /// Keep at most this many distinct initial characters.
    pub limit_alphabet: usize,
}

fn tokenizer_error(what: String) -> impl FnOnce(tokenizers::Error) -> DataError {
    move |e| DataError::Config(format!("{what}: {e}"))
}

/// Gives `tokenizer` the BERT normaliser, pre-tokeniser and decoder.
fn bert_pipeline(tokenizer: &mut Tokenizer, lowercase: bool) {
    tokenizer.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)));
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer.with_decoder(Some(WordPieceDecoder::default()));
}

/// Registers the special tokens and the `[CLS] A [SEP] B [SEP]` post-processor.
fn finish_bert(tokenizer: &mut Tokenizer, source: &Path) -> Result<SpecialIds> {
    let special = SpecialIds::find(|t| tokenizer.token_to_id(t))
        .map_err(|missing| missing_specials(source, &missing))?;
    let added: Vec<AddedToken> = SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    tokenizer.add_special_tokens(&added);
    tokenizer.with_post_processor(Some(BertProcessing::new(
        ("[SEP]".to_owned(), special.sep),
        ("[CLS]".to_owned(), special.cls),
    )));
    Ok(special)
}

/// A BERT tokenizer from a checked `vocab.txt`.
pub fn from_vocab_txt(path: &Path, lowercase: bool) -> Result<Tokenizer> {
    super::vocab::read_vocab_txt(path)?;
    let model = WordPiece::from_file(&path.to_string_lossy())
        .unk_token("[UNK]".to_owned())
        .continuing_subword_prefix("##".to_owned())
        .max_input_chars_per_word(MAX_INPUT_CHARS_PER_WORD)
        .build()
        .map_err(tokenizer_error(format!("reading {}", path.display())))?;
    let mut tokenizer = Tokenizer::new(model);
    bert_pipeline(&mut tokenizer, lowercase);
    finish_bert(&mut tokenizer, path)?;
    Ok(tokenizer)
}

/// A tokenizer from a `tokenizer.json`, with any preset truncation and padding removed (the
/// stages build their own sequences).
pub fn from_tokenizer_json(path: &Path) -> Result<Tokenizer> {
    let mut tokenizer = Tokenizer::from_file(path).map_err(|e| {
        DataError::invalid(path, format!("expected a Hugging Face tokenizer.json: {e}"))
    })?;
    tokenizer
        .with_truncation(None)
        .map_err(tokenizer_error(format!(
            "clearing truncation of {}",
            path.display()
        )))?;
    tokenizer.with_padding(None);
    SpecialIds::find(|t| tokenizer.token_to_id(t))
        .map_err(|missing| missing_specials(path, &missing))?;
    Ok(tokenizer)
}

/// Trains a WordPiece vocabulary (tokens in id order) on text files, one sentence per line,
/// normalised and pre-tokenised as BERT does. Counting runs on the current rayon pool.
pub fn train_vocab(files: &[String], options: &TrainOptions) -> Result<Vec<String>> {
    let normalizer = BertNormalizer::new(true, true, None, options.lowercase);
    let mut counts = HashMap::new();
    let mut lines = Vec::with_capacity(COUNT_CHUNK_LINES);
    for file in files {
        let mut reader = LineReader::open(Path::new(file))?;
        while let Some(line) = reader.next_line() {
            let (_, text) = line?;
            if !text.trim().is_empty() {
                lines.push(text.to_owned());
            }
            if lines.len() == COUNT_CHUNK_LINES {
                trainer::count_words(&lines, &normalizer, &BertPreTokenizer, &mut counts)?;
                lines.clear();
            }
        }
    }
    trainer::count_words(&lines, &normalizer, &BertPreTokenizer, &mut counts)?;
    let mut words: Vec<(String, u64)> = counts.into_iter().collect();
    words.sort_unstable();
    if words.is_empty() {
        return Err(DataError::invalid(
            Path::new(&files.join(", ")),
            "no words to train a vocabulary on: expected text",
        ));
    }
    Ok(trainer::train_vocab(
        &words,
        trainer::VocabOptions {
            vocab_size: options.vocab_size,
            min_frequency: options.min_frequency,
            limit_alphabet: options.limit_alphabet,
        },
    ))
}

/// The tokens of `tokenizer`'s model in id order; an error if the ids have gaps.
pub fn vocab_in_id_order(tokenizer: &Tokenizer, source: &Path) -> Result<Vec<String>> {
    let vocab = tokenizer.get_model().get_vocab();
    let mut tokens = vec![None; vocab.len()];
    for (token, id) in vocab {
        match tokens.get_mut(id as usize) {
            Some(slot) => *slot = Some(token),
            None => {
                return Err(DataError::invalid(
                    source,
                    format!(
                        "token id {id} is outside 0..{}: expected contiguous ids",
                        tokens.len()
                    ),
                ))
            }
        }
    }
    tokens
        .into_iter()
        .enumerate()
        .map(|(id, token)| {
            token.ok_or_else(|| {
                DataError::invalid(
                    source,
                    format!("no token has id {id}: expected contiguous ids"),
                )
            })
        })
        .collect()
}

/// A loaded BERT tokenizer as the data stages use it: ids only, no special tokens added,
/// and special-token text in the input (`[SEP]` in a Wikipedia sentence) kept as plain text.
pub struct BertTokenizer {
    inner: Tokenizer,
    special: SpecialIds,
}

impl BertTokenizer {
    /// Loads the `tokenizer.json` written by a `tokenizer` stage.
    pub fn load(path: &Path) -> Result<Self> {
        let mut inner = from_tokenizer_json(path)?;
        let special = SpecialIds::find(|t| inner.token_to_id(t))
            .map_err(|missing| missing_specials(path, &missing))?;
        inner.set_encode_special_tokens(true);
        Ok(BertTokenizer { inner, special })
    }

    /// The special tokens' ids.
    pub fn special(&self) -> SpecialIds {
        self.special
    }

    /// Number of ids (the embedding table's size).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The token of `id`, for messages and tests.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The ids of each text, without special tokens; runs on the current rayon pool.
    pub fn encode_ids(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let encodings = self
            .inner
            .encode_batch_fast(texts.to_vec(), false)
            .map_err(tokenizer_error("tokenizing".to_owned()))?;
        Ok(encodings
            .into_iter()
            .map(|e| e.get_ids().to_vec())
            .collect())
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}
