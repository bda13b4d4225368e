//! The report's documents: `report.md`, the tidy `results.csv` and the self-contained
//! `report.html` (plots embedded), all from the same rows.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::intervals::{Difference, Pair};
use super::probing::ProbeSection;
use super::results::{runs_of, Model, Origin};
use super::table::{
    markdown, pretraining_cells, pretraining_markdown, task_columns, PretrainingEnd, Row, RowKind,
    PRETRAINING_COLUMNS, TASK_ORDER,
};
use crate::records::finetune::FinetuneSummary;

/// Everything a document shows besides the rows.
pub struct Context<'a> {
    /// Title.
    pub title: &'a str,
    /// The pipeline file to rerun, if the params named it.
    pub pipeline: Option<&'a str>,
    /// `(what, BLAKE3)` of every input.
    pub inputs: &'a [(String, String)],
    /// `(component, version)`.
    pub versions: &'a [(String, String)],
    /// Where each pretraining run ended.
    pub pretraining: &'a [PretrainingEnd],
    /// Whether `plots/glue_vs_generator_size.svg` was drawn.
    pub generator_plot: bool,
    /// The part-of-speech probes' section (and `plots/probe_vs_flops.svg`), if the report has
    /// probes.
    pub probing: Option<&'a ProbeSection>,
}

fn task_name(task: &str) -> &str {
    TASK_ORDER
        .iter()
        .find(|(t, _)| *t == task)
        .map_or(task, |(_, name)| name)
}

/// A plain-language comparison of each ELECTRA row with the BERT row of equal train FLOPs,
/// and of both with random initialisation of their size: each difference with its 95%
/// interval, and whether that interval excludes 0 (resolved) or not.
pub fn reading(rows: &[Row], pairs: &[Pair]) -> String {
    let mut out = String::new();
    let against_scratch = |a: usize| {
        pairs
            .iter()
            .find(|p| p.a == a && matches!(rows[p.b].kind, RowKind::Ours(Origin::Scratch(_))))
    };
    for pair in pairs.iter().filter(|p| rows[p.b].objective == "BERT") {
        let (electra, bert) = (&rows[pair.a], &rows[pair.b]);
        let (Some(e), Some(b), Some(d)) = (electra.glue, bert.glue, pair.comparison.glue) else {
            continue;
        };
        let objective = electra.objective.as_str();
        let is_electra = objective == "ELECTRA";
        let verdict = match (d.resolved(), d.estimate > 0.0, is_electra) {
            (false, _, _) => "Not resolved at this scale: the interval includes 0.".to_owned(),
            (true, true, true) => "Resolved: ELECTRA ahead (the paper: ELECTRA-Small 79.9 vs. BERT-Small 75.1, +4.8 at 1.4e18).".to_owned(),
            (true, false, true) => "Resolved: BERT ahead (the paper has ELECTRA-Small +4.8 at 1.4e18).".to_owned(),
            (true, true, false) => format!("Resolved: {objective} ahead."),
            (true, false, false) => "Resolved: BERT ahead.".to_owned(),
        };
        let _ = writeln!(
            out,
            "- At {} train FLOPs, {} scores a GLUE average of {e:.1} and {} {b:.1}: {objective} − BERT = {} (95% interval). {verdict}",
            super::table::flops(electra.train_flops.unwrap_or(0.0)),
            electra.label,
            bert.label,
            d.text(),
        );
        let (resolved, open): (Vec<_>, Vec<_>) = task_columns(rows)
            .into_iter()
            .filter_map(|(task, name)| {
                let d = pair.comparison.tasks.get(task)?;
                Some((d.resolved(), format!("{name} {}", d.text())))
            })
            .partition(|(resolved, _)| *resolved);
        let list = |items: Vec<(bool, String)>| {
            items
                .into_iter()
                .map(|(_, t)| t)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !resolved.is_empty() {
            let _ = writeln!(out, "  - Resolved per task: {}.", list(resolved));
        }
        if !open.is_empty() {
            let _ = writeln!(
                out,
                "  - Not resolved (the interval includes 0): {}.",
                list(open)
            );
        }
        if let (Some(pe), Some(pb)) = (against_scratch(pair.a), against_scratch(pair.b)) {
            let _ = writeln!(out, "  - {}", against_random_init(rows, pe, pb));
        }
    }
    if !out.is_empty() {
        let _ = writeln!(out, "- {}", what_intervals_cover(rows, pairs));
    }
    out
}

/// The fewest pretraining runs behind a pretrained row of the comparisons (`None` without
/// any).
fn fewest_pretraining_runs(rows: &[Row], pairs: &[Pair]) -> Option<usize> {
    let pretrained =
        |row: usize| matches!(rows[row].kind, RowKind::Ours(Origin::Pretrained { .. }));
    pairs
        .iter()
        .flat_map(|p| {
            let (a, b) = p.comparison.pretraining_runs;
            [(p.a, a), (p.b, b)]
        })
        .filter(|&(row, _)| pretrained(row))
        .map(|(_, runs)| runs)
        .min()
}

/// How the intervals were drawn, for the differences' headers.
fn interval_method(rows: &[Row], pairs: &[Pair]) -> &'static str {
    match fewest_pretraining_runs(rows, pairs) {
        Some(2..) => "a bootstrap over pretraining runs, fine-tuning seeds and dev examples, paired where the rows share seeds and examples",
        _ => "paired bootstrap over dev examples and fine-tuning seeds",
    }
}

