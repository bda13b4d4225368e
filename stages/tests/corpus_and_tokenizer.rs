//! `corpus` and `tokenizer` on the real Brown corpus, Wikipedia slice and BERT vocabulary.

mod common;

use std::io::Write;

use electra_stages::corpus::{Corpus, DocumentReader};
use electra_stages::tokenizer::{BertTokenizer, TokenizerKind};
use serde_json::json;

use common::{count, data, data_path, run};

#[test]
fn brown_reads_as_plain_text_with_exact_counts_and_gzip_gives_the_same_stream() {
    let brown = data().join("corpus/brown/brown_detagged.txt");
    let stage = run(
        &Corpus,
        json!({"inputs": brown, "format": "text", "split_sentences": false}),
        1,
    );
    let m = stage.metrics();
    let raw = std::fs::read_to_string(&brown).unwrap();
    assert_eq!(count(m, "documents"), 500);
    assert_eq!(count(m, "sentences"), 57340);
    assert_eq!(count(m, "words"), raw.split_whitespace().count() as u64);

    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("brown.txt.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(raw.as_bytes()).unwrap();
    enc.finish().unwrap();
    let from_gz = run(
        &Corpus,
        json!({"inputs": [gz], "split_sentences": false}),
        1,
    );
    assert_eq!(
        std::fs::read(stage.out().join("corpus.txt")).unwrap(),
        std::fs::read(from_gz.out().join("corpus.txt")).unwrap()
    );
}

#[test]
fn wikiextractor_slices_respect_max_docs_and_drop_titles() {
    let stage = run(
        &Corpus,
        json!({"inputs": data_path("corpus/wikipedia-en-2015/AA/wiki_00"), "max_docs": 3}),
        1,
    );
    assert_eq!(count(stage.metrics(), "documents"), 3);
    let docs: Vec<Vec<String>> = DocumentReader::open(&stage.out().join("corpus.txt"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(docs.len(), 3);
    // The first article is "Anarchism": its title line is dropped, its first sentence kept.
    assert!(
        docs[0][0].starts_with("Anarchism is a political philosophy"),
        "{:?}",
        docs[0][0]
    );
    assert_eq!(
        docs[0][1],
        "Anarchism holds the state to be undesirable, unnecessary, or harmful."
    );
    assert!(docs
        .iter()
        .flatten()
        .all(|s| !s.starts_with("<doc") && !s.is_empty()));
}

#[test]
fn an_empty_corpus_is_an_error_naming_its_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blank.txt");
    std::fs::write(&file, "\n   \n\n").unwrap();
    let err = run(&Corpus, json!({"inputs": file}), 1).error();
    assert!(
        err.contains("blank.txt: the corpus is empty: 1 file(s) read"),
        "{err}"
    );
}

#[test]
fn a_wordpiece_vocabulary_trained_twice_on_the_10mb_slice_is_identical() {
    let slice: Vec<String> = (0..10)
        .map(|i| data_path(&format!("corpus/wikipedia-en-2015/AA/wiki_{i:02}")))
        .collect();
    let corpus = run(&Corpus, json!({"inputs": slice}), 1);
    assert!(count(corpus.metrics(), "bytes") > 9_000_000);
    let params = json!({"train": {"corpus": corpus.output("corpus.txt"), "vocab_size": 8000}});
    let first = run(&TokenizerKind, params.clone(), 2);
    let second = run(&TokenizerKind, params, 1);
    let vocab = std::fs::read_to_string(first.out().join("vocab.txt")).unwrap();
    assert!(
        vocab == std::fs::read_to_string(second.out().join("vocab.txt")).unwrap(),
        "two trainings on the same corpus gave different vocabularies"
    );
    assert_eq!(
        std::fs::read(first.out().join("tokenizer.json")).unwrap(),
        std::fs::read(second.out().join("tokenizer.json")).unwrap()
    );
    let tokens: Vec<&str> = vocab.lines().collect();
    assert_eq!(tokens.len(), 8000);
    assert_eq!(tokens[..5], ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]);
    assert!(tokens.contains(&"the") && tokens.iter().any(|t| t.starts_with("##")));
    let tok = BertTokenizer::load(&first.out().join("tokenizer.json")).unwrap();
    let ids = tok
        .encode_ids(&["Anarchism is a political philosophy."])
        .unwrap();
    assert!(!ids[0].contains(&tok.special().unk), "{ids:?}");
}

#[test]
fn the_bert_vocabulary_round_trips_from_vocab_txt_and_tokenizer_json() {
    let from_txt = run(
        &TokenizerKind,
        json!({"load": data_path("vocab/bert-base-uncased/vocab.txt")}),
        1,
    );
    let original = std::fs::read(data().join("vocab/bert-base-uncased/vocab.txt")).unwrap();
    assert_eq!(
        std::fs::read(from_txt.out().join("vocab.txt")).unwrap(),
        original
    );
    assert_eq!(count(from_txt.metrics(), "vocab_size"), 30522);

    let from_json = run(
        &TokenizerKind,
        json!({"load": data_path("vocab/bert-base-uncased/tokenizer.json")}),
        1,
    );
    assert_eq!(
        std::fs::read(from_json.out().join("vocab.txt")).unwrap(),
        original
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(from_json.out().join("tokenizer.json")).unwrap())
            .unwrap();
    assert!(
        saved["truncation"].is_null() && saved["padding"].is_null(),
        "presets removed"
    );

    let text = ["The quick brown fox jumped over the lazy dog's [SEP] back, 3.5 times!"];
    let a = BertTokenizer::load(&from_txt.out().join("tokenizer.json")).unwrap();
    let b = BertTokenizer::load(&from_json.out().join("tokenizer.json")).unwrap();
    let ids = a.encode_ids(&text).unwrap();
    assert_eq!(ids, b.encode_ids(&text).unwrap());
    assert!(ids[0].len() > 128 / 10 && ids[0].len() < 128);
    assert!(
        !ids[0].contains(&a.special().sep),
        "[SEP] in text stays plain text"
    );
    let words: Vec<String> = ids[0].iter().map(|&i| a.id_to_token(i).unwrap()).collect();
    assert_eq!(words[..4], ["the", "quick", "brown", "fox"]);
}

#[test]
fn a_vocabulary_without_special_tokens_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let vocab = dir.path().join("vocab.txt");
    std::fs::write(&vocab, "[PAD]\n[UNK]\n[SEP]\nthe\n").unwrap();
    let err = run(&TokenizerKind, json!({"load": vocab}), 1).error();
    assert!(
        err.contains("vocab.txt: the vocabulary has no [CLS], [MASK]: expected all of the BERT special tokens"),
        "{err}"
    );
}
