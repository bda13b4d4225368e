//! The `corpus` stage kind: reads pretraining text into a normalised document stream.
//!
//! ```yaml
//! wiki:
//!   kind: corpus
//!   params:
//!     inputs: ${data}/corpus/wikipedia-en-2015/AA   # files or directories (recursive), .gz too
//!     format: auto            # auto | wikiextractor | text
//!     max_bytes: 10000000     # optional: a slice of whole documents
//!     max_docs: 1000          # optional
//!     split_sentences: true   # split paragraphs into sentences (default)
//! ```
//!
//! Output `corpus.txt`: one sentence per line, a blank line after each document. Metrics:
//! documents, sentences, bytes, words, files read and whether a limit cut the stream.

mod formats;
mod sentences;
mod stream;

use std::path::{Path, PathBuf};

use electra_pipe_api::{
    parse_params, Metrics, ParamError, Params, StageContext, StageError, StageKind, StagePlan,
};
use serde::Deserialize;
use serde_json::json;

pub use formats::Format;
pub use sentences::{normalize_whitespace, split_sentences};
pub use stream::{CorpusStats, DocumentReader, DocumentWriter};

use crate::error::{DataError, Result};
use crate::inputs::InputPaths;
use crate::textfile::list_files;

/// The output file of a `corpus` stage.
pub const CORPUS_FILE: &str = "corpus.txt";

/// Params of a `corpus` stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusParams {
    /// Files or directories of text.
    pub inputs: InputPaths,
    /// How the files are laid out.
    #[serde(default = "default_format")]
    pub format: Format,
    /// Stop before the document that would take the output past this many bytes.
    pub max_bytes: Option<u64>,
    /// Stop after this many documents.
    pub max_docs: Option<u64>,
    /// Split each paragraph into sentences (otherwise a line is one sentence).
    #[serde(default = "default_true")]
    pub split_sentences: bool,
}

fn default_format() -> Format {
    Format::Auto
}

fn default_true() -> bool {
    true
}

impl CorpusParams {
    /// Parses and validates params.
    pub fn parse(params: &Params) -> Result<Self, ParamError> {
        let parsed: CorpusParams = parse_params(params)?;
        if parsed.inputs.paths().is_empty() {
            return Err(ParamError::new("inputs", "expected at least one path"));
        }
        for (field, value) in [
            ("max_bytes", parsed.max_bytes),
            ("max_docs", parsed.max_docs),
        ] {
            if value == Some(0) {
                return Err(ParamError::new(field, "expected a positive limit, found 0"));
            }
        }
        Ok(parsed)
    }
}

/// The `corpus` stage kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct Corpus;

impl StageKind for Corpus {
    fn name(&self) -> &'static str {
        "corpus"
    }

    fn version(&self) -> u32 {
        1
    }

    fn summary(&self) -> &'static str {
        "reads WikiExtractor or plain text (optionally gzip) into a sentence-per-line document stream"
    }

    fn plan(&self, params: &Params) -> Result<StagePlan, ParamError> {
        let params = CorpusParams::parse(params)?;
        Ok(StagePlan {
            inputs: params.inputs.paths().to_vec(),
            outputs: vec![CORPUS_FILE.to_owned()],
            ..StagePlan::default()
        })
    }

    fn run(&self, params: &Params, ctx: &StageContext<'_>) -> Result<Metrics, StageError> {
        let params = CorpusParams::parse(params)?;
        Ok(build_corpus(&params, &ctx.out_dir.join(CORPUS_FILE), ctx)?)
    }
}

/// Reads every input into `output`, reporting progress in input bytes.
fn build_corpus(params: &CorpusParams, output: &Path, ctx: &StageContext<'_>) -> Result<Metrics> {
    let mut files: Vec<PathBuf> = Vec::new();
    for input in params.inputs.paths() {
        files.extend(list_files(Path::new(input))?);
    }
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let mut writer = DocumentWriter::create(output, params.max_docs, params.max_bytes)?;
    let mut consumed = 0u64;
    let mut files_read = 0u64;
    let mut sentences = Vec::new();
    for file in &files {
        files_read += 1;
        let mut sink = |paragraphs: Vec<String>| -> Result<bool> {
            if ctx.cancel.is_cancelled() {
                return Err(DataError::Cancelled);
            }
            sentences.clear();
            for paragraph in &paragraphs {
                if params.split_sentences {
                    split_sentences(paragraph, &mut sentences);
                } else if !paragraph.trim().is_empty() {
                    sentences.push(normalize_whitespace(paragraph));
                }
            }
            writer.write(&sentences)
        };
        let mut progress = |bytes: u64| {
            consumed += bytes;
            if consumed % (1 << 20) < bytes {
                ctx.progress
                    .update(consumed.min(total), Some(total), "bytes read");
            }
        };
        if !formats::read_documents(file, params.format, &mut sink, &mut progress)? {
            break;
        }
    }
    let truncated = writer.is_full();
    let stats = writer.finish()?;
    if stats.documents == 0 {
        let looked_at = params.inputs.paths().join(", ");
        return Err(DataError::invalid(
            Path::new(&looked_at),
            format!(
                "the corpus is empty: {} file(s) read, no document with any text{}",
                files.len(),
                if truncated {
                    " within the max_bytes/max_docs limit (the first document is larger)"
                } else {
                    ""
                }
            ),
        ));
    }
    tracing::info!(
        documents = stats.documents,
        sentences = stats.sentences,
        bytes = stats.bytes,
        words = stats.words,
        files = files_read,
        truncated,
        "corpus written"
    );
    Ok(Metrics::from([
        ("documents".to_owned(), json!(stats.documents)),
        ("sentences".to_owned(), json!(stats.sentences)),
        ("bytes".to_owned(), json!(stats.bytes)),
        ("words".to_owned(), json!(stats.words)),
        ("files".to_owned(), json!(files_read)),
        ("truncated".to_owned(), json!(truncated)),
    ]))
}