/// What the intervals cover, and what not, for the reading.
fn what_intervals_cover(rows: &[Row], pairs: &[Pair]) -> String {
    match fewest_pretraining_runs(rows, pairs) {
        Some(runs @ 2..) => format!("The intervals are a hierarchical bootstrap (1000 replicates) over the pretraining runs pooled in each row (at least {runs} per model), their fine-tuning seeds and the dev examples: they cover the spread between separately pretrained encoders as well as fine-tuning noise and the finite dev sets. With so few pretraining runs that spread is estimated coarsely (a bootstrap over k runs sees (k − 1)/k of their variance)."),
        _ => "The intervals are a paired bootstrap over dev examples and fine-tuning seeds (1000 replicates): they cover fine-tuning noise and the finite dev sets, not the spread between separately pretrained encoders (one pretraining run per model).".to_owned(),
    }
}

/// Both pretrained rows against random initialisation of their size, and what it means when
/// neither is resolved above it (pretraining has not given features that transfer yet) or one
/// is resolved below it.
fn against_random_init(rows: &[Row], electra: &Pair, bert: &Pair) -> String {
    let scratch = &rows[electra.b];
    let text = |pair: &Pair| {
        pair.comparison
            .glue
            .map_or_else(|| "no common tasks".to_owned(), |d| d.text())
    };
    let mut line = format!(
        "Against random initialisation of the same size ({}): {} {}, {} {}.",
        scratch
            .glue
            .map_or_else(|| "—".to_owned(), |g| format!("{g:.1}")),
        rows[electra.a].label,
        text(electra),
        rows[bert.a].label,
        text(bert)
    );
    let above = |pair: &Pair| pair.comparison.glue.is_some_and(|d| d.low > 0.0);
    line.push_str(match (above(electra), above(bert)) {
        (true, true) => " Both are resolved above it: pretraining transfers for both.",
        (false, false) => " Neither is resolved above it: at this compute pretraining has not yet given either encoder features that transfer, so these runs cannot test the paper's claim.",
        (true, false) => " Only ELECTRA is resolved above it.",
        (false, true) => " Only BERT is resolved above it.",
    });
    let below: Vec<&str> = [electra, bert]
        .into_iter()
        .filter(|pair| pair.comparison.glue.is_some_and(|d| d.high < 0.0))
        .map(|pair| rows[pair.a].label.as_str())
        .collect();
    if !below.is_empty() {
        let _ = write!(
            line,
            " Resolved below it: {} (its pretraining made a worse start than random weights).",
            below.join(" and ")
        );
    }
    line
}

