//! Writing predictions: per-example dev predictions next to the gold labels, and test-set
//! predictions in the GLUE benchmark's submission format (`index<TAB>prediction`, label
//! strings, one file per task named as the benchmark names them).

use std::fmt::Write as _;
use std::path::Path;

use super::train::Predictions;
use crate::error::Result;
use crate::glue::{Feature, Label, Task};
use crate::textfile::write_text;

/// The benchmark's file name for `task`'s test split `split`: `CoLA.tsv`, `SST-2.tsv`, ...,
/// `MNLI-m.tsv` / `MNLI-mm.tsv` for MNLI's matched and mismatched test sets.
pub fn submission_file(task: &Task, split: &str) -> String {
    match split {
        "test_matched" => format!("{}-m.tsv", task.dir),
        "test_mismatched" => format!("{}-mm.tsv", task.dir),
        _ => format!("{}.tsv", task.dir),
    }
}

/// The text of a prediction: the class's label string, or the score.
fn prediction_text(task: &Task, predictions: &Predictions, i: usize) -> String {
    match (predictions, task.labels) {
        (Predictions::Classes(ids), Some(labels)) => labels[ids[i] as usize].to_owned(),
        (Predictions::Classes(ids), None) => ids[i].to_string(),
        (Predictions::Scores(scores), _) => format!("{:.6}", scores[i]),
    }
}

fn label_text(task: &Task, label: Option<Label>) -> String {
    match (label, task.labels) {
        (Some(Label::Class(id)), Some(labels)) => labels[id as usize].to_owned(),
        (Some(Label::Class(id)), None) => id.to_string(),
        (Some(Label::Score(score)), _) => score.to_string(),
        (None, _) => String::new(),
    }
}

/// `index<TAB>label<TAB>prediction` for every example of a dev split.
pub fn write_dev(
    path: &Path,
    task: &Task,
    features: &[Feature],
    predictions: &Predictions,
) -> Result<()> {
    let mut text = String::from("index\tlabel\tprediction\n");
    for (i, f) in features.iter().enumerate() {
        let _ = writeln!(
            text,
            "{}\t{}\t{}",
            f.index,
            label_text(task, f.label),
            prediction_text(task, predictions, i)
        );
    }
    write_text(path, &text)
}

/// The benchmark's `index<TAB>prediction` file for a test split; STS-B scores are clipped to
/// the scale's [0, 5] and written with 3 decimals.
pub fn write_submission(
    path: &Path,
    task: &Task,
    features: &[Feature],
    predictions: &Predictions,
) -> Result<()> {
    let mut text = String::from("index\tprediction\n");
    for (i, f) in features.iter().enumerate() {
        let prediction = match predictions {
            Predictions::Scores(scores) => format!("{:.3}", scores[i].clamp(0.0, 5.0)),
            Predictions::Classes(_) => prediction_text(task, predictions, i),
        };
        let _ = writeln!(text, "{}\t{prediction}", f.index);
    }
    write_text(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submission_files_are_named_as_the_benchmark_names_them() {
        let file = |task, split| submission_file(Task::named(task).unwrap(), split);
        assert_eq!(file("cola", "test"), "CoLA.tsv");
        assert_eq!(file("sst2", "test"), "SST-2.tsv");
        assert_eq!(file("stsb", "test"), "STS-B.tsv");
        assert_eq!(file("mnli", "test_matched"), "MNLI-m.tsv");
        assert_eq!(file("mnli", "test_mismatched"), "MNLI-mm.tsv");
        assert_eq!(file("qnli", "test"), "QNLI.tsv");
    }
}
