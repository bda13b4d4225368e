//! The `glue_task` stage kind: loads one GLUE task and writes tokenized features per split.
//!
//! ```yaml
//! cola:
//!   kind: glue_task
//!   params:
//!     task: cola                    # cola sst2 mrpc stsb qqp mnli qnli rte wnli
//!     glue_dir: ${data}/glue        # the GLUE root: CoLA/, SST-2/, ... inside
//!     # dir: ${data}/glue/CoLA      # or the task's own directory: <split>.tsv
//!     splits: [train, dev, test]    # default: all of the task's splits
//!     # files: {dev: "@get/dev.tsv"}  # instead of dir: a file per split
//!     tokenizer: "@tok/tokenizer.json"
//!     max_seq_len: 128              # default 128; pairs are cut longest-first
//! ```
//!
//! Outputs one directory, `features/`: `task.json` (labels, metric, vocabulary size, rows per
//! split, skipped lines), `<split>.jsonl` (one [`Feature`] per line) and the tokenizer as
//! `tokenizer.json` (a fine-tuned model is exported with it). Test splits have no
//! labels and keep the file's `index`. A `finetune` stage takes the whole directory
//! (`@glue[task=cola]/features`), so one template serves every task, MNLI's split names
//! included.

mod features;
mod tasks;
mod tsv;

use std::collections::BTreeMap;
use std::path::Path;

use electra_pipe_api::{
    parse_params, Metrics, ParamError, Params, StageContext, StageError, StageKind, StagePlan,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub use features::{featurize, read_features, truncate_longest_first, write_features, Feature};
pub use tasks::{Headerless, Metric, Task, TASKS};
pub use tsv::{read_split, Label, Row, SplitRows};

use crate::error::{DataError, Result};
use crate::tokenizer::BertTokenizer;

/// The directory output of a `glue_task` stage.
pub const FEATURES_DIR: &str = "features";
/// The description file inside [`FEATURES_DIR`].
pub const TASK_FILE: &str = "task.json";

/// Params of a `glue_task` stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlueTaskParams {
    /// Task name.
    pub task: String,
    /// The GLUE root in the standard layout; the task's directory (`CoLA`, `SST-2`, ...) is
    /// inside.
    pub glue_dir: Option<String>,
    /// The task's directory in the standard layout.
    pub dir: Option<String>,
    /// Splits to load from `dir` (default: all of the task's).
    pub splits: Option<Vec<String>>,
    /// A file per split, instead of `dir`.
    pub files: Option<BTreeMap<String, String>>,
    /// A `tokenizer.json`.
    pub tokenizer: String,
    /// Longest sequence, special tokens included.
    #[serde(default = "default_max_seq_len")]
    pub max_seq_len: usize,
}

fn default_max_seq_len() -> usize {
    128
}

/// What a `glue_task` stage loaded, as written to `task.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// Task name.
    pub task: String,
    /// The dev metric.
    pub metric: Metric,
    /// Class labels in id order; `None` for regression.
    pub labels: Option<Vec<String>>,
    /// Longest sequence.
    pub max_seq_len: usize,
    /// Size of the tokenizer's vocabulary (a fine-tuned encoder must have the same).
    pub vocab_size: usize,
    /// Per split: rows, skipped lines, truncated examples.
    pub splits: BTreeMap<String, SplitInfo>,
}

/// Counts of one loaded split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitInfo {
    /// Examples written.
    pub rows: usize,
    /// Malformed lines skipped (QQP policy).
    pub skipped: usize,
    /// Their line numbers (the first 100).
    pub skipped_lines: Vec<usize>,
    /// Examples cut to `max_seq_len`.
    pub truncated: usize,
}

impl TaskInfo {
    /// Reads `task.json` from a `glue_task` stage's output.
    pub fn read(path: &Path) -> Result<Self> {
        crate::json_file::read(path, "a task description")
    }

    /// The task's entry in [`TASKS`]; an error names `path` if it is not a GLUE task.
    pub fn spec(&self, path: &Path) -> Result<&'static Task> {
        Task::named(&self.task).ok_or_else(|| {
            DataError::invalid(
                path,
                format!(
                    "unknown GLUE task `{}`: expected one of {}",
                    self.task,
                    Task::names().join(", ")
                ),
            )
        })
    }
}

impl GlueTaskParams {
    /// Parses and validates params.
    pub fn parse(params: &Params) -> Result<Self, ParamError> {
        let parsed: GlueTaskParams = parse_params(params)?;
        let task = parsed.task_spec()?;
        let min_len = if task.is_pair() { 5 } else { 3 };
        if parsed.max_seq_len < min_len {
            return Err(ParamError::new(
                "max_seq_len",
                format!(
                    "{} is too small for {}: expected at least {min_len} ([CLS] A [SEP]{} with a token per sentence)",
                    parsed.max_seq_len,
                    task.name,
                    if task.is_pair() { " B [SEP]" } else { "" }
                ),
            ));
        }
        let sources = [
            parsed.glue_dir.is_some(),
            parsed.dir.is_some(),
            parsed.files.is_some(),
        ];
        match sources.iter().filter(|set| **set).count() {
            1 => {}
            0 => {
                return Err(ParamError::new(
                    "",
                    format!(
                        "expected `glue_dir` (e.g. ${{data}}/glue), `dir` (e.g. ${{data}}/glue/{}) or `files`",
                        task.dir
                    ),
                ))
            }
            _ => {
                return Err(ParamError::new(
                    "",
                    "more than one of `glue_dir`, `dir` and `files` is set: expected one",
                ))
            }
        }
        if parsed.files.is_some() && parsed.splits.is_some() {
            return Err(ParamError::new(
                "splits",
                "`splits` goes with `dir` or `glue_dir`; with `files` the splits are its keys",
            ));
        }
        for (field, split) in parsed.split_names().iter().enumerate() {
            if !task.splits.contains(&split.as_str()) {
                let path = match &parsed.files {
                    Some(_) => format!("files.{split}"),
                    None => format!("splits[{field}]"),
                };
                return Err(ParamError::new(
                    path,
                    format!(
                        "`{split}` is not a {} split: expected one of {}",
                        task.name,
                        task.splits.join(", ")
                    ),
                ));
            }
        }
        Ok(parsed)
    }

