//! The report's plots, as SVG drawn with plotters: GLUE average against train FLOPs (log
//! axis), the pretraining curves (losses, the discriminator's AUC, collapse), and every seed's
//! dev score per task.

use plotters::prelude::*;

use super::results::Model;
use super::table::{task_columns, Row, RowKind};
use crate::error::{DataError, Result};
use crate::records::pretrain::StepRecord;

const WIDTH: u32 = 860;
const HEIGHT: u32 = 460;
const FONT: &str = "sans-serif";

fn colour(i: usize) -> RGBColor {
    const PALETTE: [RGBColor; 8] = [
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0x94, 0x67, 0xbd),
        RGBColor(0xff, 0x7f, 0x0e),
        RGBColor(0x8c, 0x56, 0x4b),
        RGBColor(0xe3, 0x77, 0xc2),
        RGBColor(0x7f, 0x7f, 0x7f),
    ];
    PALETTE[i % PALETTE.len()]
}

fn plot_error(e: impl std::fmt::Display) -> DataError {
    DataError::Config(format!("drawing a plot: {e}"))
}

/// Draws onto an SVG string of the usual size with `draw`.
fn svg(
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<String> {
    svg_of(WIDTH, HEIGHT, draw)
}

/// Draws onto an SVG string of `width` × `height` with `draw`.
fn svg_of(
    width: u32,
    height: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        draw(&root)?;
        root.present().map_err(plot_error)?;
    }
    Ok(out)
}

/// GLUE average against train FLOPs on a log axis: one line per pretraining run through its
/// snapshots and final weights, and the paper's ELECTRA-Small curve and BERT-Small point.
pub fn glue_vs_flops(models: &[Model], rows: &[Row]) -> Result<String> {
    let mut series: Vec<(String, Vec<(f64, f64)>)> = models
        .iter()
        .enumerate()
        .filter(|&(i, _)| super::results::row_model(models, i) == i)
        .map(|(i, m)| {
            let points = rows
                .iter()
                .filter(|r| matches!(&r.kind, RowKind::Ours(super::results::Origin::Pretrained { model, .. }) if *model == i))
                .filter_map(|r| Some((r.train_flops?, r.glue?)))
                .collect();
            (m.name.clone(), points)
        })
        .collect();
    for objective in ["ELECTRA", "BERT"] {
        let points = rows
            .iter()
            .filter(|r| r.kind == RowKind::Published && r.objective == objective)
            .filter_map(|r| Some((r.train_flops?, r.glue?)))
            .collect();
        series.push((format!("{objective}-Small (published)"), points));
    }
    let all: Vec<(f64, f64)> = series.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    let (lo, hi) = all.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &(x, _)| {
        (lo.min(x), hi.max(x))
    });
    let (y_lo, y_hi) = all.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &(_, y)| {
        (lo.min(y), hi.max(y))
    });
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption("GLUE dev average vs. pretraining compute", (FONT, 20))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(54)
            .build_cartesian_2d(
                ((lo / 3.0).max(1.0)..hi * 3.0).log_scale(),
                (y_lo - 5.0).max(0.0)..(y_hi + 5.0).min(100.0),
            )
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("train FLOPs (log scale)")
            .y_desc("GLUE dev average")
            .x_label_formatter(&|x| format!("{x:.0e}"))
            .draw()
            .map_err(plot_error)?;
        draw_lines(&mut chart, series.iter().map(|(name, p)| (name.clone(), p)))
    })
}

/// Draws each `(label, points)` as a line through dots in its own colour, with a legend in
/// the lower right.
fn draw_lines<'a, 'p, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    lines: impl Iterator<Item = (String, &'p Vec<(f64, f64)>)>,
) -> Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, (name, points)) in lines.enumerate() {
        let c = colour(i);
        chart
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))
            .map_err(plot_error)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .map_err(plot_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 13))
        .draw()
        .map_err(plot_error)
}