/// Each pair's label and its differences: per task column, then the GLUE average.
fn difference_rows(rows: &[Row], pairs: &[Pair]) -> Vec<(String, Vec<Option<Difference>>)> {
    let columns = task_columns(rows);
    pairs
        .iter()
        .map(|pair| {
            let mut cells: Vec<Option<Difference>> = columns
                .iter()
                .map(|(task, _)| pair.comparison.tasks.get(*task).copied())
                .collect();
            cells.push(pair.comparison.glue);
            (
                format!("{} − {}", rows[pair.a].label, rows[pair.b].label),
                cells,
            )
        })
        .collect()
}

/// The differences with their 95% intervals as Markdown, one row per pair, resolved ones in
/// bold.
pub fn differences_markdown(rows: &[Row], pairs: &[Pair]) -> String {
    let columns = task_columns(rows);
    let mut out = String::from("| difference |");
    for (_, name) in &columns {
        let _ = write!(out, " {name} |");
    }
    out.push_str(" GLUE avg |\n|---|");
    for _ in 0..=columns.len() {
        out.push_str("---:|");
    }
    out.push('\n');
    for (label, cells) in difference_rows(rows, pairs) {
        let _ = write!(out, "| {label} |");
        for cell in cells {
            let text = cell.map_or_else(String::new, |d| match d.resolved() {
                true => format!("**{}**", d.text()),
                false => d.text(),
            });
            let _ = write!(out, " {text} |");
        }
        out.push('\n');
    }
    out
}

