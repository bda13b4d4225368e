//! "What pretraining learned": the report's part-of-speech probe results (`probe` stages),
//! matched to the report's models by encoder digest as fine-tuning results are, pooled over a
//! model's pretraining runs, compared with 95% intervals from a hierarchical bootstrap:
//! each replicate draws the row's pretraining runs with replacement, then the sentences
//! with replacement (held-out sentences for accuracy and selectivity, training sentences for
//! the online codelength; the same draw for both rows of a comparison, which probed the same
//! sentences). A row's figure is the mean over its drawn runs of the figure on the drawn
//! sentences. Each row is read at its own best layer (by the point estimate; the choice is
//! not redrawn, so its interval leaves out the selection) and at its last layer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::intervals::{draw, draw_runs, interval, Difference, Pair, REPLICATES};
use super::results::{Model, Origin, Origins};
use super::table::{Row, RowKind};
use crate::error::{DataError, Result};
use crate::probe::outputs::{CODELENGTH_FILE, PREDICTIONS_FILE, SUMMARY_FILE};
use crate::records::probe::ProbeSummary;

/// Per sentence: tokens, and per layer slot the hits (held out: correct, control correct) or
/// bits (training: codelength).
#[derive(Debug, Clone, Default, PartialEq)]
struct SentenceCounts {
    tokens: f64,
    values: Vec<[f64; 2]>,
}

/// One probe stage's result as the report uses it.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    /// Its `summary.json`.
    pub summary: ProbeSummary,
    /// Where it came from.
    pub dir: PathBuf,
    /// The held-out sentences in id order: tokens, per layer (correct, control correct).
    eval: Vec<SentenceCounts>,
    /// The training sentences in id order: tokens, per layer (bits, 0).
    train: Vec<SentenceCounts>,
    eval_ids: Vec<String>,
    train_ids: Vec<String>,
}

/// Reads a TSV with a header; `f` gets each row's fields by column name.
fn read_tsv(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DataError::io(format!("reading {}", path.display()), e))?;
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .ok_or_else(|| DataError::invalid(path, "empty: expected a header line"))?
        .split('\t')
        .map(str::to_owned)
        .collect();
    let mut rows = Vec::new();
    for (i, line) in lines.enumerate() {
        let fields: Vec<String> = line.split('\t').map(str::to_owned).collect();
        if fields.len() != header.len() {
            return Err(DataError::malformed(
                path,
                i + 2,
                format!(
                    "{} fields: expected {} as in the header",
                    fields.len(),
                    header.len()
                ),
            ));
        }
        rows.push(fields);
    }
    Ok((header, rows))
}

/// Groups per-token rows by sentence (column 0), in sentence-id order.
fn by_sentence(
    rows: Vec<Vec<String>>,
    layers: usize,
    per_token: impl Fn(&[String], usize) -> [f64; 2],
) -> (Vec<String>, Vec<SentenceCounts>) {
    let mut sentences: BTreeMap<String, SentenceCounts> = BTreeMap::new();
    for row in rows {
        let counts = sentences
            .entry(row[0].clone())
            .or_insert_with(|| SentenceCounts {
                tokens: 0.0,
                values: vec![[0.0; 2]; layers],
            });
        counts.tokens += 1.0;
        for (slot, v) in counts.values.iter_mut().enumerate() {
            let [a, b] = per_token(&row, slot);
            v[0] += a;
            v[1] += b;
        }
    }
    sentences.into_iter().unzip()
}

/// The column of `name` in `header`; the error names the file.
fn column(header: &[String], name: &str, path: &Path) -> Result<usize> {
    header
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| DataError::invalid(path, format!("no column `{name}` in the header")))
}

