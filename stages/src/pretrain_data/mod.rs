//! The `pretrain_data` stage kind: tokenizes a document stream and packs it into ELECTRA
//! pretraining examples, written as binary shards.
//!
//! ```yaml
//! examples:
//!   kind: pretrain_data
//!   params:
//!     corpus: "@wiki/corpus.txt"
//!     tokenizer: "@tok/tokenizer.json"
//!     max_seq_len: 128            # default 128
//!     seed: 0                     # packing decisions; default 0
//!     single_segment_prob: 0.1    # default 0.1, as ELECTRA
//!     random_length_prob: 0.05    # default 0.05, as ELECTRA
//!     shard_examples: 100000      # examples per shard file
//! ```
//!
//! Output `shards/` (see [`shards`] for the format), with the tokenizer the examples were made
//! with beside its index ([`shards_tokenizer`]); [`PretrainingData`] reads it back.
//! Reading, tokenizing (on the stage's CPUs) and packing run as a pipeline; the packing is
//! sequential, so the output depends only on the inputs and the seed, never on threads.

mod builder;
mod reader;
pub mod shards;

use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use electra_pipe_api::{
    parse_params, Metrics, ParamError, Params, StageContext, StageError, StageKind, StagePlan,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::json;

pub use builder::{ExampleBuilder, PackedExample, PackingOptions, MIN_RANDOM_LENGTH};
pub use reader::{Batch, Cursor, Example, ExampleStream, PretrainingData};
pub use shards::{ShardIndex, ShardWriter};

use crate::corpus::DocumentReader;
use crate::error::{DataError, Result};
use crate::tokenizer::BertTokenizer;

/// The output directory of a `pretrain_data` stage.
pub const SHARDS_DIR: &str = "shards";

/// The tokenizer the shards in `dir` were made with; the error says what writes it.
pub fn shards_tokenizer(dir: &Path) -> Result<std::path::PathBuf> {
    crate::tokenizer::copied_into(dir, "a pretrain_data stage, beside index.json,")
}

/// Text handed to the tokenizer at once: big enough to keep every core busy.
const CHUNK_BYTES: u64 = 1 << 20;

/// Params of a `pretrain_data` stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainDataParams {
    /// A document stream (`@corpus/corpus.txt`).
    pub corpus: String,
    /// A `tokenizer.json` (`@tok/tokenizer.json`).
    pub tokenizer: String,
    /// Longest example, special tokens included.
    #[serde(default = "default_max_seq_len")]
    pub max_seq_len: usize,
    /// Seed of the packing decisions.
    #[serde(default)]
    pub seed: u64,
    /// Chance that an example is a single segment.
    #[serde(default = "default_single_segment_prob")]
    pub single_segment_prob: f64,
    /// Chance that an example gets a random shorter target length.
    #[serde(default = "default_random_length_prob")]
    pub random_length_prob: f64,
    /// Examples per shard file.
    #[serde(default = "default_shard_examples")]
    pub shard_examples: usize,
}

fn default_max_seq_len() -> usize {
    128
}
fn default_single_segment_prob() -> f64 {
    0.1
}
fn default_random_length_prob() -> f64 {
    0.05
}
fn default_shard_examples() -> usize {
    100_000
}

impl PretrainDataParams {
    /// Parses and validates params.
    pub fn parse(params: &Params) -> Result<Self, ParamError> {
        let parsed: PretrainDataParams = parse_params(params)?;
        if parsed.max_seq_len < MIN_RANDOM_LENGTH || parsed.max_seq_len > usize::from(u16::MAX) {
            return Err(ParamError::new(
                "max_seq_len",
                format!(
                    "{} is too small: expected at least {MIN_RANDOM_LENGTH} (room for [CLS] A [SEP] B [SEP]) and at most {}",
                    parsed.max_seq_len,
                    u16::MAX
                ),
            ));
        }
        for (field, p) in [
            ("single_segment_prob", parsed.single_segment_prob),
            ("random_length_prob", parsed.random_length_prob),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(ParamError::new(
                    field,
                    format!("expected a probability in [0, 1], found {p}"),
                ));
            }
        }
        if parsed.shard_examples == 0 {
            return Err(ParamError::new("shard_examples", "expected at least 1"));
        }
        Ok(parsed)
    }

    fn packing(&self) -> PackingOptions {
        PackingOptions {
            max_seq_len: self.max_seq_len,
            single_segment_prob: self.single_segment_prob,
            random_length_prob: self.random_length_prob,
        }
    }
}

/// The `pretrain_data` stage kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct PretrainData;

