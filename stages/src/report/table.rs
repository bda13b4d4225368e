//! The comparison table (like the paper's Table 1): one row per pretrained model, per
//! intermediate checkpoint, per random-init baseline, and the paper's published rows; each
//! task's score is the median over seeds (with min–max), the GLUE average is the mean of the
//! medians over the GLUE tasks present (WNLI is shown but never averaged; a task without
//! results is missing, never 0).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::results::{run_label, runs_of, size_label, Model, Origin};
use crate::records::finetune::FinetuneSummary;
use crate::records::pretrain::StepRecord;

/// GLUE's tasks in the paper's column order, with their display names.
pub const TASK_ORDER: &[(&str, &str)] = &[
    ("cola", "CoLA"),
    ("sst2", "SST-2"),
    ("mrpc", "MRPC"),
    ("stsb", "STS-B"),
    ("qqp", "QQP"),
    ("mnli", "MNLI"),
    ("qnli", "QNLI"),
    ("rte", "RTE"),
    ("wnli", "WNLI"),
];

/// One task's scores over seeds (×100).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskScores {
    /// `(seed, score)` in seed order.
    pub seeds: Vec<(u64, f64)>,
    /// The median over seeds (the mean of the middle two for an even count).
    pub median: f64,
    /// Lowest seed.
    pub min: f64,
    /// Highest seed.
    pub max: f64,
}

impl TaskScores {
    /// Summarises `(seed, score)` pairs (scores already ×100).
    pub fn new(mut seeds: Vec<(u64, f64)>) -> Self {
        seeds.sort_by_key(|&(seed, _)| seed);
        let mut values: Vec<f64> = seeds.iter().map(|&(_, s)| s).collect();
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        TaskScores {
            median,
            min: values[0],
            max: values[n - 1],
            seeds,
        }
    }
}

/// What a row stands for.
#[derive(Debug, Clone, PartialEq)]
pub enum RowKind {
    /// A model of this pipeline, final or at a snapshot.
    Ours(Origin),
    /// A figure published in the paper.
    Published,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The label.
    pub label: String,
    /// Ours or published.
    pub kind: RowKind,
    /// `ELECTRA`, `BERT` or `—`.
    pub objective: String,
    /// Size label.
    pub size: String,
    /// Parameters of the fine-tuned encoder.
    pub parameters: Option<usize>,
    /// Train FLOPs spent to reach these weights.
    pub train_flops: Option<f64>,
    /// Pretraining steps taken.
    pub steps: Option<u64>,
    /// Wall time and hardware.
    pub wall: Option<String>,
    /// Per task (ours only).
    pub tasks: BTreeMap<String, TaskScores>,
    /// The GLUE average (ours: over the GLUE tasks present; published: the paper's).
    pub glue: Option<f64>,
}

/// The GLUE average of per-task medians over the tasks present, WNLI excluded.
pub fn glue_average(tasks: &BTreeMap<String, TaskScores>) -> Option<f64> {
    let medians: Vec<f64> = tasks
        .iter()
        .filter(|(task, _)| task.as_str() != "wnli")
        .map(|(_, s)| s.median)
        .collect();
    (!medians.is_empty()).then(|| medians.iter().sum::<f64>() / medians.len() as f64)
}

