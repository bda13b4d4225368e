//! The nine GLUE tasks in the classic `download_glue_data.py` layout: files, columns,
//! labels and metric of each.

use serde::{Deserialize, Serialize};

/// How a task is scored on dev (the ELECTRA paper's choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Matthews correlation coefficient (CoLA).
    Mcc,
    /// Spearman rank correlation (STS-B).
    Spearman,
    /// Accuracy (every other task).
    Accuracy,
}

/// Column positions of CoLA's headerless train/dev files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headerless {
    /// Columns in every row.
    pub columns: usize,
    /// The sentence's column.
    pub text_a: usize,
    /// The label's column.
    pub label: usize,
}

/// One GLUE task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Task {
    /// Name used in pipelines (`cola`, `sst2`, ...).
    pub name: &'static str,
    /// Directory name in the standard layout (`CoLA`, `SST-2`, ...).
    pub dir: &'static str,
    /// Header name of the first sentence's column.
    pub text_a: &'static str,
    /// Header name of the second sentence's column, for pair tasks.
    pub text_b: Option<&'static str>,
    /// Header name of the label column.
    pub label: &'static str,
    /// Class labels in id order; `None` for regression (STS-B).
    pub labels: Option<&'static [&'static str]>,
    /// The dev metric.
    pub metric: Metric,
    /// The split names, each read from `<split>.tsv`; those starting with `test` are unlabelled.
    pub splits: &'static [&'static str],
    /// Layout of the labelled files when they have no header (CoLA).
    pub headerless: Option<Headerless>,
    /// Malformed lines are skipped and counted instead of being an error (QQP's real files
    /// contain a few).
    pub skips_malformed: bool,
}

const BINARY: &[&str] = &["0", "1"];
const ENTAILMENT: &[&str] = &["entailment", "not_entailment"];
const STANDARD_SPLITS: &[&str] = &["train", "dev", "test"];

/// Every GLUE task.
pub const TASKS: &[Task] = &[
    Task {
        name: "cola",
        dir: "CoLA",
        text_a: "sentence",
        text_b: None,
        label: "label",
        labels: Some(BINARY),
        metric: Metric::Mcc,
        splits: STANDARD_SPLITS,
        headerless: Some(Headerless {
            columns: 4,
            text_a: 3,
            label: 1,
        }),
        skips_malformed: false,
    },
    Task {
        name: "sst2",
        dir: "SST-2",
        text_a: "sentence",
        text_b: None,
        label: "label",
        labels: Some(BINARY),
        metric: Metric::Accuracy,
        splits: STANDARD_SPLITS,
        headerless: None,
        skips_malformed: false,
    },
    Task {
        name: "mrpc",
        dir: "MRPC",
        text_a: "#1 String",
        text_b: Some("#2 String"),
        label: "Quality",
        labels: Some(BINARY),
        metric: Metric::Accuracy,
        splits: STANDARD_SPLITS,
        headerless: None,
        skips_malformed: false,
    },
    Task {
        name: "stsb",
        dir: "STS-B",
        text_a: "sentence1",
        text_b: Some("sentence2"),
        label: "score",
        labels: None,
        metric: Metric::Spearman,
        splits: STANDARD_SPLITS,
        headerless: None,
        skips_malformed: false,
    },
    Task {
        name: "qqp",
        dir: "QQP",
        text_a: "question1",
        text_b: Some("question2"),
        label: "is_duplicate",
        labels: Some(BINARY),
        metric: Metric::Accuracy,
        splits: STANDARD_SPLITS,
        headerless: None,
        skips_malformed: true,
    },
    Task {
        name: "mnli",
        dir: "MNLI",
        text_a: "sentence1",
        text_b: Some("sentence2"),
        label: "gold_label",
        labels: Some(&["contradiction", "entailment", "neutral"]),
        metric: Metric::Accuracy,
        splits: &[
            "train",
            "dev_matched",
            "dev_mismatched",
            "test_matched",
            "test_mismatched",
        ],
        headerless: None,
        skips_malformed: false,
    },
    Task {
        name: "qnli",
        dir: "QNLI",
        text_a: "question",
        text_b: Some("sentence"),
        label: "label",
        labels: Some(ENTAILMENT),
        metric: Metric::Accuracy,
        splits: STANDARD_SPLITS,
        headerless: None,
        skips_malformed: false,
    },
    Task {
        name: "rte",
        dir: "RTE",
        text_a: "sentence1",
        text_b: Some("sentence2"),
        label: "label",
        labels: Some(ENTAILMENT),
        metric: Metric::Accuracy,
        splits: STANDARD_SPLITS,
        headerless: None,
        skips_malformed: false,
    },
    Task {
        name: "wnli",
        dir: "WNLI",
        text_a: "sentence1",
        text_b: Some("sentence2"),
        label: "label",
        labels: Some(BINARY),
        metric: Metric::Accuracy,
        splits: STANDARD_SPLITS,
        headerless: None,
        skips_malformed: false,
    },
];

impl Task {
    /// The task called `name` (`cola`, `sst2`, `mrpc`, `stsb`, `qqp`, `mnli`, `qnli`, `rte`,
    /// `wnli`).
    pub fn named(name: &str) -> Option<&'static Task> {
        TASKS.iter().find(|t| t.name == name)
    }

    /// The names of all tasks, for error messages.
    pub fn names() -> Vec<&'static str> {
        TASKS.iter().map(|t| t.name).collect()
    }

    /// Whether `split` carries labels.
    pub fn is_labelled(split: &str) -> bool {
        !split.starts_with("test")
    }

    /// Whether this is a sentence-pair task.
    pub fn is_pair(&self) -> bool {
        self.text_b.is_some()
    }
}
