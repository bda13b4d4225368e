//! The `report` stage kind: the paper's compute-matched comparison from this pipeline's
//! pretraining and fine-tuning results, as Markdown, a tidy CSV and a self-contained HTML page
//! with SVG plots.
//!
//! ```yaml
//! report:
//!   kind: report
//!   params:
//!     title: ELECTRA vs. compute-matched BERT
//!     pipeline: pipelines/glue_small.yaml        # named in the rerun instructions
//!     models:                                    # one row each (plus one per snapshot);
//!                                                # runs alike but in `seed` share a row
//!       - {name: ELECTRA-Small, config: "@electra/config.json", metrics: "@electra/metrics.jsonl"}
//!       - {name: BERT-Small, config: "@bert/config.json", metrics: "@bert/metrics.jsonl"}
//!     finetune: ["@finetune[*]/metrics.json", "@scratch[*]/metrics.json"]
//!     published: true                            # the paper's rows, marked as such (or
//!                                                # table5, weight_sharing, false)
//! ```
//!
//! Fine-tuning results are matched to the weights they started from by the encoder file's
//! digest (a model's final weights or one of its snapshots), so the snapshot rows build
//! themselves. Modules: [`results`] (reading and grouping), [`table`] (rows, medians, the
//! GLUE average, Markdown), [`plots`] (SVG), [`render`] (the documents).

pub mod intervals;
pub mod plots;
pub mod probing;
pub mod render;
pub mod results;
pub mod table;

use std::path::{Path, PathBuf};

use electra_pipe_api::{
    parse_params, Metrics, ParamError, Params, StageContext, StageError, StageKind, StagePlan,
};
use serde::Deserialize;
use serde_json::{json, Value};

use self::render::Context;
use crate::error::{DataError, Result};
use crate::records::finetune::FinetuneSummary;
use crate::textfile::write_text;

/// The Markdown report.
pub const REPORT_MD: &str = "report.md";
/// One row per (model, checkpoint, task, seed).
pub const RESULTS_CSV: &str = "results.csv";
/// The self-contained HTML report.
pub const REPORT_HTML: &str = "report.html";
/// The SVG plots.
pub const PLOTS_DIR: &str = "plots";

/// One pretrained model of the report, or every cell of a pretrain stage's matrix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    /// Its row label. For a list of models, and when absent (then the objective's name), the
    /// label is followed by the recipe knobs in which the report's models differ.
    pub name: Option<String>,
    /// The pretrain stage's `config.json`, or a list of them (`@electra[*]/config.json`).
    pub config: Value,
    /// The pretrain stage's `metrics.jsonl`, or a list in the same order.
    pub metrics: Value,
}

impl ModelRef {
    /// The `config.json` paths and the `metrics.jsonl` paths this names.
    fn paths(&self) -> (Vec<String>, Vec<String>) {
        let (mut configs, mut metrics) = (Vec::new(), Vec::new());
        flatten(&self.config, &mut configs);
        flatten(&self.metrics, &mut metrics);
        (configs, metrics)
    }

    /// `(config, metrics)` of every model this names.
    fn files(&self) -> Vec<(String, String)> {
        let (configs, metrics) = self.paths();
        configs.into_iter().zip(metrics).collect()
    }
}

/// Params of a `report` stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// The title.
    #[serde(default = "default_title")]
    pub title: String,
    /// The pipeline file, for the rerun instructions.
    pub pipeline: Option<String>,
    /// The pretrained models, in row order.
    pub models: Vec<ModelRef>,
    /// Fine-tuning `metrics.json` files (lists of lists are flattened).
    pub finetune: Value,
    /// Which of the paper's published results to add as † rows.
    #[serde(default = "default_published")]
    pub published: Published,
    /// Probe stages' `probe` directories (lists of lists are flattened): the "What
    /// pretraining learned" section and its plot.
    #[serde(default)]
    pub probes: Value,
}