    fn task_spec(&self) -> Result<&'static Task, ParamError> {
        Task::named(&self.task).ok_or_else(|| {
            ParamError::new(
                "task",
                format!(
                    "unknown GLUE task `{}`: expected one of {}",
                    self.task,
                    Task::names().join(", ")
                ),
            )
        })
    }

    /// The splits to load, in order.
    pub fn split_names(&self) -> Vec<String> {
        match (&self.files, &self.splits, self.task_spec()) {
            (Some(files), _, _) => files.keys().cloned().collect(),
            (None, Some(splits), _) => splits.clone(),
            (None, None, Ok(task)) => task.splits.iter().map(|s| s.to_string()).collect(),
            (None, None, Err(_)) => Vec::new(),
        }
    }

    /// The file each split is read from.
    pub fn split_files(&self) -> Vec<(String, String)> {
        match &self.files {
            Some(files) => files.clone().into_iter().collect(),
            None => {
                let dir = match (&self.glue_dir, &self.dir, self.task_spec()) {
                    (Some(root), _, Ok(task)) => {
                        format!("{}/{}", root.trim_end_matches('/'), task.dir)
                    }
                    (_, Some(dir), _) => dir.clone(),
                    _ => String::new(),
                };
                self.split_names()
                    .into_iter()
                    .map(|split| {
                        let file = format!("{}/{split}.tsv", dir.trim_end_matches('/'));
                        (split, file)
                    })
                    .collect()
            }
        }
    }
}

/// The `glue_task` stage kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct GlueTask;

impl StageKind for GlueTask {
    fn name(&self) -> &'static str {
        "glue_task"
    }

    fn version(&self) -> u32 {
        // v3: the tokenizer is copied into `features/` (a fine-tuned model is exported with it).
        3
    }

    fn summary(&self) -> &'static str {
        "loads one GLUE task (standard TSV layout) into tokenized features per split"
    }

    fn plan(&self, params: &Params) -> Result<StagePlan, ParamError> {
        let params = GlueTaskParams::parse(params)?;
        let mut inputs: Vec<String> = params.split_files().into_iter().map(|(_, f)| f).collect();
        inputs.push(params.tokenizer.clone());
        Ok(StagePlan {
            inputs,
            outputs: vec![FEATURES_DIR.to_owned()],
            ..StagePlan::default()
        })
    }

    fn run(&self, params: &Params, ctx: &StageContext<'_>) -> Result<Metrics, StageError> {
        let params = GlueTaskParams::parse(params)?;
        let task = params.task_spec()?;
        Ok(load_task(task, &params, ctx)?)
    }
}

/// Reads, tokenizes and writes every requested split.
fn load_task(task: &Task, params: &GlueTaskParams, ctx: &StageContext<'_>) -> Result<Metrics> {
    let tokenizer = BertTokenizer::load(Path::new(&params.tokenizer))?;
    let pool = crate::parallel::worker_pool(ctx.cpus)?;
    let files = params.split_files();
    let out = ctx.out_dir.join(FEATURES_DIR);
    std::fs::create_dir_all(&out)
        .map_err(|e| DataError::io(format!("creating {}", out.display()), e))?;
    let mut info = TaskInfo {
        task: task.name.to_owned(),
        metric: task.metric,
        labels: task
            .labels
            .map(|l| l.iter().map(|s| s.to_string()).collect()),
        max_seq_len: params.max_seq_len,
        vocab_size: tokenizer.vocab_size(),
        splits: BTreeMap::new(),
    };
    let mut metrics = Metrics::new();
    for (done, (split, file)) in files.iter().enumerate() {
        if ctx.cancel.is_cancelled() {
            return Err(DataError::Cancelled);
        }
        ctx.progress.update(
            done as u64,
            Some(files.len() as u64),
            &format!("loading {split}"),
        );
        let rows = read_split(task, split, Path::new(file))?;
        let (features, truncated) =
            pool.install(|| featurize(rows.rows, &tokenizer, params.max_seq_len))?;
        write_features(&out.join(format!("{split}.jsonl")), &features)?;
        metrics.insert(format!("rows.{split}"), json!(features.len()));
        if !rows.skipped.is_empty() {
            metrics.insert(format!("skipped.{split}"), json!(rows.skipped.len()));
        }
        tracing::info!(
            split,
            rows = features.len(),
            truncated,
            skipped = rows.skipped.len(),
            file,
            "split loaded"
        );
        info.splits.insert(
            split.clone(),
            SplitInfo {
                rows: features.len(),
                skipped: rows.skipped.len(),
                skipped_lines: rows.skipped.iter().take(100).copied().collect(),
                truncated,
            },
        );
    }
    crate::json_file::write_pretty(&out.join(TASK_FILE), &info)?;
    crate::tokenizer::copy_into(Path::new(&params.tokenizer), &out)?;
    Ok(metrics)
}
