//! `glue_task` on the real GLUE files (exact row counts, labels decode to the file's strings)
//! and on MNLI/QQP fixtures in the published layouts; every bad input names file:line.

mod common;

use std::path::{Path, PathBuf};

use electra_stages::glue::{read_features, GlueTask, Label, TaskInfo};
use electra_stages::tokenizer::{SpecialIds, TokenizerKind};
use serde_json::json;

use common::{count, data, data_path, run, StageRun};

fn bert_tokenizer() -> StageRun {
    run(
        &TokenizerKind,
        json!({"load": data_path("vocab/bert-base-uncased")}),
        1,
    )
}

fn fixture(task_dir: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/glue")
        .join(task_dir)
        .to_string_lossy()
        .into_owned()
}

/// The raw label column of a labelled split, read independently of the loader.
fn raw_labels(file: &Path, headerless_column: Option<usize>, name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines = text.lines();
    let column = match headerless_column {
        Some(c) => c,
        None => {
            let header: Vec<&str> = lines
                .next()
                .unwrap()
                .trim_start_matches('\u{feff}')
                .split('\t')
                .collect();
            header.iter().position(|h| *h == name).unwrap()
        }
    };
    lines
        .map(|l| l.split('\t').nth(column).unwrap().to_owned())
        .collect()
}

/// Checks every feature's shape against the tokenizer's special ids.
fn check_shapes(dir: &Path, split: &str, special: SpecialIds, pair: bool) {
    for (i, f) in read_features(&dir.join(format!("{split}.jsonl")))
        .unwrap()
        .iter()
        .enumerate()
    {
        let ids = &f.input_ids;
        assert!(ids.len() <= 128, "{split} {i}: {} tokens", ids.len());
        assert_eq!(ids[0], special.cls);
        assert_eq!(*ids.last().unwrap(), special.sep);
        let seps = ids.iter().filter(|&&t| t == special.sep).count();
        assert_eq!(seps, if pair { 2 } else { 1 }, "{split} {i}");
        assert_eq!(f.segment_ids.len(), ids.len());
        let first_sep = ids.iter().position(|&t| t == special.sep).unwrap();
        assert!(f
            .segment_ids
            .iter()
            .enumerate()
            .all(|(p, &s)| s == u32::from(p > first_sep)));
    }
}

/// A task on disk: name, directory, splits with their README row counts, the label column
/// when the file has no header, and the label column's header name.
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, u64)],
    Option<usize>,
    &'static str,
);

#[test]
fn every_available_task_loads_with_the_published_row_counts() {
    let tok = bert_tokenizer();
    let special: SpecialIds = serde_json::from_value(tok.metrics()["special_ids"].clone()).unwrap();
    let cases: &[Case] = &[
        (
            "cola",
            "CoLA",
            &[("train", 8551), ("dev", 1043), ("test", 1063)],
            Some(1),
            "",
        ),
        (
            "sst2",
            "SST-2",
            &[("train", 67349), ("dev", 872), ("test", 1821)],
            None,
            "label",
        ),
        (
            "mrpc",
            "MRPC",
            &[("train", 3668), ("dev", 408), ("test", 1725)],
            None,
            "Quality",
        ),
        (
            "stsb",
            "STS-B",
            &[("train", 5749), ("dev", 1500), ("test", 1379)],
            None,
            "score",
        ),
        (
            "qnli",
            "QNLI",
            &[("dev", 5463), ("test", 5463)],
            None,
            "label",
        ),
        (
            "rte",
            "RTE",
            &[("train", 2490), ("dev", 277), ("test", 3000)],
            None,
            "label",
        ),
        (
            "wnli",
            "WNLI",
            &[("train", 635), ("dev", 71), ("test", 146)],
            None,
            "label",
        ),
    ];
    for &(task, dir, splits, headerless, label) in cases {
        let names: Vec<&str> = splits.iter().map(|(s, _)| *s).collect();
        let stage = run(
            &GlueTask,
            json!({
                "task": task,
                "dir": data_path(&format!("glue/{dir}")),
                "splits": names,
                "tokenizer": tok.output("tokenizer.json"),
            }),
            2,
        );
        let info = TaskInfo::read(&stage.out().join("features").join("task.json")).unwrap();
        assert_eq!(info.vocab_size, 30522, "the BERT vocabulary");
        for &(split, rows) in splits {
            assert_eq!(
                count(stage.metrics(), &format!("rows.{split}")),
                rows,
                "{task} {split}"
            );
            assert_eq!(info.splits[split].skipped, 0);
            check_shapes(
                &stage.out().join("features"),
                split,
                special,
                task != "cola" && task != "sst2",
            );
            let features =
                read_features(&stage.out().join("features").join(format!("{split}.jsonl")))
                    .unwrap();
            let file: PathBuf = data().join(format!("glue/{dir}/{split}.tsv"));
            if split == "test" {
                assert!(features.iter().all(|f| f.label.is_none()));
                let indices = raw_labels(&file, None, "index");
                let ours: Vec<String> = features.iter().map(|f| f.index.clone()).collect();
                assert_eq!(ours, indices, "{task} test keeps the file's index");
                continue;
            }
            let raw = raw_labels(&file, headerless.filter(|_| split != "test"), label);
            assert_eq!(raw.len(), features.len());
            for (f, raw) in features.iter().zip(&raw) {
                match (f.label, &info.labels) {
                    (Some(Label::Class(id)), Some(labels)) => {
                        assert_eq!(&labels[id as usize], raw, "{task} {split}")
                    }
                    (Some(Label::Score(score)), None) => {
                        assert_eq!(score, raw.parse::<f64>().unwrap(), "{task} {split}")
                    }
                    other => panic!("{task} {split}: unexpected label {other:?}"),
                }
            }
        }
    }
}