/// Reads a probe stage's `probe` directory.
pub fn read_probe(dir: &Path) -> Result<ProbeResult> {
    let summary = ProbeSummary::read(&dir.join(SUMMARY_FILE))?;
    let layers = summary.layers.len();
    let path = dir.join(PREDICTIONS_FILE);
    let (header, rows) = read_tsv(&path)?;
    let gold = column(&header, "gold", &path)?;
    let control = column(&header, "control", &path)?;
    let mut columns = Vec::new();
    for l in &summary.layers {
        columns.push((
            column(&header, &format!("layer{}", l.layer), &path)?,
            column(&header, &format!("layer{}_control", l.layer), &path)?,
        ));
    }
    let (eval_ids, eval) = by_sentence(rows, layers, |row, slot| {
        let (task, ctrl) = columns[slot];
        [
            f64::from(u8::from(row[task] == row[gold])),
            f64::from(u8::from(row[ctrl] == row[control])),
        ]
    });
    let path = dir.join(CODELENGTH_FILE);
    let (header, rows) = read_tsv(&path)?;
    let mut bits_columns = Vec::new();
    for l in &summary.layers {
        bits_columns.push(column(&header, &format!("layer{}", l.layer), &path)?);
    }
    for (i, row) in rows.iter().enumerate() {
        for &c in &bits_columns {
            if row[c].parse::<f64>().is_err() {
                return Err(DataError::malformed(
                    &path,
                    i + 2,
                    format!("`{}` is not a number of bits", row[c]),
                ));
            }
        }
    }
    let (train_ids, train) = by_sentence(rows, layers, |row, slot| {
        [row[bits_columns[slot]].parse().unwrap_or(0.0), 0.0]
    });
    Ok(ProbeResult {
        summary,
        dir: dir.to_owned(),
        eval,
        train,
        eval_ids,
        train_ids,
    })
}

/// A figure read from a probe's per-sentence counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// Accuracy on the held-out tokens (×100).
    Accuracy,
    /// Accuracy − control-task accuracy (×100).
    Selectivity,
    /// Online codelength per training token (bits).
    BitsPerToken,
}

impl Figure {
    /// Every figure compared.
    pub const ALL: [Figure; 3] = [Figure::Accuracy, Figure::Selectivity, Figure::BitsPerToken];

    /// Its column name.
    pub fn name(self) -> &'static str {
        match self {
            Figure::Accuracy => "accuracy",
            Figure::Selectivity => "selectivity",
            Figure::BitsPerToken => "bits/token",
        }
    }

    /// The figure of layer slot `slot` over `sentences` (indices, with repeats).
    fn of(self, probe: &ProbeResult, slot: usize, sentences: &[usize]) -> f64 {
        let counts = match self {
            Figure::BitsPerToken => &probe.train,
            _ => &probe.eval,
        };
        let (mut tokens, mut a, mut b) = (0.0, 0.0, 0.0);
        for &s in sentences {
            let c = &counts[s];
            tokens += c.tokens;
            a += c.values[slot][0];
            b += c.values[slot][1];
        }
        let tokens = f64::max(tokens, 1.0);
        match self {
            Figure::Accuracy => 100.0 * a / tokens,
            Figure::Selectivity => 100.0 * (a - b) / tokens,
            Figure::BitsPerToken => a / tokens,
        }
    }

    fn sentences(self, probe: &ProbeResult) -> usize {
        match self {
            Figure::BitsPerToken => probe.train.len(),
            _ => probe.eval.len(),
        }
    }
}

/// One row of the probe table: the probes of one origin (its pretraining runs or seeds).
#[derive(Debug, Clone)]
pub struct ProbeRow {
    /// The row's label (the table row's).
    pub label: String,
    /// Its origin.
    pub origin: Origin,
    /// Its probes, one per pretraining run (or random-init seed).
    pub probes: Vec<ProbeResult>,
    /// The layers probed (the first probe's).
    pub layers: Vec<usize>,
}

impl ProbeRow {
    /// The pooled figure at layer slot `slot` on every sentence.
    pub fn figure(&self, figure: Figure, slot: usize) -> f64 {
        let all: Vec<usize> = (0..figure.sentences(&self.probes[0])).collect();
        let values: Vec<f64> = self
            .probes
            .iter()
            .map(|p| figure.of(p, slot, &all))
            .collect();
        values.iter().sum::<f64>() / values.len() as f64
    }

    /// The layer slot of the highest pooled accuracy (the lowest layer among ties).
    pub fn best_slot(&self) -> usize {
        let accuracy: Vec<f64> = (0..self.layers.len())
            .map(|slot| self.figure(Figure::Accuracy, slot))
            .collect();
        let mut best = 0;
        for (slot, &value) in accuracy.iter().enumerate() {
            if value > accuracy[best] {
                best = slot;
            }
        }
        best
    }

    /// The last layer's slot.
    pub fn last_slot(&self) -> usize {
        self.layers.len() - 1
    }

    /// The slot of layer 0, if probed.
    pub fn embedding_slot(&self) -> Option<usize> {
        self.layers.iter().position(|&l| l == 0)
    }
}