/// `published:` in a report's params: `true` (the paper's Table 1, the default), `false`, or
/// one of the paper's tables by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Published {
    /// `true`: Table 1; `false`: none.
    Flag(bool),
    /// A table by name.
    Table(PaperTable),
}

/// The paper's tables a report can show beside its own rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaperTable {
    /// ELECTRA-Small and BERT-Small, with ELECTRA-Small's learning curve (Table 1).
    Table1,
    /// The objectives at equal compute, Base size (Table 5).
    Table5,
    /// Weight sharing between generator and discriminator, Base size (Section 3.2).
    WeightSharing,
}

impl Published {
    /// The published rows it adds.
    pub fn rows(self) -> Vec<table::Row> {
        match self {
            Published::Flag(false) => Vec::new(),
            Published::Flag(true) | Published::Table(PaperTable::Table1) => table::published_rows(),
            Published::Table(PaperTable::Table5) => table::table5_rows(),
            Published::Table(PaperTable::WeightSharing) => table::weight_sharing_rows(),
        }
    }
}

fn default_title() -> String {
    "ELECTRA vs. compute-matched BERT on GLUE".to_owned()
}
fn default_published() -> Published {
    Published::Flag(true)
}

/// Every string in a (nested) list of paths.
fn flatten(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| flatten(v, out)),
        _ => {}
    }
}

impl ReportParams {
    /// Parses and validates params.
    pub fn parse(params: &Params) -> Result<Self, ParamError> {
        let parsed: ReportParams = parse_params(params)?;
        if parsed.models.is_empty() {
            return Err(ParamError::new(
                "models",
                "expected at least one pretrained model",
            ));
        }
        let mut finetune = Vec::new();
        if !matches!(parsed.finetune, Value::String(_) | Value::Array(_)) {
            return Err(ParamError::new(
                "finetune",
                "expected a path or a list of paths (references to finetune stages' metrics.json)",
            ));
        }
        flatten(&parsed.finetune, &mut finetune);
        if !matches!(
            parsed.probes,
            Value::Null | Value::String(_) | Value::Array(_)
        ) {
            return Err(ParamError::new(
                "probes",
                "expected a path or a list of paths (references to probe stages' probe directories)",
            ));
        }
        if finetune.is_empty() {
            return Err(ParamError::new(
                "finetune",
                "expected at least one fine-tuning result",
            ));
        }
        for (i, m) in parsed.models.iter().enumerate() {
            let (configs, metrics) = m.paths();
            if configs.is_empty() || configs.len() != metrics.len() {
                return Err(ParamError::new(
                    format!("models[{i}]"),
                    format!(
                        "{} config.json and {} metrics.jsonl: expected one of each per model",
                        configs.len(),
                        metrics.len()
                    ),
                ));
            }
        }
        Ok(parsed)
    }

    fn finetune_paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        flatten(&self.finetune, &mut out);
        out
    }

    fn probe_paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        flatten(&self.probes, &mut out);
        out
    }
}

/// The `report` stage kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct Report;

impl StageKind for Report {
    fn name(&self) -> &'static str {
        "report"
    }

    fn version(&self) -> u32 {
        // v3: differences with 95% bootstrap intervals, and a reading that says whether each
        // is resolved.
        // v4: the reading names a pretrained encoder resolved below random initialisation.
        // v5: runs alike in all but their pretraining seed are pooled in one row, and the
        // intervals resample them (hierarchical bootstrap); results.csv has pretraining_seed.
        // v6: part-of-speech probes (`probes`): "What pretraining learned" and its plot.
        // v7: a probe of the snapshot at the last step is the model's final row.
        7
    }

    fn summary(&self) -> &'static str {
        "the compute-matched comparison table, CSV, HTML and plots from pretraining and fine-tuning results"
    }

    fn plan(&self, params: &Params) -> Result<StagePlan, ParamError> {
        let params = ReportParams::parse(params)?;
        let mut inputs: Vec<String> = params
            .models
            .iter()
            .flat_map(|m| {
                m.files()
                    .into_iter()
                    .flat_map(|(config, metrics)| [config, metrics])
            })
            .collect();
        inputs.extend(params.finetune_paths());
        inputs.extend(params.probe_paths());
        Ok(StagePlan {
            inputs,
            outputs: vec![
                REPORT_MD.to_owned(),
                RESULTS_CSV.to_owned(),
                REPORT_HTML.to_owned(),
                PLOTS_DIR.to_owned(),
            ],
            ..StagePlan::default()
        })
    }

    fn run(&self, params: &Params, ctx: &StageContext<'_>) -> Result<Metrics, StageError> {
        let params = ReportParams::parse(params)?;
        Ok(run(&params, ctx)?)
    }
}