fn duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The rows for this pipeline's results, in the order of `models` (each model's snapshots
/// before its final row; the pretraining runs of one model in one row, their median over
/// every run and seed), then the random-init baselines.
pub fn our_rows(models: &[Model], groups: &BTreeMap<Origin, Vec<FinetuneSummary>>) -> Vec<Row> {
    let mut origins: Vec<&Origin> = groups.keys().collect();
    // Each model's snapshots in order, then its final weights; the baselines last.
    origins.sort_by_key(|origin| match origin {
        Origin::Pretrained { model, step } => (0, *model, step.unwrap_or(u64::MAX), ""),
        Origin::Scratch(size) => (1, 0, 0, size.as_str()),
    });
    let mut rows = Vec::new();
    for origin in origins {
        let results = &groups[origin];
        let mut by_task: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
        for r in results {
            by_task
                .entry(r.task.clone())
                .or_default()
                .push((r.seed, r.score * 100.0));
        }
        let tasks: BTreeMap<String, TaskScores> = by_task
            .into_iter()
            .map(|(task, seeds)| (task, TaskScores::new(seeds)))
            .collect();
        let glue = glue_average(&tasks);
        let row = match origin {
            Origin::Pretrained { model, step } => {
                let m = &models[*model].summary;
                let steps = step.unwrap_or(m.steps);
                let fraction = steps as f64 / m.steps as f64;
                let runs = runs_of(models, *model);
                let seconds = runs
                    .iter()
                    .map(|&j| models[j].summary.train_seconds)
                    .sum::<f64>()
                    / runs.len() as f64;
                let pooled = match runs.len() {
                    1 => String::new(),
                    n => format!(", the mean of {n} pretraining runs"),
                };
                let label = match step {
                    Some(_) => format!(
                        "{} ({:.1}% of training)",
                        models[*model].name,
                        fraction * 100.0
                    ),
                    None => models[*model].name.clone(),
                };
                Row {
                    label,
                    kind: RowKind::Ours(origin.clone()),
                    objective: m.objective.label().to_owned(),
                    size: size_label(&m.encoder),
                    parameters: Some(m.parameters),
                    train_flops: Some(m.flops_per_step * steps as f64),
                    steps: Some(steps),
                    wall: Some(format!(
                        "{}{} on {}{pooled}",
                        if step.is_some() { "≈ " } else { "" },
                        duration(seconds * fraction),
                        m.hardware
                    )),
                    tasks,
                    glue,
                }
            }
            Origin::Scratch(size) => Row {
                label: format!("no pretraining ({size}, random init)"),
                kind: RowKind::Ours(origin.clone()),
                objective: "—".to_owned(),
                size: size.clone(),
                parameters: None,
                train_flops: Some(0.0),
                steps: Some(0),
                wall: None,
                tasks,
                glue,
            },
        };
        rows.push(row);
    }
    rows
}

/// A published row: the paper's GLUE dev average of a model of `size`.
fn published(label: &str, objective: &str, size: &str, parameters: usize, glue: f64) -> Row {
    Row {
        label: format!("{label} (published)"),
        kind: RowKind::Published,
        objective: objective.to_owned(),
        size: size.to_owned(),
        parameters: Some(parameters),
        train_flops: None,
        steps: None,
        wall: None,
        tasks: BTreeMap::new(),
        glue: Some(glue),
    }
}

/// The paper's published GLUE dev averages (Clark et al. 2020, Table 1 and the learning
/// curve of ELECTRA-Small over training).
pub fn published_rows() -> Vec<Row> {
    let full = 1.4e18;
    let row = |label: &str, objective: &str, fraction: f64, glue: f64| Row {
        train_flops: Some(full * fraction),
        steps: Some((1_000_000.0 * fraction) as u64),
        wall: (fraction == 1.0).then(|| "4d on 1 V100 GPU".to_owned()),
        ..published(label, objective, "small", 14_000_000, glue)
    };
    vec![
        row("ELECTRA-Small, 6.25% of training", "ELECTRA", 0.0625, 74.1),
        row("ELECTRA-Small, 12.5% of training", "ELECTRA", 0.125, 76.0),
        row("ELECTRA-Small, 25% of training", "ELECTRA", 0.25, 77.7),
        row("ELECTRA-Small, 50% of training", "ELECTRA", 0.5, 79.0),
        row("ELECTRA-Small", "ELECTRA", 1.0, 79.9),
        Row {
            steps: Some(1_450_000),
            ..row("BERT-Small", "BERT", 1.0, 75.1)
        },
    ]
}