/// Groups probe results by the weights they probed (final weights and snapshots by digest;
/// random init by size); a pretrained encoder none of the models wrote is an error naming the
/// result. Every probe must have probed the same sentences.
pub fn group(
    models: &[Model],
    origins: &Origins,
    results: Vec<ProbeResult>,
) -> Result<BTreeMap<Origin, Vec<ProbeResult>>> {
    let mut groups: BTreeMap<Origin, Vec<ProbeResult>> = BTreeMap::new();
    if let Some(first) = results.first() {
        for r in &results {
            if r.eval_ids != first.eval_ids || r.train_ids != first.train_ids {
                return Err(DataError::invalid(
                    &r.dir,
                    format!(
                        "this probe used other sentences than {}: expected every probe of a report to use the same tagged corpus and split",
                        first.dir.display()
                    ),
                ));
            }
            if r.summary.layers.is_empty() {
                return Err(DataError::invalid(&r.dir, "no layers probed"));
            }
        }
    }
    for r in results {
        let origin = match origins.of(&r.summary.encoder, &r.dir)? {
            // The snapshot at the last step is the final weights.
            Origin::Pretrained {
                model,
                step: Some(step),
            } if step == models[model].summary.steps => Origin::Pretrained { model, step: None },
            origin => origin,
        };
        groups.entry(origin).or_default().push(r);
    }
    Ok(groups)
}

/// The rows of the probe table: every model's final weights and every random-init size
/// with probes, labelled as in the GLUE table (final weights first, in the models' order).
pub fn rows(models: &[Model], groups: &BTreeMap<Origin, Vec<ProbeResult>>) -> Vec<ProbeRow> {
    groups
        .iter()
        .filter(|(origin, _)| !matches!(origin, Origin::Pretrained { step: Some(_), .. }))
        .map(|(origin, probes)| ProbeRow {
            label: match origin {
                Origin::Pretrained { model, .. } => models[*model].name.clone(),
                Origin::Scratch(size) => format!("no pretraining ({size}, random init)"),
            },
            origin: origin.clone(),
            layers: probes[0].summary.layers.iter().map(|l| l.layer).collect(),
            probes: probes.clone(),
        })
        .collect()
}

/// `figure` of row `a` at `slot_a` − row `b` at `slot_b`, with a 95% interval from the
/// hierarchical bootstrap (`same_runs`: `a` and `b` are one row at two layers, so one draw
/// of runs serves both).
pub fn difference(
    figure: Figure,
    (a, slot_a): (&ProbeRow, usize),
    (b, slot_b): (&ProbeRow, usize),
    same_runs: bool,
    seed: u64,
) -> Difference {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = figure.sentences(&a.probes[0]);
    let mean = |row: &ProbeRow, runs: &[usize], slot: usize, sentences: &[usize]| {
        runs.iter()
            .map(|&r| figure.of(&row.probes[r], slot, sentences))
            .sum::<f64>()
            / runs.len() as f64
    };
    let mut replicates = Vec::with_capacity(REPLICATES);
    for _ in 0..REPLICATES {
        let runs_a = draw_runs(a.probes.len(), &mut rng);
        let runs_b = if same_runs {
            runs_a.clone()
        } else {
            draw_runs(b.probes.len(), &mut rng)
        };
        let sentences = draw(n, &mut rng);
        replicates
            .push(mean(a, &runs_a, slot_a, &sentences) - mean(b, &runs_b, slot_b, &sentences));
    }
    let (low, high) = interval(replicates);
    Difference {
        estimate: a.figure(figure, slot_a) - b.figure(figure, slot_b),
        low,
        high,
    }
}

/// One comparison of the probe section: its label and each figure's difference.
#[derive(Debug, Clone)]
pub struct ProbeComparison {
    /// `ELECTRA-Mini − BERT-Mini, best layers (3 vs 4)`.
    pub label: String,
    /// Per figure of [`Figure::ALL`].
    pub differences: Vec<Difference>,
}

