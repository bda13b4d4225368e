//! The corpus → tokenizer → pretrain_data chain on the real Wikipedia slice and BERT
//! vocabulary: every example is checked, and the output is deterministic.

mod common;

use std::collections::HashSet;

use electra_stages::corpus::Corpus;
use electra_stages::pretrain_data::{Cursor, PretrainData, PretrainingData};
use electra_stages::tokenizer::TokenizerKind;
use serde_json::json;

use common::{count, data_path, run};

/// Digest of every file of a shards directory, in name order.
fn tree_digest(dir: &std::path::Path) -> String {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    let mut hasher = blake3::Hasher::new();
    for name in names {
        hasher.update(name.as_encoded_bytes());
        hasher.update(&std::fs::read(dir.join(&name)).unwrap());
    }
    hasher.finalize().to_hex().to_string()
}

/// BLAKE3 of the shards built below (3 MB of Wikipedia, BERT vocabulary, seed 0), the copy of
/// the tokenizer included (since `pretrain_data` v2). Pinned so that any change to corpus
/// reading, tokenization or packing is noticed.
const GOLDEN_SHARDS_DIGEST: &str =
    "8786027cce788dab1c2d583fb8311820f044a0d25dd97c8f801c1c2eeac98b5f";

#[test]
fn wikipedia_examples_follow_the_electra_recipe_and_are_deterministic() {
    let wiki = data_path("corpus/wikipedia-en-2015/AA");
    let corpus = run(&Corpus, json!({"inputs": wiki, "max_bytes": 3_000_000}), 2);
    let stats = corpus.metrics();
    assert!(count(stats, "documents") > 50, "{stats:?}");
    assert!(count(stats, "bytes") <= 3_000_000);
    assert_eq!(stats["truncated"], json!(true));
    let tok = run(
        &TokenizerKind,
        json!({"load": data_path("vocab/bert-base-uncased/vocab.txt")}),
        1,
    );
    let params = json!({
        "corpus": corpus.output("corpus.txt"),
        "tokenizer": tok.output("tokenizer.json"),
        "shard_examples": 2000,
    });
    let first = run(&PretrainData, params.clone(), 2);
    let again = run(&PretrainData, params, 1);
    let m = first.metrics();
    assert_eq!(m, again.metrics());
    let digest = tree_digest(&first.out().join("shards"));
    assert_eq!(
        digest,
        tree_digest(&again.out().join("shards")),
        "same corpus, tokenizer and seed on 2 and 1 CPUs must give identical shards"
    );
    eprintln!("shards digest: {digest}");
    assert_eq!(
        digest, GOLDEN_SHARDS_DIGEST,
        "the shards of this corpus slice changed: if the packing changed on purpose, bump the kind's version and update the digest"
    );
    assert!(count(m, "shards") >= 2, "{m:?}");

    let data = PretrainingData::open(&first.out().join("shards")).unwrap();
    let special = data.index().special;
    assert_eq!(data.len(), count(m, "examples"));
    assert_eq!(data.index().token_bytes, 2);
    let (mut single, mut long_single, mut long) = (0u64, 0u64, 0u64);
    for i in 0..data.len() {
        let ex = data.example(i).unwrap();
        let ids = &ex.input_ids;
        assert!(ids.len() <= 128 && ids.len() >= 3, "example {i}: {ids:?}");
        assert_eq!(ids[0], special.cls, "example {i} starts with [CLS]");
        assert_eq!(
            *ids.last().unwrap(),
            special.sep,
            "example {i} ends with [SEP]"
        );
        let seps: Vec<usize> = (0..ids.len()).filter(|&p| ids[p] == special.sep).collect();
        assert!(
            matches!(seps.len(), 1 | 2),
            "example {i}: {} [SEP]s",
            seps.len()
        );
        assert_eq!(ids.iter().filter(|&&t| t == special.cls).count(), 1);
        assert!(!ids.contains(&special.pad) && !ids.contains(&special.mask));
        let expected: Vec<u32> = (0..ids.len()).map(|p| u32::from(p > seps[0])).collect();
        assert_eq!(ex.segment_ids, expected, "example {i} segment ids");
        if seps.len() == 1 {
            single += 1;
        }
        // Long examples are made single-segment by the 10% draw, not by a lack of sentences.
        if ids.len() >= 120 {
            long += 1;
            long_single += u64::from(seps.len() == 1);
        }
    }
    let single_rate = single as f64 / data.len() as f64;
    let long_rate = long_single as f64 / long as f64;
    eprintln!("single-segment: {single_rate:.3} overall, {long_rate:.3} of {long} full-length");
    assert!(
        (0.07..0.14).contains(&long_rate),
        "full-length single-segment rate {long_rate}"
    );
    assert!((single_rate - m["single_segment_fraction"].as_f64().unwrap()).abs() < 1e-9);

    // The stream visits every example once per epoch, reshuffles, and resumes exactly.
    let mut stream = data.stream(3, Cursor::default()).unwrap();
    let n = data.len() as usize;
    let mut seen = HashSet::new();
    let mut epoch0 = Vec::new();
    for _ in 0..n {
        let ex = stream.next_example().unwrap();
        epoch0.push(ex.input_ids.clone());
        seen.insert(ex.input_ids);
    }
    assert_eq!(
        stream.cursor(),
        Cursor {
            epoch: 0,
            position: n as u64
        }
    );
    let distinct: HashSet<_> = (0..data.len())
        .map(|i| data.example(i).unwrap().input_ids)
        .collect();
    assert_eq!(seen, distinct);
    let batch = stream.next_batch(4).unwrap();
    assert_eq!(
        stream.cursor(),
        Cursor {
            epoch: 1,
            position: 4
        }
    );
    assert_eq!(batch.input_ids.len(), 4 * 128);
    let mut resumed = data
        .stream(
            3,
            Cursor {
                epoch: 1,
                position: 2,
            },
        )
        .unwrap();
    let third = resumed.next_example().unwrap();
    assert_eq!(
        third.input_ids[..],
        batch.input_ids[2 * 128..2 * 128 + batch.lengths[2]]
    );
    let epoch1: Vec<Vec<u32>> = {
        let mut s = data
            .stream(
                3,
                Cursor {
                    epoch: 1,
                    position: 0,
                },
            )
            .unwrap();
        (0..n)
            .map(|_| s.next_example().unwrap().input_ids)
            .collect()
    };
    assert_ne!(epoch0, epoch1, "each epoch is shuffled anew");
}

#[test]
fn a_max_seq_len_too_small_for_an_example_is_refused_at_plan_time() {
    use electra_pipe_api::StageKind;
    let err = PretrainData
        .plan(&json!({"corpus": "/c", "tokenizer": "/t", "max_seq_len": 4}))
        .unwrap_err();
    assert_eq!(err.path, "max_seq_len");
    assert!(
        err.message.contains("4 is too small: expected at least 5"),
        "{err}"
    );
}