/// The paper's Table 5 (its efficiency analysis): Base-size models of each objective trained
/// with the same compute, GLUE dev.
pub fn table5_rows() -> Vec<Row> {
    [
        ("ELECTRA (Table 5)", "ELECTRA", 85.0),
        ("All-Tokens MLM (Table 5)", "All-Tokens MLM", 84.3),
        ("Replace MLM (Table 5)", "Replace MLM", 82.4),
        ("ELECTRA 15% (Table 5)", "ELECTRA 15%", 82.4),
        ("BERT (Table 5)", "BERT", 82.2),
    ]
    .iter()
    .map(|&(label, objective, glue)| published(label, objective, "base", 110_000_000, glue))
    .collect()
}

/// The paper's weight-sharing comparison (Section 3.2): ELECTRA-Base with a generator of the
/// discriminator's size, 500k steps, GLUE dev.
pub fn weight_sharing_rows() -> Vec<Row> {
    [
        ("ELECTRA, no weights tied (Section 3.2)", 83.6),
        ("ELECTRA, token embeddings tied (Section 3.2)", 84.3),
        ("ELECTRA, all weights tied (Section 3.2)", 84.4),
    ]
    .iter()
    .map(|&(label, glue)| Row {
        steps: Some(500_000),
        ..published(label, "ELECTRA", "base", 110_000_000, glue)
    })
    .collect()
}

/// The task columns present in `rows`, in GLUE order.
pub fn task_columns(rows: &[Row]) -> Vec<(&'static str, &'static str)> {
    TASK_ORDER
        .iter()
        .copied()
        .filter(|(task, _)| rows.iter().any(|r| r.tasks.contains_key(*task)))
        .collect()
}

/// `1.23e15`.
pub fn flops(value: f64) -> String {
    if value == 0.0 {
        "0".to_owned()
    } else {
        format!("{value:.2e}")
    }
}

/// A row's cell for `task`: the median, followed over several seeds by `range(min, max)`;
/// `missing` where one of our rows has no result (a published row shows nothing).
pub fn task_cell(
    row: &Row,
    task: &str,
    range: impl Fn(f64, f64) -> String,
    missing: &str,
) -> String {
    match row.tasks.get(task) {
        Some(s) if s.seeds.len() > 1 => format!("{:.1} {}", s.median, range(s.min, s.max)),
        Some(s) => format!("{:.1}", s.median),
        None if row.kind == RowKind::Published => String::new(),
        None => missing.to_owned(),
    }
}

/// `14.0M`, or nothing.
pub fn parameters(value: Option<usize>) -> String {
    value.map_or_else(String::new, |p| format!("{:.1}M", p as f64 / 1e6))
}

/// Where a pretraining run ended, from the last 5% of its steps: what makes learning visible
/// when the fine-tuning table shows none.
#[derive(Debug, Clone, PartialEq)]
pub struct PretrainingEnd {
    /// The model's label.
    pub label: String,
    /// Mean masked-LM loss (the generator's for ELECTRA).
    pub mlm_loss: f64,
    /// The corpus's unigram entropy: the loss of a model that ignores context.
    pub unigram_entropy: f64,
    /// Mean ROC-AUC of the discriminator (ELECTRA).
    pub disc_auc: Option<f64>,
    /// Mean collapse statistic of the final hidden states.
    pub hidden_cosine: f64,
}

/// Each pretraining run's [`PretrainingEnd`].
pub fn pretraining_ends(models: &[Model]) -> Vec<PretrainingEnd> {
    models
        .iter()
        .enumerate()
        .filter(|(_, m)| !m.curve.is_empty())
        .map(|(i, m)| {
            let tail = &m.curve[m.curve.len() - (m.curve.len() / 20).max(1)..];
            let mean = |value: fn(&StepRecord) -> f64| {
                tail.iter().map(value).sum::<f64>() / tail.len() as f64
            };
            PretrainingEnd {
                label: run_label(models, i),
                mlm_loss: mean(|s| s.mlm_loss),
                unigram_entropy: m.summary.unigram_entropy,
                disc_auc: m
                    .summary
                    .objective
                    .has_discriminator()
                    .then(|| mean(|s| s.disc_auc)),
                hidden_cosine: mean(|s| s.hidden_cosine),
            }
        })
        .collect()
}

