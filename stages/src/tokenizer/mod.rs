//! The `tokenizer` stage kind: a BERT WordPiece tokenizer, trained on a corpus or loaded.
//!
//! ```yaml
//! tok:
//!   kind: tokenizer
//!   params:
//!     train:                      # either train a vocabulary ...
//!       corpus: "@wiki/corpus.txt"
//!       vocab_size: 30522         # default 30522, special tokens included
//!       min_frequency: 2          # default 2
//!       limit_alphabet: 1000      # default 1000
//!     # load: ${data}/vocab/bert-base-uncased   # ... or load vocab.txt / tokenizer.json / a dir
//!     lowercase: true             # for training and vocab.txt (default true)
//! ```
//!
//! Outputs `tokenizer.json` (no truncation or padding: stages build their own sequences) and
//! `vocab.txt` (id order).

mod bert;
mod trainer;
mod transformers_files;
mod vocab;

use std::path::{Path, PathBuf};

use electra_pipe_api::{
    parse_params, Metrics, ParamError, Params, StageContext, StageError, StageKind, StagePlan,
};
use serde::Deserialize;
use serde_json::json;
use tokenizers::Tokenizer;

pub use bert::{from_tokenizer_json, from_vocab_txt, BertTokenizer, TrainOptions};
pub use transformers_files::{write_transformers_tokenizer, TOKENIZER_FILES};
pub use vocab::{read_vocab_txt, SpecialIds, SPECIAL_TOKENS};

use crate::error::{DataError, Result};
use crate::inputs::InputPaths;

/// The tokenizer file a `tokenizer` stage writes.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The vocabulary file a `tokenizer` stage writes.
pub const VOCAB_FILE: &str = "vocab.txt";

/// Copies `tokenizer` into a stage's data directory `dir` as [`TOKENIZER_FILE`], so the
/// stages that read that data know the tokenizer it was made with; returns the copy's path.
pub fn copy_into(tokenizer: &Path, dir: &Path) -> Result<PathBuf> {
    let copy = dir.join(TOKENIZER_FILE);
    std::fs::copy(tokenizer, &copy)
        .map_err(|e| DataError::io(format!("copying the tokenizer to {}", copy.display()), e))?;
    Ok(copy)
}

/// The tokenizer [`copy_into`] put into `dir`, data that `made_by` wrote (`"a pretrain_data
/// stage"`); the error names `dir` and says what writes the file.
pub fn copied_into(dir: &Path, made_by: &str) -> Result<PathBuf> {
    let path = dir.join(TOKENIZER_FILE);
    if path.is_file() {
        Ok(path)
    } else {
        Err(DataError::invalid(
            dir,
            format!("expected the tokenizer this data was made with, {TOKENIZER_FILE} ({made_by} writes it; rebuild data made before it did)"),
        ))
    }
}

/// How to train a vocabulary.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainParams {
    /// Corpus files (sentence per line), usually `@corpus/corpus.txt`.
    pub corpus: InputPaths,
    /// Target vocabulary size, special tokens included.
    #[serde(default = "default_vocab_size")]
    pub vocab_size: usize,
    /// Minimum count of a merge.
    #[serde(default = "default_min_frequency")]
    pub min_frequency: u64,
    /// Maximum distinct initial characters.
    #[serde(default = "default_limit_alphabet")]
    pub limit_alphabet: usize,
}

fn default_vocab_size() -> usize {
    30522
}
fn default_min_frequency() -> u64 {
    2
}
fn default_limit_alphabet() -> usize {
    1000
}

/// Params of a `tokenizer` stage: exactly one of `train` and `load`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerParams {
    /// Train a WordPiece vocabulary on a corpus.
    pub train: Option<TrainParams>,
    /// Load a `vocab.txt`, a `tokenizer.json`, or a directory holding either.
    pub load: Option<String>,
    /// Lower-case the text (training and `vocab.txt`); default true.
    pub lowercase: Option<bool>,
}

impl TokenizerParams {
    /// Parses and validates params.
    pub fn parse(params: &Params) -> Result<Self, ParamError> {
        let parsed: TokenizerParams = parse_params(params)?;
        match (&parsed.train, &parsed.load) {
            (Some(_), Some(_)) => Err(ParamError::new(
                "",
                "both `train` and `load` are set: expected exactly one",
            )),
            (None, None) => Err(ParamError::new(
                "",
                "expected `train: {corpus: ...}` or `load: <vocab.txt | tokenizer.json | dir>`",
            )),
            (Some(train), None) => {
                if train.corpus.paths().is_empty() {
                    return Err(ParamError::new(
                        "train.corpus",
                        "expected at least one path",
                    ));
                }
                if train.vocab_size <= SPECIAL_TOKENS.len() || train.vocab_size > u32::MAX as usize
                {
                    return Err(ParamError::new(
                        "train.vocab_size",
                        format!(
                            "expected more than the {} special tokens (and less than 2^32), found {}",
                            SPECIAL_TOKENS.len(),
                            train.vocab_size
                        ),
                    ));
                }
                Ok(parsed)
            }
            (None, Some(_)) => Ok(parsed),
        }
    }