/// Moving average over `window` points.
fn smooth(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let window = window.max(1);
    points
        .iter()
        .enumerate()
        .map(|(i, &(x, _))| {
            let from = i.saturating_sub(window - 1);
            let slice = &points[from..=i];
            (
                x,
                slice.iter().map(|p| p.1).sum::<f64>() / slice.len() as f64,
            )
        })
        .collect()
}

/// One panel of the pretraining curves: its title, the value of a metrics line it plots,
/// whether only ELECTRA runs have it, and the height of a dashed reference line for a model.
struct Panel {
    title: &'static str,
    value: fn(&StepRecord) -> f64,
    electra_only: bool,
    reference: Option<fn(&Model) -> f64>,
}

/// A model's index (its colour), the model and its smoothed `(FLOPs, value)` points.
type Curve<'a> = (usize, &'a Model, Vec<(f64, f64)>);

/// What makes learning visible, against train FLOPs and smoothed over 2% of the steps: the
/// masked-LM loss of every run (the generator's for ELECTRA) beside the corpus's unigram
/// entropy (dashed: the loss of a model that ignores context), ELECTRA's discriminator BCE,
/// its ROC-AUC on replaced tokens (0.5 is chance), and the collapse of every run's final
/// hidden states (mean pairwise cosine similarity across tokens; 1 when all are alike).
pub fn pretraining_curves(models: &[Model]) -> Result<String> {
    let panels = [
        Panel {
            title: "masked-LM loss (dashed: unigram entropy)",
            value: |p| p.mlm_loss,
            electra_only: false,
            reference: Some(|m| m.summary.unigram_entropy),
        },
        Panel {
            title: "discriminator BCE (ELECTRA)",
            value: |p| p.bce_loss,
            electra_only: true,
            reference: None,
        },
        Panel {
            title: "discriminator ROC-AUC (ELECTRA; dashed: chance)",
            value: |p| p.disc_auc,
            electra_only: true,
            reference: Some(|_| 0.5),
        },
        Panel {
            title: "collapse: hidden-state cosine across tokens",
            value: |p| p.hidden_cosine,
            electra_only: false,
            reference: None,
        },
    ];
    svg_of(WIDTH, HEIGHT * 2, |root| {
        for (area, panel) in root.split_evenly((2, 2)).iter().zip(&panels) {
            draw_panel(area, panel, models)?;
        }
        Ok(())
    })
}

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    panel: &Panel,
    models: &[Model],
) -> Result<()> {
    let curves: Vec<Curve<'_>> = models
        .iter()
        .enumerate()
        .filter(|(_, m)| !panel.electra_only || m.summary.objective.has_discriminator())
        .map(|(i, m)| {
            let raw: Vec<(f64, f64)> = m
                .curve
                .iter()
                .map(|p| (p.train_flops, (panel.value)(p)))
                .collect();
            (i, m, smooth(&raw, m.curve.len() / 50))
        })
        .collect();
    let references: Vec<(usize, f64)> = panel.reference.map_or_else(Vec::new, |height| {
        curves.iter().map(|(i, m, _)| (*i, height(m))).collect()
    });
    let points = curves.iter().flat_map(|(_, _, c)| c.iter().map(|p| p.1));
    let heights = points.chain(references.iter().map(|r| r.1));
    let (y_lo, y_hi) = heights.fold((f64::MAX, f64::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let x_hi = curves
        .iter()
        .flat_map(|(_, _, c)| c.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    if curves.is_empty() || y_lo > y_hi {
        return Ok(());
    }
    let pad = (y_hi - y_lo).max(1e-3) * 0.05;
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, (FONT, 16))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_hi, (y_lo - pad)..(y_hi + pad))
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("train FLOPs")
        .x_labels(5)
        .x_label_formatter(&|x| format!("{x:.1e}"))
        .draw()
        .map_err(plot_error)?;
    for (i, _, curve) in curves {
        let c = colour(i);
        chart
            .draw_series(LineSeries::new(curve, c.stroke_width(2)))
            .map_err(plot_error)?
            .label(super::results::run_label(models, i))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    for (i, height) in references {
        let c = colour(i).mix(0.7);
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, height), (x_hi, height)],
                6,
                4,
                c.stroke_width(1),
            ))
            .map_err(plot_error)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 12))
        .draw()
        .map_err(plot_error)
}