#[test]
fn mnli_fixture_reads_matched_and_mismatched_splits_with_gold_label_last() {
    let tok = bert_tokenizer();
    let stage = run(
        &GlueTask,
        json!({"task": "mnli", "dir": fixture("MNLI"), "tokenizer": tok.output("tokenizer.json")}),
        1,
    );
    let m = stage.metrics();
    for (split, rows) in [
        ("train", 6),
        ("dev_matched", 4),
        ("dev_mismatched", 4),
        ("test_matched", 3),
        ("test_mismatched", 3),
    ] {
        assert_eq!(count(m, &format!("rows.{split}")), rows, "{split}");
    }
    let info = TaskInfo::read(&stage.out().join("features").join("task.json")).unwrap();
    let labels = info.labels.unwrap();
    let dev = read_features(&stage.out().join("features").join("dev_matched.jsonl")).unwrap();
    let decoded: Vec<&str> = dev
        .iter()
        .map(|f| match f.label {
            Some(Label::Class(id)) => labels[id as usize].as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    // gold_label (the last column), not label2 which disagrees with it.
    assert_eq!(
        decoded,
        ["neutral", "contradiction", "entailment", "contradiction"]
    );
}

#[test]
fn qqp_skips_its_malformed_lines_and_counts_them() {
    let tok = bert_tokenizer();
    let stage = run(
        &GlueTask,
        json!({"task": "qqp", "dir": fixture("QQP"), "tokenizer": tok.output("tokenizer.json")}),
        1,
    );
    let m = stage.metrics();
    assert_eq!(count(m, "rows.train"), 4);
    assert_eq!(count(m, "skipped.train"), 2);
    assert_eq!((count(m, "rows.dev"), count(m, "rows.test")), (2, 3));
    let info = TaskInfo::read(&stage.out().join("features").join("task.json")).unwrap();
    assert_eq!(info.splits["train"].skipped_lines, [4, 5]);
    let train = read_features(&stage.out().join("features").join("train.jsonl")).unwrap();
    let ids: Vec<&str> = train.iter().map(|f| f.index.as_str()).collect();
    assert_eq!(ids, ["133273", "402555", "360472", "150662"]);
}

/// Runs `task` on one `dev` file with `content`; returns the error.
fn dev_error(task: &str, content: &[u8]) -> String {
    let tok = bert_tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dev.tsv");
    std::fs::write(&file, content).unwrap();
    run(
        &GlueTask,
        json!({"task": task, "files": {"dev": file}, "tokenizer": tok.output("tokenizer.json")}),
        1,
    )
    .error()
}

#[test]
fn bad_glue_rows_name_file_line_and_expectation() {
    let err = dev_error(
        "rte",
        b"index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\n",
    );
    assert!(
        err.contains("dev.tsv:3: 3 tab-separated columns: expected 4 (as in the header)"),
        "{err}"
    );
    let err = dev_error(
        "rte",
        b"index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n",
    );
    assert!(
        err.contains(
            "dev.tsv:2: unknown rte label `maybe`: expected one of entailment, not_entailment"
        ),
        "{err}"
    );
    let err = dev_error("cola", b"gj04\t1\t\tFine.\ngj04\t1\t\tBro\xffken.\n");
    assert!(err.contains("dev.tsv:2: invalid UTF-8 at byte 12"), "{err}");
    let err = dev_error("stsb", b"index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n0\tg\tf\ty\to\ts\ts\ta\tb\tfive\n");
    assert!(
        err.contains("dev.tsv:2: `five` is not a stsb score: expected a number"),
        "{err}"
    );
    let err = dev_error("mrpc", b"\xef\xbb\xbfQuality\t#1 ID\t#2 ID\t#1 String\n");
    assert!(
        err.contains(
            "dev.tsv:1: expected a mrpc header with columns `#1 String`, `#2 String`, `Quality`"
        ),
        "{err}"
    );
}

#[test]
fn params_are_checked_before_anything_runs() {
    use electra_pipe_api::StageKind;
    let plan = |params| GlueTask.plan(&params).unwrap_err();
    let err = plan(json!({"task": "rte", "dir": "/d", "tokenizer": "/t", "max_seq_len": 4}));
    assert_eq!(err.path, "max_seq_len");
    assert!(
        err.message
            .contains("4 is too small for rte: expected at least 5"),
        "{err}"
    );
    let err = plan(json!({"task": "colaa", "dir": "/d", "tokenizer": "/t"}));
    assert!(
        err.message
            .contains("unknown GLUE task `colaa`: expected one of cola, sst2"),
        "{err}"
    );
    let err = plan(json!({"task": "mnli", "dir": "/d", "splits": ["dev"], "tokenizer": "/t"}));
    assert_eq!(err.path, "splits[0]");
    assert!(
        err.message.contains("expected one of train, dev_matched"),
        "{err}"
    );
    let ok = GlueTask
        .plan(&json!({"task": "qnli", "dir": "/g/QNLI", "splits": ["dev"], "tokenizer": "/t"}))
        .unwrap();
    assert_eq!(ok.inputs, ["/g/QNLI/dev.tsv", "/t"]);
    assert_eq!(ok.outputs, ["features"]);
}