/// The comparisons: for each of the report's pairs (ELECTRA − its BERT, each − random init)
/// whose rows both have probes, at the best layers and at the last layers; then each
/// pretrained row's best layer against its own layer 0.
pub fn comparisons(rows: &[ProbeRow], table: &[Row], pairs: &[Pair]) -> Vec<ProbeComparison> {
    let find = |i: usize| {
        let RowKind::Ours(origin) = &table[i].kind else {
            return None;
        };
        rows.iter().find(|r| &r.origin == origin)
    };
    let compare =
        |label: String, a: (&ProbeRow, usize), b: (&ProbeRow, usize), same: bool| ProbeComparison {
            label,
            differences: Figure::ALL
                .iter()
                .enumerate()
                .map(|(k, &f)| difference(f, a, b, same, k as u64))
                .collect(),
        };
    let mut out = Vec::new();
    for pair in pairs {
        let (Some(a), Some(b)) = (find(pair.a), find(pair.b)) else {
            continue;
        };
        let (best_a, best_b) = (a.best_slot(), b.best_slot());
        out.push(compare(
            format!(
                "{} − {}, best layers ({} vs {})",
                a.label, b.label, a.layers[best_a], b.layers[best_b]
            ),
            (a, best_a),
            (b, best_b),
            false,
        ));
        out.push(compare(
            format!(
                "{} − {}, last layers ({} vs {})",
                a.label,
                b.label,
                a.layers[a.last_slot()],
                b.layers[b.last_slot()]
            ),
            (a, a.last_slot()),
            (b, b.last_slot()),
            false,
        ));
    }
    for row in rows {
        if !matches!(row.origin, Origin::Pretrained { step: None, .. }) {
            continue;
        }
        if let Some(zero) = row.embedding_slot().filter(|&zero| zero != row.best_slot()) {
            let best = row.best_slot();
            out.push(compare(
                format!("{} layer {} − its layer 0", row.label, row.layers[best]),
                (row, best),
                (row, zero),
                true,
            ));
        }
    }
    out
}

/// A table as header and rows of cells, for Markdown and HTML alike.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cells {
    /// Column headers.
    pub headers: Vec<String>,
    /// Rows of cells.
    pub rows: Vec<Vec<String>>,
}

impl Cells {
    /// As a Markdown table.
    pub fn markdown(&self) -> String {
        let mut out = format!("| {} |\n", self.headers.join(" | "));
        out.push_str(&format!("|{}\n", "---|".repeat(self.headers.len())));
        for row in &self.rows {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        out
    }
}

/// The probe section's content.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeSection {
    /// Per row: its figures at its best layer, its last layer and layer 0; then the
    /// majority-tag baseline.
    pub table: Cells,
    /// The comparisons with their intervals.
    pub differences: Cells,
    /// What is and is not resolved, in sentences.
    pub reading: Vec<String>,
}