/// The version of the stage kind `name` in this build.
fn kind_version(name: &str) -> u32 {
    crate::registry().get(name).map_or(0, |kind| kind.version())
}

fn run(params: &ReportParams, ctx: &StageContext<'_>) -> Result<Metrics> {
    let mut models = Vec::new();
    let mut names = Vec::new();
    for m in &params.models {
        let files = m.files();
        for (config, metrics) in &files {
            models.push(results::read_model(Path::new(config), Path::new(metrics))?);
            names.push((m.name.clone(), files.len() > 1));
        }
    }
    results::label(&mut models, &names)?;
    let mut finetune = Vec::new();
    let mut inputs = Vec::new();
    for m in &models {
        inputs.push((
            format!("{} model.safetensors", m.name),
            m.summary.model_digest.clone(),
        ));
    }
    for path in params.finetune_paths() {
        let path = PathBuf::from(path);
        let result = FinetuneSummary::read(&path)?;
        let origin = match (&result.encoder.digest, result.encoder.from_scratch) {
            (_, true) => "random init".to_owned(),
            (Some(digest), false) => format!("encoder {}…", &digest[..digest.len().min(12)]),
            (None, false) => "encoder unknown".to_owned(),
        };
        inputs.push((
            format!(
                "fine-tuning result: {} seed {} from {origin}",
                result.task, result.seed
            ),
            crate::digest::file_digest(&path)?,
        ));
        finetune.push((path, result));
    }
    let origins = results::Origins::new(&models);
    let groups = results::group(&origins, finetune)?;
    let mut probe_results = Vec::new();
    for path in params.probe_paths() {
        let dir = PathBuf::from(path);
        let result = probing::read_probe(&dir)?;
        inputs.push((
            format!(
                "probe result: {}",
                result.summary.encoder.digest.as_deref().map_or_else(
                    || format!(
                        "random init, seed {}",
                        result.summary.init_seed.unwrap_or(0)
                    ),
                    |d| format!("encoder {}…", &d[..d.len().min(12)]),
                )
            ),
            crate::digest::file_digest(&dir.join(crate::probe::outputs::SUMMARY_FILE))?,
        ));
        probe_results.push(result);
    }
    let probe_curves = probing::curves(&models, &origins, &probe_results);
    let probe_groups = probing::group(&models, &origins, probe_results)?;
    let mut rows = table::our_rows(&models, &groups);
    rows.extend(params.published.rows());
    let versions = vec![
        (
            "electra-pipe".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
        ("burn".to_owned(), "0.21.0".to_owned()),
        (
            "stage kinds".to_owned(),
            format!(
                "pretrain v{}, finetune v{}, report v{}",
                kind_version("pretrain"),
                kind_version("finetune"),
                Report.version()
            ),
        ),
    ];
    let pretraining = table::pretraining_ends(&models);
    let generator_plot = plots::glue_vs_generator_size(&models, &rows)?;
    let notes = render::notes(&models, &groups);
    let pairs = intervals::pairs(&rows, &models, &groups);
    let probe_rows = probing::rows(&models, &probe_groups);
    let probe_section = (!probe_rows.is_empty()).then(|| {
        probing::section(
            &probe_rows,
            &probing::comparisons(&probe_rows, &rows, &pairs),
        )
    });
    let context = Context {
        title: &params.title,
        pipeline: params.pipeline.as_deref(),
        inputs: &inputs,
        versions: &versions,
        pretraining: &pretraining,
        generator_plot: generator_plot.is_some(),
        probing: probe_section.as_ref(),
    };
    let plots_dir = ctx.out_dir.join(PLOTS_DIR);
    std::fs::create_dir_all(&plots_dir)
        .map_err(|e| DataError::io(format!("creating {}", plots_dir.display()), e))?;
    let glue_plot = plots::glue_vs_flops(&models, &rows)?;
    let curves_plot = plots::pretraining_curves(&models)?;
    let task_plot = plots::task_scores(&rows)?;
    let probe_plot = match &probe_section {
        Some(_) => {
            let random = probe_rows
                .iter()
                .find(|r| matches!(r.origin, results::Origin::Scratch(_)))
                .map(|r| {
                    let best = r.best_slot();
                    (
                        r.figure(probing::Figure::Accuracy, best),
                        r.figure(probing::Figure::BitsPerToken, best),
                    )
                });
            let majority = probe_rows
                .first()
                .map(|r| 100.0 * r.probes[0].summary.majority.all);
            Some(plots::probe_vs_flops(&probe_curves, random, majority)?)
        }
        None => None,
    };
    for (file, svg) in [
        ("glue_vs_flops.svg", Some(&glue_plot)),
        ("pretraining_curves.svg", Some(&curves_plot)),
        ("task_scores.svg", Some(&task_plot)),
        ("glue_vs_generator_size.svg", generator_plot.as_ref()),
        ("probe_vs_flops.svg", probe_plot.as_ref()),
    ] {
        if let Some(svg) = svg {
            write_text(&plots_dir.join(file), svg)?;
        }
    }
    write_text(
        &ctx.out_dir.join(REPORT_MD),
        &render::report_markdown(&rows, &pairs, &context, &notes),
    )?;
    write_text(
        &ctx.out_dir.join(RESULTS_CSV),
        &render::results_csv(&models, &rows, &groups),
    )?;
    let mut plots = vec![
        ("GLUE dev average against pretraining compute (log scale); the paper's ELECTRA-Small curve and BERT-Small point for scale.", glue_plot.as_str()),
        ("Pretraining against train FLOPs (moving average over 2% of the steps): the masked-LM loss beside the unigram entropy of the corpus (a model that ignores context), the discriminator's BCE and ROC-AUC on replaced tokens, and the collapse of the final hidden states (mean pairwise cosine across tokens).", curves_plot.as_str()),
        ("Every fine-tuning seed's dev score per task; bars mark the medians.", task_plot.as_str()),
    ];
    if let Some(svg) = &probe_plot {
        plots.push(("Part-of-speech probes against train FLOPs (log scale), one line per pretraining run through its snapshots: the best layer's held-out accuracy and that layer's online codelength; dashed black, random-init encoders at their best layer; dotted grey, the majority tag per word.", svg.as_str()));
    }
    if let Some(svg) = &generator_plot {
        plots.push(("GLUE dev average against the generator's size relative to the discriminator's (the paper's Figure 3, left; 0 is a unigram generator), one line per discriminator size.", svg.as_str()));
    }
    write_text(
        &ctx.out_dir.join(REPORT_HTML),
        &render::report_html(&rows, &pairs, &context, &notes, &plots),
    )?;
    let mut metrics = Metrics::new();
    for row in &rows {
        if let (table::RowKind::Ours(_), Some(glue)) = (&row.kind, row.glue) {
            metrics.insert(format!("glue.{}", row.label), json!(glue));
        }
    }
    tracing::info!(rows = rows.len(), "report written");
    Ok(metrics)
}