/// A plain HTML table: `headers`, then `rows` of cells (already HTML), the first column
/// text and the others numbers.
fn html_table(headers: &[String], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table>\n<thead><tr>");
    for header in headers {
        let _ = write!(out, "<th>{}</th>", escape(header));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let class = if i == 0 { "" } else { " class=\"n\"" };
            let _ = write!(out, "<td{class}>{cell}</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// The differences table as HTML.
fn differences_html(rows: &[Row], pairs: &[Pair]) -> String {
    let mut headers = vec!["difference".to_owned()];
    headers.extend(task_columns(rows).iter().map(|(_, name)| name.to_string()));
    headers.push("GLUE avg".to_owned());
    let cells: Vec<Vec<String>> = difference_rows(rows, pairs)
        .into_iter()
        .map(|(label, cells)| {
            std::iter::once(escape(&label))
                .chain(cells.into_iter().map(|cell| {
                    cell.map_or_else(String::new, |d| match d.resolved() {
                        true => format!("<b>{}</b>", d.text()),
                        false => d.text(),
                    })
                }))
                .collect()
        })
        .collect();
    html_table(&headers, &cells)
}

/// The pretraining table as HTML.
fn pretraining_html(ends: &[PretrainingEnd]) -> String {
    let headers = PRETRAINING_COLUMNS.map(str::to_owned);
    let rows: Vec<Vec<String>> = ends
        .iter()
        .map(|end| {
            let mut cells = pretraining_cells(end);
            cells[0] = escape(&cells[0]);
            cells
        })
        .collect();
    html_table(&headers, &rows)
}

/// `report.md`.
pub fn report_markdown(
    rows: &[Row],
    pairs: &[Pair],
    context: &Context<'_>,
    notes: &[String],
) -> String {
    let mut out = format!("# {}\n\n", context.title);
    out.push_str("GLUE dev scores (×100): each task's median over fine-tuning seeds (over every pretraining run and seed for a row that pools several pretraining runs), with the min–max in parentheses; the GLUE average is the mean of the medians over the GLUE tasks present (WNLI is never averaged; a task without results is *missing*, never 0). Metrics: MCC for CoLA, Spearman for STS-B, accuracy elsewhere. † marks figures published in the paper (Clark et al. 2020), not runs of this pipeline.\n\n");
    out.push_str(&markdown(rows));
    if !context.pretraining.is_empty() {
        out.push_str("\n## Pretraining\n\nWhere each run ended (mean over its last 5% of steps): the masked-LM loss against the corpus's unigram entropy (a model that ignores context reaches the entropy; learning from context goes below it), the discriminator's ROC-AUC on replaced tokens (0.5 is chance), and the collapse of the final hidden states (mean pairwise cosine across tokens; 1 when every token has the same state).\n\n");
        out.push_str(&pretraining_markdown(context.pretraining));
    }
    if !pairs.is_empty() {
        let _ = write!(out, "\n## Differences\n\nA − B per task and on the GLUE average (×100), with 95% intervals ({}); in bold where the interval excludes 0.\n\n", interval_method(rows, pairs));
        out.push_str(&differences_markdown(rows, pairs));
    }
    out.push_str("\n## Reading\n\n");
    let reading = reading(rows, pairs);
    out.push_str(if reading.is_empty() {
        "No ELECTRA/BERT pair of this pipeline to compare.\n"
    } else {
        &reading
    });
    if let Some(section) = context.probing {
        out.push_str(&probing_markdown(section));
    }
    if !notes.is_empty() {
        out.push_str("\n## Notes\n\n");
        for note in notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    out.push_str("\n## Plots\n\n![GLUE vs FLOPs](plots/glue_vs_flops.svg)\n\n![Pretraining curves](plots/pretraining_curves.svg)\n\n![Task scores](plots/task_scores.svg)\n");
    if context.generator_plot {
        out.push_str("\n![GLUE vs generator size](plots/glue_vs_generator_size.svg)\n");
    }
    if context.probing.is_some() {
        out.push_str("\n![Probes vs FLOPs](plots/probe_vs_flops.svg)\n");
    }
    out.push_str(&provenance_markdown(context));
    out
}

/// What the probe section says before its tables.
const PROBING_INTRO: &str = "Linear part-of-speech probes (12 universal tags) on each frozen encoder's layers (0: the embeddings), trained on the Brown corpus's training documents and scored on held-out documents (whole files, stratified over genres). Accuracy on every held-out token, on tokens of word types with several tags in the probe's training split (*ambiguous*) and of types it never saw (*unseen*); *selectivity* is accuracy minus the accuracy of the same probe trained on a control task (each word type a fixed random tag; Hewitt & Liang 2019); *bits/token* is the online codelength of the training tags (Voita & Titov 2020; lower means the tags are easier to learn from the layer). Figures ×100 but bits, each the mean over the row's pretraining runs (or random-init seeds). Each row is read at its own best layer by held-out accuracy, and at its last layer.";

/// The probe section in Markdown.
fn probing_markdown(section: &ProbeSection) -> String {
    let mut out = format!(
        "\n## What pretraining learned (part-of-speech probes)\n\n{PROBING_INTRO}\n\n{}",
        section.table.markdown()
    );
    if !section.differences.rows.is_empty() {
        let _ = write!(
            out,
            "\nA − B with 95% intervals from a hierarchical bootstrap (each row's pretraining runs, then sentences: held-out sentences for accuracy and selectivity, training sentences for bits/token; the same sentences for both rows). Bold where the interval excludes 0; the best layer is chosen on the point estimate and not redrawn.\n\n{}",
            section.differences.markdown()
        );
        out.push('\n');
        for sentence in &section.reading {
            let _ = writeln!(out, "- {sentence}");
        }
    }
    out
}

/// Text cells made HTML, for [`html_table`].
fn escaped(rows: &[Vec<String>]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|c| escape(c)).collect())
        .collect()
}

/// The probe section in HTML.
fn probing_html(section: &ProbeSection) -> String {
    let mut out = format!(
        "<h2>What pretraining learned (part-of-speech probes)</h2><p>{}</p>{}",
        escape(&PROBING_INTRO.replace('*', "")),
        html_table(&section.table.headers, &escaped(&section.table.rows))
    );
    if !section.differences.rows.is_empty() {
        out.push_str(&html_table(
            &section.differences.headers,
            &escaped(&section.differences.rows)
                .iter()
                .map(|r| r.iter().map(|c| c.replace("**", "")).collect())
                .collect::<Vec<_>>(),
        ));
        out.push_str("<ul>");
        for sentence in &section.reading {
            let _ = write!(out, "<li>{}</li>", escape(sentence));
        }
        out.push_str("</ul>");
    }
    out
}

fn provenance_markdown(context: &Context<'_>) -> String {
    let mut out = String::from("\n## Provenance\n\n");
    if let Some(pipeline) = context.pipeline {
        let _ = writeln!(
            out,
            "Rerun: `electra-pipe run {pipeline} --data <data dir>` (every finished stage is taken from the cache).\n"
        );
    }
    out.push_str("Versions: ");
    let versions: Vec<String> = context
        .versions
        .iter()
        .map(|(what, v)| format!("{what} {v}"))
        .collect();
    out.push_str(&versions.join(", "));
    out.push_str(".\n\nInputs (BLAKE3, their addresses in the cache's object store):\n\n");
    for (what, digest) in context.inputs {
        let _ = writeln!(out, "- `{digest}` {what}");
    }
    out
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// The pretraining seed of the run whose weights (final or a snapshot) `result` fine-tuned;
/// `None` for random initialisation.
fn pretraining_seed(models: &[Model], result: &FinetuneSummary) -> Option<u64> {
    let digest = result.encoder.digest.as_deref()?;
    models
        .iter()
        .find(|m| m.weights().any(|(weights, _)| weights == digest))
        .map(|m| m.summary.seed)
}

/// `results.csv`: one row per (model, pretraining run, checkpoint, task, seed).
pub fn results_csv(
    models: &[Model],
    rows: &[Row],
    groups: &BTreeMap<Origin, Vec<FinetuneSummary>>,
) -> String {
    let mut out = String::from("model,objective,size,pretraining_seed,checkpoint_step,checkpoint_fraction,train_flops,task,metric,seed,score,train_examples,train_examples_available,epochs\n");
    for row in rows {
        let RowKind::Ours(origin) = &row.kind else {
            continue;
        };
        let (step, fraction) = match origin {
            Origin::Pretrained { model, step } => {
                let total = models[*model].summary.steps;
                let step = step.unwrap_or(total);
                (step.to_string(), format!("{}", step as f64 / total as f64))
            }
            Origin::Scratch(_) => ("0".to_owned(), "0".to_owned()),
        };
        let mut results: Vec<(Option<u64>, &FinetuneSummary)> = groups[origin]
            .iter()
            .map(|r| (pretraining_seed(models, r), r))
            .collect();
        results.sort_by_key(|(run, r)| {
            (
                TASK_ORDER.iter().position(|(t, _)| *t == r.task),
                *run,
                r.seed,
            )
        });
        for (run, r) in results {
            let run = run.map_or_else(String::new, |seed| seed.to_string());
            let _ = writeln!(
                out,
                "{},{},{},{run},{step},{fraction},{},{},{},{},{},{},{},{}",
                csv_field(&row.label),
                csv_field(&row.objective),
                csv_field(&row.size),
                row.train_flops.unwrap_or(0.0),
                r.task,
                r.metric,
                r.seed,
                r.score,
                r.train_examples,
                r.train_examples_available,
                r.epochs
            );
        }
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG document without its XML declaration, to embed in HTML.
fn inline_svg(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

/// `report.html`: self-contained (styles and plots inline).
pub fn report_html(
    rows: &[Row],
    pairs: &[Pair],
    context: &Context<'_>,
    notes: &[String],
    plots: &[(&str, &str)],
) -> String {
    let columns = task_columns(rows);
    let mut table = String::from("<table>\n<thead><tr><th>model</th><th>objective</th><th>size</th><th>params</th><th>train FLOPs</th><th>steps</th><th>pretraining time</th>");
    for (_, name) in &columns {
        let _ = write!(table, "<th>{name}</th>");
    }
    table.push_str("<th>GLUE avg</th></tr></thead>\n<tbody>\n");
    for row in rows {
        let class = match row.kind {
            RowKind::Published => " class=\"published\"",
            RowKind::Ours(_) => "",
        };
        let label = match row.kind {
            RowKind::Published => format!("{} †", escape(&row.label)),
            RowKind::Ours(_) => escape(&row.label),
        };
        let _ = write!(
            table,
            "<tr{class}><td>{label}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td>",
            escape(&row.objective),
            escape(&row.size),
            super::table::parameters(row.parameters),
            row.train_flops.map_or_else(String::new, super::table::flops),
            row.steps.map_or_else(String::new, |s| s.to_string()),
            escape(&row.wall.clone().unwrap_or_default()),
        );
        for (task, _) in &columns {
            let cell = super::table::task_cell(
                row,
                task,
                |lo, hi| format!("<span class=\"range\">({lo:.1}–{hi:.1})</span>"),
                "<span class=\"missing\">missing</span>",
            );
            let _ = write!(table, "<td class=\"n\">{cell}</td>");
        }
        let glue = row
            .glue
            .map_or_else(|| "—".to_owned(), |g| format!("<b>{g:.1}</b>"));
        let _ = writeln!(table, "<td class=\"n\">{glue}</td></tr>");
    }
    table.push_str("</tbody>\n</table>\n");
    if !context.pretraining.is_empty() {
        table.push_str("<h2>Pretraining</h2>\n<p>Where each run ended (mean over its last 5% of steps): masked-LM loss against the corpus's unigram entropy, the discriminator's ROC-AUC on replaced tokens (0.5 is chance), the collapse of the final hidden states (1 when every token has the same state).</p>\n");
        table.push_str(&pretraining_html(context.pretraining));
    }
    if !pairs.is_empty() {
        let _ = writeln!(table, "<h2>Differences</h2>\n<p>A − B per task and on the GLUE average (×100), with 95% intervals ({}); in bold where the interval excludes 0.</p>", interval_method(rows, pairs));
        table.push_str(&differences_html(rows, pairs));
    }
    if let Some(section) = context.probing {
        table.push_str(&probing_html(section));
    }
    let mut reading_html = String::new();
    for line in reading(rows, pairs).lines() {
        let _ = writeln!(
            reading_html,
            "<p>{}</p>",
            escape(line.trim_start_matches(['-', ' ']))
        );
    }
    let mut notes_html = String::new();
    for note in notes {
        let _ = writeln!(notes_html, "<li>{}</li>", escape(note));
    }
    let mut figures = String::new();
    for (caption, svg) in plots {
        let _ = writeln!(
            figures,
            "<figure>{}<figcaption>{}</figcaption></figure>",
            inline_svg(svg),
            escape(caption)
        );
    }
    let provenance = escape(&provenance_markdown(context)).replace('\n', "<br>\n");
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; color: #222; }}
h1 {{ font-size: 1.6rem; }}
table {{ border-collapse: collapse; font-size: 0.85rem; margin: 1rem 0; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.35rem 0.5rem; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }}
td.n {{ text-align: right; white-space: nowrap; }}
tr.published td {{ color: #666; font-style: italic; background: #fafafa; }}
.range {{ color: #888; font-size: 0.8em; }}
.missing {{ color: #b00; }}
figure {{ margin: 1.5rem 0; }}
figcaption {{ color: #555; font-size: 0.9rem; }}
svg {{ max-width: 100%; height: auto; }}
.provenance {{ font-size: 0.8rem; color: #555; word-break: break-all; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>GLUE dev scores (×100): each task's median over fine-tuning seeds (over every pretraining run and seed for a row that pools several pretraining runs), with the min–max; the GLUE average is the mean of the medians over the GLUE tasks present (WNLI never averaged; a task without results is <i>missing</i>, never 0). Metrics: MCC for CoLA, Spearman for STS-B, accuracy elsewhere. † marks figures published in the paper (Clark et al. 2020).</p>
{table}
<h2>Reading</h2>
{reading_html}
<h2>Notes</h2>
<ul>
{notes_html}</ul>
<h2>Plots</h2>
{figures}
<div class="provenance">{provenance}</div>
</body>
</html>
"#,
        title = escape(context.title),
    )
}

/// The notes the data calls for: the pretraining runs a row pools, training-set caps and
/// epochs per task, the fine-tuning seeds.
pub fn notes(models: &[Model], groups: &BTreeMap<Origin, Vec<FinetuneSummary>>) -> Vec<String> {
    let mut notes: Vec<String> = (0..models.len())
        .filter_map(|i| {
            let runs = runs_of(models, i);
            let seeds: Vec<String> = runs
                .iter()
                .map(|&j| models[j].summary.seed.to_string())
                .collect();
            // Once per pooled row: at its first run.
            (runs.len() > 1 && runs[0] == i).then(|| {
                format!(
                    "{} pools {} pretraining runs (pretraining seeds {}): its scores are over every run's fine-tuning seeds.",
                    models[i].name,
                    runs.len(),
                    seeds.join(", ")
                )
            })
        })
        .collect();
    let mut caps: BTreeMap<&str, (usize, usize, u64)> = BTreeMap::new();
    for r in groups.values().flatten() {
        caps.insert(
            r.task.as_str(),
            (r.train_examples, r.train_examples_available, r.epochs),
        );
    }
    notes.extend(caps
        .iter()
        .filter(|(_, (used, available, _))| used < available)
        .map(|(task, (used, available, epochs))| {
            format!(
                "{}: fine-tuned on {used} of its {available} training examples (a subset drawn by each seed), {epochs} epoch{}.",
                task_name(task),
                if *epochs == 1 { "" } else { "s" }
            )
        }));
    let seeds: BTreeMap<u64, ()> = groups.values().flatten().map(|r| (r.seed, ())).collect();
    notes.push(format!(
        "Fine-tuning seeds: {}.",
        seeds
            .keys()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::finetune::test_summary;
    use crate::records::pretrain::{test_summary as pretrain_summary, ObjectiveName};
    use crate::report::intervals::pairs;
    use crate::report::table::TaskScores;

    const N: usize = 400;

    /// SST-2 runs right on the first `accuracy` × N of the alternating gold labels, wrong on
    /// the rest, one per seed.
    fn runs(accuracies: &[f64]) -> Vec<FinetuneSummary> {
        let gold: Vec<u32> = (0..N as u32).map(|i| i % 2).collect();
        accuracies
            .iter()
            .enumerate()
            .map(|(i, &accuracy)| {
                let right = (accuracy * N as f64).round() as usize;
                let predicted: Vec<u32> = gold
                    .iter()
                    .enumerate()
                    .map(|(j, &g)| if j < right { g } else { 1 - g })
                    .collect();
                test_summary("sst2", i as u64 + 1, &gold, &predicted, None)
            })
            .collect()
    }

    fn row(label: &str, objective: &str, origin: &Origin, results: &[FinetuneSummary]) -> Row {
        let scores = TaskScores::new(results.iter().map(|r| (r.seed, r.score * 100.0)).collect());
        Row {
            label: label.to_owned(),
            kind: RowKind::Ours(origin.clone()),
            objective: objective.to_owned(),
            size: "mini".to_owned(),
            parameters: Some(1),
            train_flops: Some(1e14),
            steps: Some(10),
            wall: None,
            glue: Some(scores.median),
            tasks: BTreeMap::from([("sst2".to_owned(), scores)]),
        }
    }

    fn reading_of(electra: &[f64], bert: &[f64], scratch: &[f64]) -> String {
        reading_of_results(runs(electra), runs(bert), runs(scratch))
    }

    /// [`runs`] from each of pretraining runs `digests` in turn.
    fn pooled(accuracies: &[f64], digests: &[&str]) -> Vec<FinetuneSummary> {
        digests
            .iter()
            .flat_map(|digest| {
                runs(accuracies).into_iter().map(|mut r| {
                    r.encoder.digest = Some((*digest).to_owned());
                    r.encoder.from_scratch = false;
                    r
                })
            })
            .collect()
    }

    fn reading_of_results(
        electra: Vec<FinetuneSummary>,
        bert: Vec<FinetuneSummary>,
        scratch: Vec<FinetuneSummary>,
    ) -> String {
        let origins = [
            Origin::Pretrained {
                model: 0,
                step: None,
            },
            Origin::Pretrained {
                model: 1,
                step: None,
            },
            Origin::Scratch("mini".into()),
        ];
        let groups: BTreeMap<Origin, Vec<FinetuneSummary>> = origins
            .iter()
            .cloned()
            .zip([electra, bert, scratch])
            .collect();
        let rows: Vec<Row> = [("E", "ELECTRA"), ("B", "BERT"), ("R", "—")]
            .iter()
            .zip(&origins)
            .map(|((label, objective), origin)| row(label, objective, origin, &groups[origin]))
            .collect();
        let models: Vec<Model> = [ObjectiveName::Electra, ObjectiveName::Bert]
            .into_iter()
            .map(|objective| Model {
                name: String::new(),
                summary: pretrain_summary(objective, "digest"),
                curve: Vec::new(),
                config_path: "config.json".into(),
            })
            .collect();
        let pairs = pairs(&rows, &models, &groups);
        assert_eq!(pairs.len(), 3, "E − B, E − R, B − R");
        let table = differences_markdown(&rows, &pairs);
        assert!(
            table.contains("| E − B |") && table.contains("| B − R |"),
            "{table}"
        );
        reading(&rows, &pairs)
    }

    #[test]
    fn the_reading_gives_each_difference_its_interval_and_says_if_it_is_resolved() {
        let text = reading_of(
            &[0.51, 0.51, 0.52],
            &[0.60, 0.62, 0.64],
            &[0.615, 0.615, 0.615],
        );
        assert!(
            text.contains("ELECTRA − BERT = -11.0 [") && text.contains("Resolved: BERT ahead"),
            "{text}"
        );
        assert!(text.contains("Resolved per task: SST-2 -11.0 ["), "{text}");
        assert!(
            text.contains("(61.5): E -10.5 [") && text.contains("B +0.5 ["),
            "{text}"
        );
        assert!(text.contains("Neither is resolved above it"), "{text}");
        assert!(
            text.contains(" Resolved below it: E (its pretraining"),
            "{text}"
        );
        assert!(
            text.contains("not the spread between separately pretrained encoders (one pretraining run per model)"),
            "{text}"
        );

        let text = reading_of(
            &[0.51, 0.51, 0.52],
            &[0.60, 0.62, 0.64],
            &[0.55, 0.55, 0.55],
        );
        assert!(
            text.contains("(55.0): E -4.0 [") && text.contains("B +7.0 ["),
            "{text}"
        );
        assert!(text.contains("Only BERT is resolved above it."), "{text}");

        let text = reading_of(
            &[0.60, 0.61, 0.62],
            &[0.60, 0.61, 0.63],
            &[0.55, 0.55, 0.55],
        );
        assert!(
            text.contains("Not resolved at this scale: the interval includes 0."),
            "{text}"
        );
        assert!(text.contains("Both are resolved above it"), "{text}");
        assert!(!text.contains("Resolved below it"), "{text}");
    }

    #[test]
    fn pooled_pretraining_runs_are_named_in_the_reading() {
        let text = reading_of_results(
            pooled(&[0.60, 0.61, 0.62], &["e1", "e2"]),
            pooled(&[0.60, 0.62, 0.64], &["b1", "b2"]),
            runs(&[0.55, 0.55, 0.55]),
        );
        assert!(
            text.contains("hierarchical bootstrap (1000 replicates) over the pretraining runs pooled in each row (at least 2 per model)"),
            "{text}"
        );
        let one = reading_of_results(
            pooled(&[0.60, 0.61, 0.62], &["e1", "e2"]),
            pooled(&[0.60, 0.62, 0.64], &["b1"]),
            runs(&[0.55, 0.55, 0.55]),
        );
        assert!(one.contains("(one pretraining run per model)"), "{one}");
    }
}