/// Every seed's dev score per task (dots) and the median (a bar), one colour per row.
pub fn task_scores(rows: &[Row]) -> Result<String> {
    let ours: Vec<&Row> = rows
        .iter()
        .filter(|r| matches!(r.kind, RowKind::Ours(_)))
        .collect();
    let columns = task_columns(rows);
    let n = columns.len().max(1);
    let scores = ours
        .iter()
        .flat_map(|r| r.tasks.values().flat_map(|t| t.seeds.iter().map(|s| s.1)));
    let (lo, hi) = scores.fold((0.0f64, 1.0f64), |(lo, hi), s| (lo.min(s), hi.max(s)));
    let names: Vec<&str> = columns.iter().map(|c| c.1).collect();
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                "Dev score per task: every seed (dots) and the median (bar)",
                (FONT, 18),
            )
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), (lo - 5.0)..(hi + 5.0).min(105.0))
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    names
                        .get(i as usize)
                        .map_or_else(String::new, |s| s.to_string())
                } else {
                    String::new()
                }
            })
            .y_desc("dev score (MCC, Spearman or accuracy × 100)")
            .draw()
            .map_err(plot_error)?;
        let width = 0.8 / ours.len().max(1) as f64;
        for (k, row) in ours.iter().enumerate() {
            let c = colour(k);
            let offset = -0.4 + width * (k as f64 + 0.5);
            let mut dots = Vec::new();
            let mut bars = Vec::new();
            for (j, (task, _)) in columns.iter().enumerate() {
                if let Some(t) = row.tasks.get(*task) {
                    let x = j as f64 + offset;
                    dots.extend(t.seeds.iter().map(|&(_, s)| (x, s)));
                    bars.push(((x - width * 0.4, t.median), (x + width * 0.4, t.median)));
                }
            }
            chart
                .draw_series(dots.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(plot_error)?
                .label(row.label.as_str())
                .legend(move |(x, y)| Circle::new((x + 9, y), 4, c.filled()));
            chart
                .draw_series(
                    bars.iter()
                        .map(|&(a, b)| PathElement::new(vec![a, b], c.stroke_width(3))),
                )
                .map_err(plot_error)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 12))
            .draw()
            .map_err(plot_error)
    })
}

/// The paper's Figure 3 (left): GLUE average against the generator's size, as a share of the
/// discriminator's hidden size (0 for a unigram generator), one line per discriminator size;
/// the final weights of every ELECTRA run. `None` when no discriminator size has runs with two
/// generator sizes.
pub fn glue_vs_generator_size(models: &[Model], rows: &[Row]) -> Result<Option<String>> {
    let mut lines: std::collections::BTreeMap<String, Vec<(f64, f64)>> = Default::default();
    for row in rows {
        let RowKind::Ours(super::results::Origin::Pretrained { model, step: None }) = &row.kind
        else {
            continue;
        };
        let summary = &models[*model].summary;
        let (true, Some(glue)) = (summary.objective.has_discriminator(), row.glue) else {
            continue;
        };
        let share = summary
            .generator
            .map_or(0.0, |g| g.hidden as f64 / summary.encoder.hidden as f64);
        lines
            .entry(row.size.clone())
            .or_default()
            .push((share, glue));
    }
    lines.retain(|_, points| {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        points.windows(2).any(|w| w[0].0 != w[1].0)
    });
    if lines.is_empty() {
        return Ok(None);
    }
    let all: Vec<(f64, f64)> = lines.values().flatten().copied().collect();
    let x_hi = all.iter().map(|p| p.0).fold(0.0f64, f64::max);
    let (y_lo, y_hi) = all.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &(_, y)| {
        (lo.min(y), hi.max(y))
    });
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption("GLUE dev average vs. generator size", (FONT, 20))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(54)
            .build_cartesian_2d(
                -0.05..x_hi * 1.1 + 0.05,
                (y_lo - 5.0).max(0.0)..(y_hi + 5.0).min(100.0),
            )
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("generator hidden size / discriminator hidden size (0: unigram)")
            .y_desc("GLUE dev average")
            .draw()
            .map_err(plot_error)?;
        draw_lines(
            &mut chart,
            lines
                .iter()
                .map(|(size, points)| (format!("discriminator {size}"), points)),
        )
    })
    .map(Some)
}