/// The pretraining table's columns.
pub const PRETRAINING_COLUMNS: [&str; 6] = [
    "model",
    "MLM loss",
    "unigram entropy",
    "below it",
    "discriminator ROC-AUC",
    "hidden-state cosine",
];

/// One [`PretrainingEnd`]'s cells, in [`PRETRAINING_COLUMNS`] order.
pub fn pretraining_cells(end: &PretrainingEnd) -> Vec<String> {
    vec![
        end.label.clone(),
        format!("{:.2}", end.mlm_loss),
        format!("{:.2}", end.unigram_entropy),
        format!("{:.2}", end.unigram_entropy - end.mlm_loss),
        end.disc_auc
            .map_or_else(|| "—".to_owned(), |a| format!("{a:.3}")),
        format!("{:.3}", end.hidden_cosine),
    ]
}

/// The [`PretrainingEnd`]s as Markdown.
pub fn pretraining_markdown(ends: &[PretrainingEnd]) -> String {
    let mut out = format!(
        "| {} |\n|---|---:|---:|---:|---:|---:|\n",
        PRETRAINING_COLUMNS.join(" | ")
    );
    for end in ends {
        let _ = writeln!(out, "| {} |", pretraining_cells(end).join(" | "));
    }
    out
}

/// The table as Markdown. Published rows are marked with †.
pub fn markdown(rows: &[Row]) -> String {
    let columns = task_columns(rows);
    let mut out = String::from(
        "| model | objective | size | params | train FLOPs | steps | pretraining time |",
    );
    for (_, name) in &columns {
        let _ = write!(out, " {name} |");
    }
    out.push_str(" GLUE avg |\n|---|---|---|---:|---:|---:|---|");
    for _ in &columns {
        out.push_str("---:|");
    }
    out.push_str("---:|\n");
    for row in rows {
        let label = match row.kind {
            RowKind::Published => format!("{} †", row.label),
            RowKind::Ours(_) => row.label.clone(),
        };
        let _ = write!(
            out,
            "| {label} | {} | {} | {} | {} | {} | {} |",
            row.objective,
            row.size,
            parameters(row.parameters),
            row.train_flops.map_or_else(String::new, flops),
            row.steps.map_or_else(String::new, |s| s.to_string()),
            row.wall.clone().unwrap_or_default()
        );
        for (task, _) in &columns {
            let cell = task_cell(row, task, |lo, hi| format!("({lo:.1}–{hi:.1})"), "missing");
            let _ = write!(out, " {cell} |");
        }
        let glue = row
            .glue
            .map_or_else(|| "—".to_owned(), |g| format!("**{g:.1}**"));
        let _ = writeln!(out, " {glue} |");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_count_is_the_middle_mean() {
        let s = TaskScores::new(vec![(3, 70.0), (1, 60.0), (2, 90.0)]);
        assert_eq!((s.median, s.min, s.max), (70.0, 60.0, 90.0));
        assert_eq!(s.seeds[0], (1, 60.0));
        let s = TaskScores::new(vec![(1, 60.0), (2, 80.0)]);
        assert_eq!(s.median, 70.0);
    }

    #[test]
    fn the_glue_average_skips_wnli_and_missing_tasks() {
        let tasks = BTreeMap::from([
            ("cola".to_owned(), TaskScores::new(vec![(1, 20.0)])),
            ("sst2".to_owned(), TaskScores::new(vec![(1, 80.0)])),
            ("wnli".to_owned(), TaskScores::new(vec![(1, 56.0)])),
        ]);
        assert_eq!(glue_average(&tasks), Some(50.0));
        assert_eq!(glue_average(&BTreeMap::new()), None);
    }
}
