//! The report's documents: `report.md`, the tidy `results.csv` and the self-contained
//! `report.html` (plots embedded), all from the same rows.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::results::{Model, Origin};
use super::table::{markdown, task_columns, Row, RowKind, TASK_ORDER};
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
}

fn task_name(task: &str) -> &str {
    TASK_ORDER
        .iter()
        .find(|(t, _)| *t == task)
        .map_or(task, |(_, name)| name)
}

/// A plain-language comparison of each ELECTRA row with the BERT row of equal train FLOPs
/// (±1%): the GLUE gap, and per task the gap of medians against the seeds' spread.
pub fn reading(rows: &[Row]) -> String {
    let ours = |objective: &str| -> Vec<&Row> {
        rows.iter()
            .filter(|r| {
                r.objective == objective
                    && matches!(r.kind, RowKind::Ours(Origin::Pretrained { step: None, .. }))
            })
            .collect()
    };
    let mut out = String::new();
    for electra in ours("ELECTRA") {
        let Some(flops) = electra.train_flops else {
            continue;
        };
        let matched = ours("BERT").into_iter().find(|b| {
            b.train_flops
                .is_some_and(|f| (f - flops).abs() <= 0.01 * flops)
        });
        let Some(bert) = matched else {
            let _ = writeln!(
                out,
                "- {}: no BERT row with the same train FLOPs ({}) to compare with.",
                electra.label,
                super::table::flops(flops)
            );
            continue;
        };
        if let (Some(e), Some(b)) = (electra.glue, bert.glue) {
            let _ = writeln!(
                out,
                "- At {} train FLOPs, {} scores a GLUE average of {e:.1} and {} {b:.1}: {} by {:.1} points (the paper: ELECTRA-Small 79.9 vs. BERT-Small 75.1, +4.8 at 1.4e18).",
                super::table::flops(flops),
                electra.label,
                bert.label,
                if e >= b { "ELECTRA ahead" } else { "BERT ahead" },
                (e - b).abs()
            );
        }
        let mut clear = Vec::new();
        let mut within = Vec::new();
        for (task, name) in task_columns(rows) {
            let (Some(e), Some(b)) = (electra.tasks.get(task), bert.tasks.get(task)) else {
                continue;
            };
            let gap = e.median - b.median;
            let spread = (e.max - e.min).max(b.max - b.min);
            let text = format!("{name} {gap:+.1} (seed range {spread:.1})");
            if gap.abs() > spread && e.seeds.len() > 1 {
                clear.push(text);
            } else {
                within.push(text);
            }
        }
        if !clear.is_empty() {
            let _ = writeln!(
                out,
                "  - Gaps larger than the seeds' spread (ELECTRA − BERT medians): {}.",
                clear.join(", ")
            );
        }
        if !within.is_empty() {
            let _ = writeln!(
                out,
                "  - Within the seeds' spread, so not a difference these runs can show: {}.",
                within.join(", ")
            );
        }
        if let Some(line) = against_random_init(rows, electra, bert) {
            let _ = writeln!(out, "  - {line}");
        }
    }
    out
}

/// How far the pair is above the random-init row of the same size, and what it means when
/// neither is clearly above it: pretraining has not given features that transfer yet.
fn against_random_init(rows: &[Row], electra: &Row, bert: &Row) -> Option<String> {
    let scratch = rows.iter().find(
        |r| matches!(&r.kind, RowKind::Ours(Origin::Scratch(size)) if *size == electra.size),
    )?;
    let (s, e, b) = (scratch.glue?, electra.glue?, bert.glue?);
    let mut line = format!(
        "Against random initialisation of the same size ({s:.1}): {} {:+.1}, {} {:+.1}.",
        electra.label,
        e - s,
        bert.label,
        b - s
    );
    if e.max(b) < s + 1.0 {
        line.push_str(" Neither is a point above it: at this compute pretraining has not yet given either encoder features that transfer, so these runs cannot test the paper's claim.");
    }
    Some(line)
}