/// Part-of-speech probes against train FLOPs (log axis), one line per pretraining run
/// through its snapshots and final weights: the best layer's held-out accuracy (left) and
/// that layer's online codelength per training token (right); dashed, the random-init
/// encoders' mean (and, on the left, the majority-tag-per-word baseline, dotted grey).
pub fn probe_vs_flops(
    curves: &super::probing::ProbeCurves,
    random_init: Option<(f64, f64)>,
    majority: Option<f64>,
) -> Result<String> {
    svg_of(WIDTH, HEIGHT, |root| {
        let areas = root.split_evenly((1, 2));
        for (panel, area) in areas.iter().enumerate() {
            let lines: Vec<(String, Vec<(f64, f64)>)> = curves
                .iter()
                .map(|(name, accuracy, bits)| {
                    (
                        name.clone(),
                        if panel == 0 {
                            accuracy.clone()
                        } else {
                            bits.clone()
                        },
                    )
                })
                .collect();
            let mut references: Vec<(f64, RGBAColor)> = Vec::new();
            if let Some((accuracy, bits)) = random_init {
                references.push((if panel == 0 { accuracy } else { bits }, BLACK.mix(0.8)));
            }
            if let (0, Some(m)) = (panel, majority) {
                references.push((m, RGBColor(0x7f, 0x7f, 0x7f).mix(0.8)));
            }
            let xs = lines.iter().flat_map(|(_, p)| p.iter().map(|q| q.0));
            let (lo, hi) = xs.fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
            let ys = lines
                .iter()
                .flat_map(|(_, p)| p.iter().map(|q| q.1))
                .chain(references.iter().map(|r| r.0));
            let (y_lo, y_hi) = ys.fold((f64::MAX, f64::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
            if lo > hi || y_lo > y_hi {
                continue;
            }
            let pad = (y_hi - y_lo).max(1e-3) * 0.08;
            let (x_lo, x_hi) = ((lo / 2.0).max(1.0), hi * 2.0);
            let mut chart = ChartBuilder::on(area)
                .caption(
                    if panel == 0 {
                        "POS probe accuracy, best layer (held out)"
                    } else {
                        "online codelength, bits/token (lower: learned more)"
                    },
                    (FONT, 15),
                )
                .margin(12)
                .x_label_area_size(44)
                .y_label_area_size(50)
                .build_cartesian_2d((x_lo..x_hi).log_scale(), (y_lo - pad)..(y_hi + pad))
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                .x_desc("train FLOPs (log scale)")
                .x_labels(4)
                .x_label_formatter(&|x| format!("{x:.0e}"))
                .draw()
                .map_err(plot_error)?;
            for (height, c) in references {
                chart
                    .draw_series(DashedLineSeries::new(
                        [(x_lo, height), (x_hi, height)],
                        6,
                        4,
                        c.stroke_width(1),
                    ))
                    .map_err(plot_error)?;
            }
            draw_lines(&mut chart, lines.iter().map(|(n, p)| (n.clone(), p)))?;
        }
        Ok(())
    })
}
