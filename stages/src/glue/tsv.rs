//! Parses one GLUE split file (tab-separated, no quoting, as the GLUE processors read them)
//! into rows of text and label, with every problem located by file and line.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::tasks::Task;
use crate::error::{DataError, Result};
use crate::textfile::LineReader;

/// The UTF-8 byte-order mark MRPC's header starts with.
const BOM: char = '\u{feff}';

/// A label: a class id, or a similarity score (STS-B).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Label {
    /// Index into the task's label list.
    Class(u32),
    /// A regression target.
    Score(f64),
}

/// One example as read from the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The file's `index`/`id` column, or the row's 0-based position when there is none.
    pub index: String,
    /// First sentence.
    pub text_a: String,
    /// Second sentence of pair tasks.
    pub text_b: Option<String>,
    /// The label; `None` in test splits.
    pub label: Option<Label>,
}

/// A parsed split.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SplitRows {
    /// The examples in file order.
    pub rows: Vec<Row>,
    /// Line numbers of malformed lines that were skipped (only for tasks whose policy is to
    /// skip them).
    pub skipped: Vec<usize>,
}

/// Where each needed value sits in a row.
struct Columns {
    count: usize,
    index: Option<usize>,
    text_a: usize,
    text_b: Option<usize>,
    label: Option<usize>,
}

/// Finds the task's columns in a header line.
fn columns_from_header(task: &Task, labelled: bool, header: &str, path: &Path) -> Result<Columns> {
    let names: Vec<&str> = header.trim_start_matches(BOM).split('\t').collect();
    let find = |name: &str| names.iter().position(|n| *n == name);
    let mut required = vec![task.text_a];
    required.extend(task.text_b);
    if labelled {
        required.push(task.label);
    }
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|n| find(n).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(DataError::malformed(
            path,
            1,
            format!(
                "expected a {} header with columns {}; found `{}` (missing {})",
                task.name,
                required
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                names.join("\\t"),
                missing
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ));
    }
    Ok(Columns {
        count: names.len(),
        index: find("index").or_else(|| find("id")),
        text_a: find(task.text_a).expect("checked above"),
        text_b: task.text_b.map(|n| find(n).expect("checked above")),
        label: labelled.then(|| find(task.label).expect("checked above")),
    })
}

/// Parses the label text of `task`.
fn parse_label(task: &Task, text: &str, path: &Path, line: usize) -> Result<Label> {
    match task.labels {
        Some(labels) => labels
            .iter()
            .position(|l| *l == text)
            .map(|i| Label::Class(i as u32))
            .ok_or_else(|| {
                DataError::malformed(
                    path,
                    line,
                    format!(
                        "unknown {} label `{text}`: expected one of {}",
                        task.name,
                        labels.join(", ")
                    ),
                )
            }),
        None => match text.trim().parse::<f64>() {
            Ok(score) if score.is_finite() => Ok(Label::Score(score)),
            _ => Err(DataError::malformed(
                path,
                line,
                format!("`{text}` is not a {} score: expected a number", task.name),
            )),
        },
    }
}

/// Reads split `split` of `task` from `path`.
pub fn read_split(task: &Task, split: &str, path: &Path) -> Result<SplitRows> {
    let labelled = Task::is_labelled(split);
    let mut reader = LineReader::open(path)?;
    let columns = match (task.headerless, labelled) {
        (Some(layout), true) => Columns {
            count: layout.columns,
            index: None,
            text_a: layout.text_a,
            text_b: None,
            label: Some(layout.label),
        },
        _ => match reader.next_line() {
            Some(header) => columns_from_header(task, labelled, header?.1, path)?,
            None => {
                return Err(DataError::invalid(
                    path,
                    format!("the file is empty: expected a {} header line", task.name),
                ))
            }
        },
    };
    let mut out = SplitRows::default();
    while let Some(line) = reader.next_line() {
        let (number, text) = line?;
        let fields: Vec<&str> = text.split('\t').collect();
        if fields.len() != columns.count {
            if task.skips_malformed {
                out.skipped.push(number);
                continue;
            }
            return Err(DataError::malformed(
                path,
                number,
                format!(
                    "{} tab-separated columns: expected {} (as in the {})",
                    fields.len(),
                    columns.count,
                    if task.headerless.is_some() && labelled {
                        "task's fixed layout"
                    } else {
                        "header"
                    }
                ),
            ));
        }
        let label = match columns.label {
            Some(at) => Some(parse_label(task, fields[at], path, number)?),
            None => None,
        };
        out.rows.push(Row {
            index: columns
                .index
                .map_or_else(|| out.rows.len().to_string(), |at| fields[at].to_owned()),
            text_a: fields[columns.text_a].to_owned(),
            text_b: columns.text_b.map(|at| fields[at].to_owned()),
            label,
        });
    }
    if !out.skipped.is_empty() {
        tracing::warn!(
            file = %path.display(),
            skipped = out.skipped.len(),
            lines = ?out.skipped.iter().take(20).collect::<Vec<_>>(),
            "skipped malformed lines ({} policy: wrong column count)",
            task.name
        );
    }
    Ok(out)
}
