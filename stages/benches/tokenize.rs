//! Tokenizing the ~99 MB Wikipedia slice into pretraining shards, against the raw
//! `tokenizers` batch-encoding rate measured in the same run on the same CPUs.
//!
//! ```text
//! cargo bench -p electra-stages --bench tokenize [-- DATA_DIR [CPUS]]
//! ```
//! DATA_DIR defaults to `$ELECTRA_PIPE_DATA` or `../shared/data`; CPUS to 2.

use std::path::Path;
use std::time::Instant;

use electra_pipe_api::StageKind;
use electra_stages::corpus::{Corpus, DocumentReader};
use electra_stages::pretrain_data::{build_shards, PretrainDataParams};
use electra_stages::tokenizer::{from_vocab_txt, BertTokenizer, TokenizerKind};
use serde_json::json;

mod common;

use common::{context, data_dir};

/// Text per `encode_batch` call in the raw measurement: the stage's own chunk size.
const RAW_CHUNK_BYTES: usize = 1 << 20;

/// Sentences of the corpus in chunks of about [`RAW_CHUNK_BYTES`].
fn sentence_chunks(corpus: &Path) -> Vec<Vec<String>> {
    let mut chunks = vec![Vec::new()];
    let mut bytes = 0;
    for document in DocumentReader::open(corpus).unwrap() {
        for sentence in document.unwrap() {
            bytes += sentence.len() + 1;
            chunks.last_mut().unwrap().push(sentence);
        }
        if bytes >= RAW_CHUNK_BYTES {
            chunks.push(Vec::new());
            bytes = 0;
        }
    }
    chunks
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let data = data_dir(args.next());
    let cpus: usize = args
        .next()
        .map_or(2, |c| c.parse().expect("CPUS is a number"));
    let scratch = tempfile::tempdir().unwrap();

    let started = Instant::now();
    let corpus_dir = scratch.path().join("corpus");
    let wiki = data.join("corpus/wikipedia-en-2015/AA");
    Corpus
        .run(
            &json!({"inputs": wiki}),
            &context(&corpus_dir, "corpus", cpus),
        )
        .unwrap();
    let corpus_secs = started.elapsed().as_secs_f64();
    let corpus = corpus_dir.join("out/corpus.txt");
    let corpus_mb = std::fs::metadata(&corpus).unwrap().len() as f64 / 1e6;
    let raw_mb = dir_bytes(&wiki) as f64 / 1e6;

    let tok_dir = scratch.path().join("tok");
    let vocab = data.join("vocab/bert-base-uncased/vocab.txt");
    TokenizerKind
        .run(&json!({"load": vocab}), &context(&tok_dir, "tok", cpus))
        .unwrap();
    let tokenizer_json = tok_dir.join("out/tokenizer.json");
    let tokenizer = BertTokenizer::load(&tokenizer_json).unwrap();
    let raw = from_vocab_txt(&vocab, true).unwrap();

    let chunks = sentence_chunks(&corpus);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cpus)
        .build()
        .unwrap();
    let time_raw = |fast: bool| {
        let started = Instant::now();
        let mut tokens = 0usize;
        for chunk in &chunks {
            let inputs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let encodings = pool.install(|| {
                if fast {
                    raw.encode_batch_fast(inputs, false).unwrap()
                } else {
                    raw.encode_batch(inputs, false).unwrap()
                }
            });
            tokens += encodings.iter().map(|e| e.len()).sum::<usize>();
        }
        (started.elapsed().as_secs_f64(), tokens)
    };
    let (raw_secs, raw_tokens) = time_raw(false);
    let (fast_secs, _) = time_raw(true);

    let shards_dir = scratch.path().join("shards");
    let params = PretrainDataParams::parse(&json!({
        "corpus": corpus,
        "tokenizer": tokenizer_json,
    }))
    .unwrap();
    let ctx = context(&shards_dir, "examples", cpus);
    let started = Instant::now();
    let stats = build_shards(&params, &tokenizer, &ctx.out_dir.join("shards"), &ctx).unwrap();
    let stage_secs = started.elapsed().as_secs_f64();

    println!("Wikipedia slice: {raw_mb:.1} MB WikiExtractor → {corpus_mb:.1} MB corpus.txt ({corpus_secs:.1} s for the corpus stage); {cpus} CPUs");
    println!(
        "tokens: {raw_tokens} (raw encode_batch), {} in sentences (stage), {} examples",
        stats.sentence_tokens, stats.examples
    );
    println!();
    println!("| what | seconds | MB/s of corpus.txt | vs raw encode_batch |");
    println!("|---|---:|---:|---:|");
    let row = |what: &str, secs: f64| {
        println!(
            "| {what} | {secs:.2} | {:.2} | {:+.1}% |",
            corpus_mb / secs,
            (raw_secs / secs - 1.0) * 100.0
        );
    };
    row("tokenizers `encode_batch` (reference, in memory)", raw_secs);
    row("tokenizers `encode_batch_fast` (in memory)", fast_secs);
    row(
        "`pretrain_data` stage: read + tokenize + pack + write shards",
        stage_secs,
    );
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}