impl StageKind for PretrainData {
    fn name(&self) -> &'static str {
        "pretrain_data"
    }

    fn version(&self) -> u32 {
        // v2: the tokenizer is copied into `shards/`.
        2
    }

    fn summary(&self) -> &'static str {
        "tokenizes a corpus and packs ELECTRA pretraining examples ([CLS] A [SEP] B [SEP]) into shards"
    }

    fn plan(&self, params: &Params) -> Result<StagePlan, ParamError> {
        let params = PretrainDataParams::parse(params)?;
        Ok(StagePlan {
            inputs: vec![params.corpus.clone(), params.tokenizer.clone()],
            outputs: vec![SHARDS_DIR.to_owned()],
            ..StagePlan::default()
        })
    }

    fn run(&self, params: &Params, ctx: &StageContext<'_>) -> Result<Metrics, StageError> {
        let params = PretrainDataParams::parse(params)?;
        let tokenizer = BertTokenizer::load(Path::new(&params.tokenizer))?;
        let stats = build_shards(&params, &tokenizer, &ctx.out_dir.join(SHARDS_DIR), ctx)?;
        Ok(stats.metrics())
    }
}

/// Documents read from the corpus, their sentences flattened.
struct TextChunk {
    sentences: Vec<String>,
    /// Sentences per document, in order.
    documents: Vec<usize>,
    /// Corpus bytes consumed up to the end of this chunk.
    bytes_read: u64,
}

/// A [`TextChunk`] after tokenization.
struct IdChunk {
    sentences: Vec<Vec<u32>>,
    documents: Vec<usize>,
}

/// What the packing produced.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PackStats {
    /// Documents read.
    pub documents: u64,
    /// Sentences read.
    pub sentences: u64,
    /// Tokens of all sentences, before any truncation.
    pub sentence_tokens: u64,
    /// Examples written.
    pub examples: u64,
    /// Tokens written, special tokens included.
    pub tokens: u64,
    /// Examples with one segment.
    pub single_segment: u64,
    /// Examples built towards a random shorter length.
    pub random_length: u64,
    /// Shard files written.
    pub shards: u64,
}

impl PackStats {
    /// The stage's metrics.
    pub fn metrics(&self) -> Metrics {
        let fraction = |n: u64| n as f64 / self.examples.max(1) as f64;
        Metrics::from([
            ("documents".to_owned(), json!(self.documents)),
            ("sentences".to_owned(), json!(self.sentences)),
            ("sentence_tokens".to_owned(), json!(self.sentence_tokens)),
            ("examples".to_owned(), json!(self.examples)),
            ("tokens".to_owned(), json!(self.tokens)),
            ("shards".to_owned(), json!(self.shards)),
            ("mean_length".to_owned(), json!(fraction(self.tokens))),
            (
                "single_segment_fraction".to_owned(),
                json!(fraction(self.single_segment)),
            ),
            (
                "random_length_fraction".to_owned(),
                json!(fraction(self.random_length)),
            ),
        ])
    }
}

/// Tokenizes `params.corpus` and writes shards into `dir`.
pub fn build_shards(
    params: &PretrainDataParams,
    tokenizer: &BertTokenizer,
    dir: &Path,
    ctx: &StageContext<'_>,
) -> Result<PackStats> {
    let corpus = Path::new(&params.corpus);
    let total = std::fs::metadata(corpus)
        .map_err(|e| DataError::io(format!("reading {}", corpus.display()), e))?
        .len();
    let pool = crate::parallel::worker_pool(ctx.cpus)?;
    let token_bytes = shards::token_bytes_for(tokenizer.vocab_size());
    let writer = ShardWriter::create(dir, token_bytes, params.shard_examples)?;
    let builder = ExampleBuilder::new(
        params.packing(),
        tokenizer.special(),
        ChaCha8Rng::seed_from_u64(params.seed),
    );
    let (text_tx, text_rx) = sync_channel::<Result<TextChunk>>(2);
    let (ids_tx, ids_rx) = sync_channel::<IdChunk>(2);
    let (writer, mut stats) = std::thread::scope(|scope| -> Result<(ShardWriter, PackStats)> {
        let reader = scope.spawn(|| read_chunks(corpus, text_tx));
        let packer = scope.spawn(|| pack(ids_rx, builder, writer));
        let tokenized = tokenize_chunks(&text_rx, &ids_tx, tokenizer, &pool, ctx, total);
        drop(ids_tx);
        drop(text_rx);
        let packed = packer.join().expect("the packing thread does not panic");
        reader.join().expect("the reading thread does not panic");
        tokenized?;
        packed
    })?;
    if stats.examples == 0 {
        return Err(DataError::invalid(
            corpus,
            "the corpus has no text to make examples of: expected sentences, a blank line after each document",
        ));
    }
    let index = writer.finish(ShardIndex {
        format_version: shards::FORMAT_VERSION,
        token_bytes,
        vocab_size: tokenizer.vocab_size(),
        max_seq_len: params.max_seq_len,
        special: tokenizer.special(),
        seed: params.seed,
        examples: 0,
        tokens: 0,
        shards: Vec::new(),
    })?;
    stats.shards = index.shards.len() as u64;
    crate::tokenizer::copy_into(Path::new(&params.tokenizer), dir)?;
    tracing::info!(
        examples = stats.examples,
        tokens = stats.tokens,
        shards = stats.shards,
        "pretraining shards written"
    );
    Ok(stats)
}