/// Builds the section from the probe rows and their comparisons.
pub fn section(rows: &[ProbeRow], comparisons: &[ProbeComparison]) -> ProbeSection {
    let mut table = Cells {
        headers: [
            "encoder",
            "runs",
            "best layer",
            "accuracy",
            "ambiguous",
            "unseen",
            "selectivity",
            "bits/token",
            "last layer",
            "accuracy",
            "selectivity",
            "bits/token",
            "layer 0 accuracy",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows: Vec::new(),
    };
    let pooled = |row: &ProbeRow, slot: usize, f: fn(&crate::records::probe::Accuracies) -> f64| {
        let values: Vec<f64> = row
            .probes
            .iter()
            .map(|p| f(&p.summary.layers[slot].accuracy))
            .collect();
        format!(
            "{:.1}",
            100.0 * values.iter().sum::<f64>() / values.len() as f64
        )
    };
    for row in rows {
        let (best, last) = (row.best_slot(), row.last_slot());
        let figure = |f: Figure, slot: usize| match f {
            Figure::BitsPerToken => format!("{:.3}", row.figure(f, slot)),
            _ => format!("{:.1}", row.figure(f, slot)),
        };
        table.rows.push(vec![
            row.label.clone(),
            row.probes.len().to_string(),
            row.layers[best].to_string(),
            figure(Figure::Accuracy, best),
            pooled(row, best, |a| a.ambiguous),
            pooled(row, best, |a| a.unseen),
            figure(Figure::Selectivity, best),
            figure(Figure::BitsPerToken, best),
            row.layers[last].to_string(),
            figure(Figure::Accuracy, last),
            figure(Figure::Selectivity, last),
            figure(Figure::BitsPerToken, last),
            row.embedding_slot()
                .map_or_else(|| "–".to_owned(), |z| figure(Figure::Accuracy, z)),
        ]);
    }
    if let Some(first) = rows.first().and_then(|r| r.probes.first()) {
        let m = first.summary.majority;
        let pct = |v: f64| format!("{:.1}", 100.0 * v);
        let mut cells = vec![
            "majority tag per word (training split)".to_owned(),
            "–".into(),
            "–".into(),
        ];
        cells.extend([pct(m.all), pct(m.ambiguous), pct(m.unseen)]);
        cells.extend(std::iter::repeat_n("–".to_owned(), 7));
        table.rows.push(cells);
    }
    let mut differences = Cells {
        headers: ["A − B", "accuracy", "selectivity", "bits/token"]
            .map(str::to_owned)
            .to_vec(),
        rows: Vec::new(),
    };
    let mut reading = Vec::new();
    for c in comparisons {
        let mut cells = vec![c.label.clone()];
        let mut resolved = Vec::new();
        let mut unresolved = Vec::new();
        for (f, d) in Figure::ALL.iter().zip(&c.differences) {
            let text = match f {
                Figure::BitsPerToken => {
                    format!("{:+.3} [{:+.3}, {:+.3}]", d.estimate, d.low, d.high)
                }
                _ => d.text(),
            };
            if d.resolved() {
                cells.push(format!("**{text}**"));
                let better = match f {
                    Figure::BitsPerToken => d.estimate < 0.0,
                    _ => d.estimate > 0.0,
                };
                resolved.push(format!(
                    "{} ({} for A)",
                    f.name(),
                    if better { "better" } else { "worse" }
                ));
            } else {
                cells.push(text);
                unresolved.push(f.name());
            }
        }
        differences.rows.push(cells);
        let mut sentence = format!("{}: ", c.label);
        if resolved.is_empty() {
            sentence.push_str("no difference resolved");
        } else {
            sentence.push_str(&format!("resolved on {}", resolved.join(", ")));
            if !unresolved.is_empty() {
                sentence.push_str(&format!("; not resolved on {}", unresolved.join(", ")));
            }
        }
        sentence.push('.');
        reading.push(sentence);
    }
    if !comparisons.is_empty() {
        let most = rows.iter().map(|r| r.probes.len()).max().unwrap_or(1);
        reading.push(if most > 1 {
            format!(
                "What the intervals cover: the finite sentences probed and, for rows that pool several pretraining runs or random-init seeds (up to {most} here), the spread between them, coarsely (a bootstrap over k runs sees (k − 1)/k of their variance); not the probes' own training seed, which is the same for every encoder."
            )
        } else {
            "What the intervals cover: the finite sentences probed, not the spread between separately pretrained encoders (one run per row), nor the probes' own training seed.".to_owned()
        });
    }
    ProbeSection {
        table,
        differences,
        reading,
    }
}

/// The probe's accuracy (best layer of each snapshot) and online codelength at that layer
/// against train FLOPs, per pretraining run: `(run label, points)` for each figure.
pub type ProbeCurves = Vec<(String, Vec<(f64, f64)>, Vec<(f64, f64)>)>;

/// Every pretraining run's probes along its snapshots: `(FLOPs, best accuracy ×100)` and
/// `(FLOPs, bits per token at that layer)`, ordered by FLOPs.
pub fn curves(models: &[Model], origins: &Origins, results: &[ProbeResult]) -> ProbeCurves {
    let mut by_run: BTreeMap<usize, Vec<(f64, f64, f64)>> = BTreeMap::new();
    for r in results {
        let Some((run, step)) = r
            .summary
            .encoder
            .digest
            .as_deref()
            .and_then(|d| origins.run_of(d))
        else {
            continue;
        };
        let model = &models[run];
        let flops = match step {
            None => model.summary.train_flops,
            Some(step) => model.curve.iter().find(|s| s.step == step).map_or(
                model.summary.train_flops * step as f64 / model.summary.steps.max(1) as f64,
                |s| s.train_flops,
            ),
        };
        let best = r
            .summary
            .layers
            .iter()
            .max_by(|a, b| a.accuracy.all.total_cmp(&b.accuracy.all))
            .expect("layers checked");
        by_run.entry(run).or_default().push((
            flops,
            100.0 * best.accuracy.all,
            best.bits_per_token,
        ));
    }
    by_run
        .into_iter()
        .map(|(run, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            points.dedup_by(|a, b| a.0 == b.0);
            (
                super::results::run_label(models, run),
                points.iter().map(|p| (p.0, p.1)).collect(),
                points.iter().map(|p| (p.0, p.2)).collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A probe result of one layer whose held-out sentences (10 tokens each) have `correct`
    /// right answers each, and whose training sentences cost `bits` each.
    fn result(correct: &[f64], bits: &[f64]) -> ProbeResult {
        let summary: ProbeSummary = serde_json::from_value(serde_json::json!({
            "format": crate::records::probe::PROBE_SUMMARY_FORMAT,
            "encoder": {"from_scratch": true, "config": null},
            "tagset": "universal", "tags": [], "train_docs": [], "eval_docs": [],
            "train_tokens": 0, "eval_tokens": 0, "eval_sentences": 0, "ambiguous_tokens": 0,
            "unseen_tokens": 0, "dropped_words": 0,
            "majority": {"all": 0.9, "ambiguous": 0.8, "unseen": 0.6},
            "layers": [{"layer": 0, "accuracy": {"all": 0.5, "ambiguous": 0.5, "unseen": 0.5},
                        "control_accuracy": 0.4, "selectivity": 0.1, "codelength_bits": 1.0,
                        "bits_per_token": 1.0, "compression": 1.0}],
            "seed": 0, "l2": 0.0, "epochs": 1, "min_steps": 0, "batch_size": 1, "lr": 0.1,
            "forward_flops": 0.0, "backend": "flex", "seconds": 0.0
        }))
        .unwrap();
        let counts = |values: &[f64]| -> Vec<SentenceCounts> {
            values
                .iter()
                .map(|&v| SentenceCounts {
                    tokens: 10.0,
                    values: vec![[v, 0.0]],
                })
                .collect()
        };
        ProbeResult {
            summary,
            dir: PathBuf::from("probe"),
            eval: counts(correct),
            train: counts(bits),
            eval_ids: (0..correct.len()).map(|i| i.to_string()).collect(),
            train_ids: (0..bits.len()).map(|i| i.to_string()).collect(),
        }
    }

    fn row(probes: Vec<ProbeResult>) -> ProbeRow {
        ProbeRow {
            label: "row".to_owned(),
            origin: Origin::Scratch("tiny".to_owned()),
            probes,
            layers: vec![0],
        }
    }

    #[test]
    fn a_row_against_itself_differs_by_nothing() {
        let a = row(vec![result(&[5.0, 7.0, 6.0, 9.0], &[3.0, 4.0])]);
        let d = difference(Figure::Accuracy, (&a, 0), (&a, 0), false, 1);
        assert_eq!((d.estimate, d.low, d.high), (0.0, 0.0, 0.0));
    }

    #[test]
    fn a_consistent_gap_is_resolved_and_spread_runs_widen_the_interval() {
        let sentences: Vec<f64> = (0..200).map(|i| (i % 5) as f64 + 3.0).collect();
        let better: Vec<f64> = sentences.iter().map(|v| v + 1.0).collect();
        let bits: Vec<f64> = vec![10.0; 50];
        let a = row(vec![result(&better, &bits)]);
        let b = row(vec![result(&sentences, &bits)]);
        let d = difference(Figure::Accuracy, (&a, 0), (&b, 0), false, 1);
        assert!((d.estimate - 10.0).abs() < 1e-9 && d.resolved(), "{d:?}");
        // Two runs of A far apart: the mean is the same, the interval covers their spread.
        let worse: Vec<f64> = sentences.iter().map(|v| v - 1.0).collect();
        let runs = row(vec![
            result(&better, &bits),
            result(&worse.iter().map(|v| v + 2.0).collect::<Vec<_>>(), &bits),
        ]);
        let spread = row(vec![
            result(
                &sentences.iter().map(|v| v + 3.0).collect::<Vec<_>>(),
                &bits,
            ),
            result(&worse, &bits),
        ]);
        let narrow = difference(Figure::Accuracy, (&runs, 0), (&b, 0), false, 1);
        let wide = difference(Figure::Accuracy, (&spread, 0), (&b, 0), false, 1);
        assert!((wide.estimate - narrow.estimate).abs() < 1e-9);
        assert!(
            wide.high - wide.low > 2.0 * (narrow.high - narrow.low),
            "{narrow:?} {wide:?}"
        );
        assert!(!wide.resolved(), "{wide:?}");
    }
}