/// `report.md`.
pub fn report_markdown(rows: &[Row], context: &Context<'_>, notes: &[String]) -> String {
    let mut out = format!("# {}\n\n", context.title);
    out.push_str("GLUE dev scores (×100): each task's median over fine-tuning seeds, with the min–max over seeds in parentheses; the GLUE average is the mean of the medians over the GLUE tasks present (WNLI is never averaged; a task without results is *missing*, never 0). Metrics: MCC for CoLA, Spearman for STS-B, accuracy elsewhere. † marks figures published in the paper (Clark et al. 2020), not runs of this pipeline.\n\n");
    out.push_str(&markdown(rows));
    out.push_str("\n## Reading\n\n");
    let reading = reading(rows);
    out.push_str(if reading.is_empty() {
        "No ELECTRA/BERT pair of this pipeline to compare.\n"
    } else {
        &reading
    });
    if !notes.is_empty() {
        out.push_str("\n## Notes\n\n");
        for note in notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    out.push_str("\n## Plots\n\n![GLUE vs FLOPs](plots/glue_vs_flops.svg)\n\n![Pretraining loss](plots/pretraining_loss.svg)\n\n![Task scores](plots/task_scores.svg)\n");
    out.push_str(&provenance_markdown(context));
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

/// `results.csv`: one row per (model, checkpoint, task, seed).
pub fn results_csv(
    models: &[Model],
    rows: &[Row],
    groups: &BTreeMap<Origin, Vec<FinetuneSummary>>,
) -> String {
    let mut out = String::from("model,objective,size,checkpoint_step,checkpoint_fraction,train_flops,task,metric,seed,score,train_examples,train_examples_available,epochs\n");
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
        let mut results: Vec<&FinetuneSummary> = groups[origin].iter().collect();
        results.sort_by_key(|r| (TASK_ORDER.iter().position(|(t, _)| *t == r.task), r.seed));
        for r in results {
            let _ = writeln!(
                out,
                "{},{},{},{step},{fraction},{},{},{},{},{},{},{},{}",
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
    let mut reading_html = String::new();
    for line in reading(rows).lines() {
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
<p>GLUE dev scores (×100): each task's median over fine-tuning seeds, with the min–max over seeds; the GLUE average is the mean of the medians over the GLUE tasks present (WNLI never averaged; a task without results is <i>missing</i>, never 0). Metrics: MCC for CoLA, Spearman for STS-B, accuracy elsewhere. † marks figures published in the paper (Clark et al. 2020).</p>
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

/// The notes the data calls for: training-set caps and epochs per task.
pub fn notes(groups: &BTreeMap<Origin, Vec<FinetuneSummary>>) -> Vec<String> {
    let mut caps: BTreeMap<&str, (usize, usize, u64)> = BTreeMap::new();
    for r in groups.values().flatten() {
        caps.insert(
            r.task.as_str(),
            (r.train_examples, r.train_examples_available, r.epochs),
        );
    }
    let mut notes: Vec<String> = caps
        .iter()
        .filter(|(_, (used, available, _))| used < available)
        .map(|(task, (used, available, epochs))| {
            format!(
                "{}: fine-tuned on {used} of its {available} training examples (a subset drawn by each seed), {epochs} epoch{}.",
                task_name(task),
                if *epochs == 1 { "" } else { "s" }
            )
        })
        .collect();
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
    use crate::report::table::TaskScores;

    fn row(label: &str, objective: &str, origin: Origin, sst2: &[f64]) -> Row {
        let scores = TaskScores::new(
            sst2.iter()
                .enumerate()
                .map(|(i, &v)| (i as u64 + 1, v))
                .collect(),
        );
        Row {
            label: label.to_owned(),
            kind: RowKind::Ours(origin),
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

    #[test]
    fn the_reading_compares_the_pair_and_the_random_init_baseline() {
        let electra = row(
            "E",
            "ELECTRA",
            Origin::Pretrained {
                model: 0,
                step: None,
            },
            &[51.0, 51.0, 52.0],
        );
        let bert = row(
            "B",
            "BERT",
            Origin::Pretrained {
                model: 1,
                step: None,
            },
            &[60.0, 62.0, 64.0],
        );
        let scratch = row(
            "R",
            "—",
            Origin::Scratch("mini".into()),
            &[61.5, 61.5, 61.5],
        );
        let text = reading(&[electra.clone(), bert.clone(), scratch]);
        assert!(text.contains("BERT ahead by 11.0 points"), "{text}");
        assert!(text.contains("Gaps larger than the seeds' spread (ELECTRA − BERT medians): SST-2 -11.0 (seed range 4.0)"), "{text}");
        assert!(
            text.contains("(61.5): E -10.5, B +0.5. Neither is a point above it"),
            "{text}"
        );

        let scratch = row("R", "—", Origin::Scratch("mini".into()), &[55.0]);
        let text = reading(&[electra, bert, scratch]);
        assert!(text.contains("(55.0): E -4.0, B +7.0."), "{text}");
        assert!(!text.contains("Neither"), "{text}");
    }
}