/// Reads documents in chunks of about [`CHUNK_BYTES`]; stops early if the receiver is gone.
fn read_chunks(corpus: &Path, out: SyncSender<Result<TextChunk>>) {
    let mut reader = match DocumentReader::open(corpus) {
        Ok(reader) => reader,
        Err(e) => {
            let _ = out.send(Err(e));
            return;
        }
    };
    let mut chunk = TextChunk {
        sentences: Vec::new(),
        documents: Vec::new(),
        bytes_read: 0,
    };
    let mut chunk_bytes = 0u64;
    while let Some(document) = reader.next_document() {
        let document = match document {
            Ok(document) => document,
            Err(e) => {
                let _ = out.send(Err(e));
                return;
            }
        };
        chunk_bytes += document.iter().map(|s| s.len() as u64 + 1).sum::<u64>();
        chunk.documents.push(document.len());
        chunk.sentences.extend(document);
        if chunk_bytes >= CHUNK_BYTES {
            chunk.bytes_read = reader.bytes_read();
            let full = std::mem::replace(
                &mut chunk,
                TextChunk {
                    sentences: Vec::new(),
                    documents: Vec::new(),
                    bytes_read: 0,
                },
            );
            chunk_bytes = 0;
            if out.send(Ok(full)).is_err() {
                return;
            }
        }
    }
    if !chunk.documents.is_empty() {
        chunk.bytes_read = reader.bytes_read();
        let _ = out.send(Ok(chunk));
    }
}

/// Tokenizes each chunk on the worker pool and passes it on; reports progress.
fn tokenize_chunks(
    input: &Receiver<Result<TextChunk>>,
    output: &SyncSender<IdChunk>,
    tokenizer: &BertTokenizer,
    pool: &rayon::ThreadPool,
    ctx: &StageContext<'_>,
    total: u64,
) -> Result<()> {
    for chunk in input {
        if ctx.cancel.is_cancelled() {
            return Err(DataError::Cancelled);
        }
        let chunk = chunk?;
        let texts: Vec<&str> = chunk.sentences.iter().map(String::as_str).collect();
        let sentences = pool.install(|| tokenizer.encode_ids(&texts))?;
        ctx.progress
            .update(chunk.bytes_read.min(total), Some(total), "bytes tokenized");
        let ids = IdChunk {
            sentences,
            documents: chunk.documents,
        };
        if output.send(ids).is_err() {
            // The packer stopped on an error; it reports it.
            return Ok(());
        }
    }
    Ok(())
}

/// Packs tokenized documents into examples, in corpus order.
fn pack(
    input: Receiver<IdChunk>,
    mut builder: ExampleBuilder,
    mut writer: ShardWriter,
) -> Result<(ShardWriter, PackStats)> {
    let mut stats = PackStats::default();
    let mut emit = |example: PackedExample, stats: &mut PackStats| -> Result<()> {
        stats.examples += 1;
        stats.tokens += example.input_ids.len() as u64;
        stats.single_segment += u64::from(!example.two_segments);
        stats.random_length += u64::from(example.random_length);
        writer.push(&example.input_ids)
    };
    for chunk in input {
        let mut sentences = chunk.sentences.into_iter();
        for &count in &chunk.documents {
            stats.documents += 1;
            for ids in sentences.by_ref().take(count) {
                stats.sentences += 1;
                stats.sentence_tokens += ids.len() as u64;
                if let Some(example) = builder.add_sentence(ids) {
                    emit(example, &mut stats)?;
                }
            }
            if let Some(example) = builder.end_document() {
                emit(example, &mut stats)?;
            }
        }
    }
    Ok((writer, stats))
}