    fn input_paths(&self) -> Vec<String> {
        match (&self.train, &self.load) {
            (Some(train), _) => train.corpus.paths().to_vec(),
            (None, Some(load)) => vec![load.clone()],
            (None, None) => Vec::new(),
        }
    }
}

/// The `tokenizer` stage kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokenizerKind;

impl StageKind for TokenizerKind {
    fn name(&self) -> &'static str {
        "tokenizer"
    }

    fn version(&self) -> u32 {
        1
    }

    fn summary(&self) -> &'static str {
        "a BERT WordPiece tokenizer: trained on a corpus, or loaded from vocab.txt / tokenizer.json"
    }

    fn plan(&self, params: &Params) -> Result<StagePlan, ParamError> {
        let params = TokenizerParams::parse(params)?;
        Ok(StagePlan {
            inputs: params.input_paths(),
            outputs: vec![TOKENIZER_FILE.to_owned(), VOCAB_FILE.to_owned()],
            ..StagePlan::default()
        })
    }

    fn run(&self, params: &Params, ctx: &StageContext<'_>) -> Result<Metrics, StageError> {
        let params = TokenizerParams::parse(params)?;
        Ok(build(&params, ctx)?)
    }
}

/// Trains or loads, then writes `tokenizer.json` and `vocab.txt`.
fn build(params: &TokenizerParams, ctx: &StageContext<'_>) -> Result<Metrics> {
    let lowercase = params.lowercase.unwrap_or(true);
    let out = ctx.out_dir.join(TOKENIZER_FILE);
    let vocab_path = ctx.out_dir.join(VOCAB_FILE);
    // The vocabulary is written once: by training, or from the loaded tokenizer's model.
    let (tokenizer, source, tokens) = match (&params.train, &params.load) {
        (Some(train), _) => {
            let options = TrainOptions {
                vocab_size: train.vocab_size,
                min_frequency: train.min_frequency,
                lowercase,
                limit_alphabet: train.limit_alphabet,
            };
            ctx.progress.update(0, None, "training WordPiece");
            let files = train.corpus.paths().to_vec();
            let tokens = crate::parallel::worker_pool(ctx.cpus)?
                .install(|| bert::train_vocab(&files, &options))?;
            vocab::write_vocab_txt(&vocab_path, &tokens)?;
            let tokenizer = from_vocab_txt(&vocab_path, lowercase)?;
            (tokenizer, vocab_path, tokens)
        }
        (None, Some(load)) => {
            let (tokenizer, source) = load_any(Path::new(load), params.lowercase)?;
            let tokens = bert::vocab_in_id_order(&tokenizer, &source)?;
            vocab::write_vocab_txt(&vocab_path, &tokens)?;
            (tokenizer, source, tokens)
        }
        (None, None) => unreachable!("validated: train or load"),
    };
    tokenizer
        .save(&out, true)
        .map_err(|e| DataError::Config(format!("writing {}: {e}", out.display())))?;
    let special = SpecialIds::find(|t| tokenizer.token_to_id(t))
        .map_err(|missing| vocab::missing_specials(&source, &missing))?;
    tracing::info!(vocab_size = tokens.len(), source = %source.display(), "tokenizer written");
    Ok(Metrics::from([
        ("vocab_size".to_owned(), json!(tokens.len())),
        ("special_ids".to_owned(), json!(special)),
    ]))
}

/// Loads `path`: a `tokenizer.json`, a `vocab.txt`, or a directory holding one of them.
fn load_any(path: &Path, lowercase: Option<bool>) -> Result<(Tokenizer, PathBuf)> {
    let file = if path.is_dir() {
        let candidates = [path.join(TOKENIZER_FILE), path.join(VOCAB_FILE)];
        candidates
            .iter()
            .find(|c| c.is_file())
            .cloned()
            .ok_or_else(|| {
                DataError::invalid(
                    path,
                    format!("expected {TOKENIZER_FILE} or {VOCAB_FILE} in this directory"),
                )
            })?
    } else {
        path.to_owned()
    };
    let is_json = file.extension().is_some_and(|e| e == "json");
    let tokenizer = if is_json {
        if lowercase.is_some() {
            return Err(DataError::Config(format!(
                "params.lowercase: {} brings its own normaliser; `lowercase` applies to training and vocab.txt only",
                file.display()
            )));
        }
        from_tokenizer_json(&file)?
    } else {
        from_vocab_txt(&file, lowercase.unwrap_or(true))?
    };
    Ok((tokenizer, file))
}
