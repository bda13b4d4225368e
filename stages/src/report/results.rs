//! Reading what the report summarises: each pretrained model's `config.json` and
//! `metrics.jsonl`, and every fine-tuning `metrics.json`, matched to the checkpoint it started
//! from by the encoder file's digest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::model::config::{EncoderConfig, Norm, Preset};
use crate::records::encoder::EncoderOrigin;
use crate::records::finetune::FinetuneSummary;
use crate::records::pretrain::{read_steps, PretrainSummary, StepRecord};

/// A pretrained model: its label in the report, summary and loss curve.
#[derive(Debug, Clone)]
pub struct Model {
    /// The row label (the key under `models`).
    pub name: String,
    /// Its `config.json`.
    pub summary: PretrainSummary,
    /// Its `metrics.jsonl`.
    pub curve: Vec<StepRecord>,
    /// Where the config came from (for errors and the provenance list).
    pub config_path: PathBuf,
}

impl Model {
    /// Every weights file this run wrote, by digest: its final weights (`None`) first, then
    /// each snapshot at its step. The last snapshot is the final model itself (the same digest
    /// as the first entry).
    pub fn weights(&self) -> impl Iterator<Item = (&str, Option<u64>)> {
        let snapshots = self.summary.snapshots.iter();
        std::iter::once((self.summary.model_digest.as_str(), None))
            .chain(snapshots.map(|s| (s.digest.as_str(), Some(s.step))))
    }
}

/// Which weights a fine-tuning result started from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// Model `index` of the report's `models`, at `step` (`None`: its final weights).
    Pretrained {
        /// Index into the models.
        model: usize,
        /// A snapshot's step, or `None` for the final weights.
        step: Option<u64>,
    },
    /// Random initialisation of this size label.
    Scratch(String),
}

/// Reads a pretrained model's config and curve (named by [`label`]).
pub fn read_model(config: &Path, metrics: &Path) -> Result<Model> {
    Ok(Model {
        name: String::new(),
        summary: PretrainSummary::read(config)?,
        curve: read_steps(metrics)?,
        config_path: config.to_owned(),
    })
}

/// Every scalar of a recipe by its dotted path (`model.norm`, `lr`).
fn knobs(recipe: &serde_json::Value, prefix: &str, out: &mut BTreeMap<String, String>) {
    match recipe {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                knobs(value, &format!("{prefix}{key}."), out);
            }
        }
        serde_json::Value::Null => {}
        other => {
            let text = match other {
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            out.insert(prefix.trim_end_matches('.').to_owned(), text);
        }
    }
}

/// The settings of an objective with a generator, by dotted path (`temperature`, `lambda`,
/// `generator_weight`, `weight_sharing`, `training`, `generator.kind` and the generator
/// network's `generator.hidden`, `generator.layers`): what tells runs of one recipe apart; a
/// compute-matched BERT run has none of them.
fn own_knobs(summary: &PretrainSummary) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if summary.objective.has_generator() {
        let generator = summary.generator;
        let own = serde_json::json!({
            "temperature": summary.temperature,
            "lambda": summary.lambda,
            "generator_weight": summary.generator_weight,
            "weight_sharing": summary.weight_sharing,
            "training": summary.training,
            "generator": {
                "kind": summary.generator_kind,
                "hidden": generator.map(|g| g.hidden),
                "layers": generator.map(|g| g.layers),
            },
        });
        knobs(&own, "", &mut out);
    }
    out
}

/// Names the models: `names[i]` is the name given for model `i` (if any) and whether it came
/// from a list. A model from a list, or without a name (then its objective's), is labelled
/// by the recipe knobs but `seed` in which the report's models differ, then by the generator
/// settings ([`own_knobs`]) in which it departs from the first run that has them: `ELECTRA
/// (model.norm=pre, lr=0.001)`, `ELECTRA (temperature=2.0)`; runs alike in all of these by
/// their steps. Runs alike in everything but their pretraining `seed` keep one label: they are
/// pretraining runs of one model, pooled in one row ([`runs_of`]). Any other two models with
/// one label are an error naming it.
pub fn label(models: &mut [Model], names: &[(Option<String>, bool)]) -> Result<()> {
    let recipes: Vec<BTreeMap<String, String>> = models
        .iter()
        .map(|m| {
            let mut out = BTreeMap::new();
            knobs(&m.summary.recipe, "", &mut out);
            out
        })
        .collect();
    let own: Vec<BTreeMap<String, String>> = models.iter().map(|m| own_knobs(&m.summary)).collect();
    let keys = |all: &[BTreeMap<String, String>]| -> std::collections::BTreeSet<String> {
        all.iter().flat_map(|k| k.keys().cloned()).collect()
    };
    // A recipe knob differs when any run's value (or its absence) differs from the first's,
    // and every run shows its value; a generator setting differs when two runs that have it
    // disagree, and a run shows it where it departs from the first run that has it.
    let differing: Vec<String> = keys(&recipes)
        .into_iter()
        .filter(|key| key != SEED)
        .filter(|key| recipes.iter().any(|k| k.get(key) != recipes[0].get(key)))
        .collect();
    let reference = |key: &String| own.iter().find_map(|k| k.get(key));
    let departing: Vec<String> = keys(&own)
        .into_iter()
        .filter(|key| {
            own.iter()
                .any(|k| k.get(key).is_some_and(|v| Some(v) != reference(key)))
        })
        .collect();
    for (i, (model, (name, listed))) in models.iter_mut().zip(names).enumerate() {
        let base = name
            .clone()
            .unwrap_or_else(|| model.summary.objective.label().to_owned());
        model.name = if *listed || name.is_none() {
            let shown = |key: &String, value: &String| format!("{key}={value}");
            let detail: Vec<String> = differing
                .iter()
                .filter_map(|key| Some(shown(key, recipes[i].get(key)?)))
                .chain(departing.iter().filter_map(|key| {
                    let value = own[i].get(key)?;
                    (Some(value) != reference(key)).then(|| shown(key, value))
                }))
                .collect();
            if detail.is_empty() {
                base
            } else {
                format!("{base} ({})", detail.join(", "))
            }
        } else {
            base
        };
    }
    // Runs alike in every knob but their budget (BERTs matched to different runs) are told
    // apart by their steps; pretraining runs of one model keep their label.
    let told_apart: Vec<bool> = (0..models.len())
        .map(|i| !pretraining_runs(models, &runs_of(models, i)))
        .collect();
    for (model, told_apart) in models.iter_mut().zip(told_apart) {
        if told_apart {
            model.name = format!("{}, {} steps", model.name, model.summary.steps);
        }
    }
    for (i, a) in models.iter().enumerate() {
        let runs = runs_of(models, i);
        if pretraining_runs(models, &runs) {
            continue;
        }
        if let Some(b) = runs
            .iter()
            .take_while(|&&j| j < i)
            .map(|&j| &models[j])
            .next()
        {
            return Err(DataError::invalid(
                &a.config_path,
                format!(
                    "its model is labelled `{}` like {}'s: expected `name`s that tell the report's models apart (only runs alike in all but their pretraining seed share one: they are pooled in one row)",
                    a.name,
                    b.config_path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// The recipe knob that tells pretraining runs of one model apart.
const SEED: &str = "seed";

/// Whether `runs` (model indices) are pretraining runs of one model: alike in objective,
/// recipe but `seed`, generator settings and steps, with distinct seeds. One run is trivially so.
fn pretraining_runs(models: &[Model], runs: &[usize]) -> bool {
    let Some(&first) = runs.first() else {
        return false;
    };
    let without_seed = |m: &Model| {
        let mut recipe = m.summary.recipe.clone();
        if let Some(map) = recipe.as_object_mut() {
            map.remove(SEED);
        }
        recipe
    };
    let a = &models[first];
    let mut seeds: Vec<u64> = runs.iter().map(|&j| models[j].summary.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    seeds.len() == runs.len()
        && runs.iter().map(|&j| &models[j]).all(|b| {
            b.summary.objective == a.summary.objective
                && b.summary.steps == a.summary.steps
                && without_seed(b) == without_seed(a)
                && own_knobs(&b.summary) == own_knobs(&a.summary)
        })
}

/// The pretraining runs whose fine-tuning results share model `i`'s row: the models labelled
/// like it ([`label`] gives one label only to runs of one model), in order.
pub fn runs_of(models: &[Model], i: usize) -> Vec<usize> {
    (0..models.len())
        .filter(|&j| models[j].name == models[i].name)
        .collect()
}

/// The model whose row holds model `i`'s fine-tuning results: the first of its runs.
pub fn row_model(models: &[Model], i: usize) -> usize {
    runs_of(models, i)[0]
}

/// Model `i`'s label where each pretraining run is shown apart (the pretraining table and
/// curves): its name, and its pretraining seed when its row pools several runs.
pub fn run_label(models: &[Model], i: usize) -> String {
    let model = &models[i];
    if runs_of(models, i).len() > 1 {
        format!("{}, pretraining seed {}", model.name, model.summary.seed)
    } else {
        model.name.clone()
    }
}

/// A size label: the preset's name when the shape is one, else `L·H·E`; `, pre-LN` for a
/// pre-LayerNorm encoder.
pub fn size_label(config: &EncoderConfig) -> String {
    let shape = shape_label(config);
    match config.norm {
        Norm::Post => shape,
        Norm::Pre => format!("{shape}, pre-LN"),
    }
}

/// The preset whose shape `config` has, or its layers and widths.
fn shape_label(config: &EncoderConfig) -> String {
    for preset in [Preset::Tiny, Preset::Mini, Preset::Small, Preset::Base] {
        let shape = preset.encoder(config.vocab_size);
        if (
            shape.layers,
            shape.hidden,
            shape.heads,
            shape.intermediate,
            shape.embedding,
        ) == (
            config.layers,
            config.hidden,
            config.heads,
            config.intermediate,
            config.embedding,
        ) {
            return format!("{preset:?}").to_lowercase();
        }
    }
    format!(
        "L{} H{} E{}",
        config.layers, config.hidden, config.embedding
    )
}

/// Which weights a result's encoder is: every model's final weights and snapshots by digest.
pub struct Origins {
    /// Digest → (the run, its step; `None`: final weights).
    by_digest: BTreeMap<String, (usize, Option<u64>)>,
    /// Each run's row model ([`row_model`]).
    rows: Vec<usize>,
}

impl Origins {
    /// The weights of every model of the report.
    pub fn new(models: &[Model]) -> Self {
        let mut by_digest = BTreeMap::new();
        for (index, model) in models.iter().enumerate() {
            for (digest, step) in model.weights() {
                if step.is_none() {
                    // A final model's label wins over any snapshot's of the same weights.
                    by_digest.insert(digest.to_owned(), (index, step));
                } else {
                    by_digest.entry(digest.to_owned()).or_insert((index, step));
                }
            }
        }
        Origins {
            by_digest,
            rows: (0..models.len()).map(|i| row_model(models, i)).collect(),
        }
    }

    /// The pretraining run (model index) and step of the weights of `digest`.
    pub fn run_of(&self, digest: &str) -> Option<(usize, Option<u64>)> {
        self.by_digest.get(digest).copied()
    }

    /// The row a result from `encoder` belongs to (the pretraining runs of one model together,
    /// under its first run); a pretrained encoder that is none of the models' final weights or
    /// snapshots is an error naming the result at `path`.
    pub fn of(&self, encoder: &EncoderOrigin, path: &Path) -> Result<Origin> {
        if encoder.from_scratch {
            return Ok(Origin::Scratch(
                encoder
                    .config
                    .as_ref()
                    .map_or_else(|| "unknown size".to_owned(), size_label),
            ));
        }
        let digest = encoder.digest.clone().unwrap_or_default();
        let (run, step) = self.run_of(&digest).ok_or_else(|| {
            DataError::invalid(
                path,
                format!(
                    "this result used an encoder (digest {digest}) that is none of the report's models or their snapshots: expected its pretraining stage under `models`"
                ),
            )
        })?;
        Ok(Origin::Pretrained {
            model: self.rows[run],
            step,
        })
    }
}

/// Groups fine-tuning results by the weights they started from ([`Origins::of`]).
pub fn group(
    origins: &Origins,
    results: Vec<(PathBuf, FinetuneSummary)>,
) -> Result<BTreeMap<Origin, Vec<FinetuneSummary>>> {
    let mut groups: BTreeMap<Origin, Vec<FinetuneSummary>> = BTreeMap::new();
    for (path, result) in results {
        let origin = origins.of(&result.encoder, &path)?;
        groups.entry(origin).or_default().push(result);
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::records::finetune::test_summary;
    use crate::records::pretrain::{test_summary as pretrain_summary, ObjectiveName};

    /// A model of `summary` read from `config`, not yet labelled.
    fn unlabelled(summary: PretrainSummary, config: String) -> Model {
        Model {
            name: String::new(),
            summary,
            curve: Vec::new(),
            config_path: PathBuf::from(config),
        }
    }

    fn model(digest: &str, snapshot_digest: &str) -> Model {
        let mut summary = pretrain_summary(ObjectiveName::Electra, digest);
        summary.snapshots[0].digest = snapshot_digest.to_owned();
        Model {
            name: "ELECTRA".to_owned(),
            ..unlabelled(summary, "config.json".to_owned())
        }
    }

    fn result(digest: Option<&str>, from_scratch: bool) -> (PathBuf, FinetuneSummary) {
        let digest = digest.filter(|_| !from_scratch);
        let result = test_summary("rte", 1, &[0, 1], &[0, 0], digest);
        (PathBuf::from("ft/metrics.json"), result)
    }

    #[test]
    fn size_labels_name_the_preset_and_a_pre_layernorm_encoder() {
        let mut config = Preset::Mini.encoder(8192);
        assert_eq!(size_label(&config), "mini");
        config.norm = Norm::Pre;
        assert_eq!(size_label(&config), "mini, pre-LN");
        config.layers = 3;
        assert_eq!(size_label(&config), "L3 H128 E128, pre-LN");
    }

    #[test]
    fn results_join_their_checkpoint_by_digest() {
        let models = [model("final", "half")];
        let groups = group(
            &Origins::new(&models),
            vec![
                result(Some("final"), false),
                result(Some("half"), false),
                result(None, true),
            ],
        )
        .unwrap();
        let origins: Vec<&Origin> = groups.keys().collect();
        assert_eq!(
            origins,
            [
                &Origin::Pretrained {
                    model: 0,
                    step: None
                },
                &Origin::Pretrained {
                    model: 0,
                    step: Some(5)
                },
                &Origin::Scratch("tiny".to_owned()),
            ]
        );
    }

    #[test]
    fn a_result_from_an_unknown_encoder_names_its_file() {
        let err = group(
            &Origins::new(&[model("final", "half")]),
            vec![result(Some("other"), false)],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("ft/metrics.json") && err.contains("digest other"),
            "{err}"
        );
    }

    #[test]
    fn runs_alike_but_in_their_pretraining_seed_share_a_label_and_a_row() {
        let run = |objective, seed: u64, lr: f64| {
            let mut summary = pretrain_summary(objective, &format!("{objective:?}-{seed}-{lr}"));
            summary.seed = seed;
            summary.recipe = serde_json::json!({"lr": lr, "seed": seed});
            summary.snapshots.clear();
            unlabelled(summary, format!("{objective:?}-{seed}-{lr}/config.json"))
        };
        let mut models = vec![
            run(ObjectiveName::Electra, 1, 1e-3),
            run(ObjectiveName::Electra, 2, 1e-3),
            run(ObjectiveName::Bert, 1, 1e-3),
            run(ObjectiveName::Bert, 2, 1e-3),
        ];
        let names = [
            (Some("E".to_owned()), true),
            (Some("E".to_owned()), true),
            (Some("B".to_owned()), true),
            (Some("B".to_owned()), true),
        ];
        label(&mut models, &names).unwrap();
        let labels: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(labels, ["E", "E", "B", "B"]);
        assert_eq!(runs_of(&models, 1), [0, 1]);
        assert_eq!(row_model(&models, 3), 2);
        assert_eq!(run_label(&models, 1), "E, pretraining seed 2");
        let digest = |i: usize| models[i].summary.model_digest.clone();
        let groups = group(
            &Origins::new(&models),
            (0..4)
                .map(|i| {
                    let r = test_summary("rte", 1, &[0, 1], &[0, 0], Some(&digest(i)));
                    (PathBuf::from(format!("{i}/metrics.json")), r)
                })
                .collect(),
        )
        .unwrap();
        let rows: Vec<(&Origin, usize)> = groups.iter().map(|(o, r)| (o, r.len())).collect();
        assert_eq!(
            rows,
            [
                (
                    &Origin::Pretrained {
                        model: 0,
                        step: None
                    },
                    2
                ),
                (
                    &Origin::Pretrained {
                        model: 2,
                        step: None
                    },
                    2
                ),
            ]
        );
        // Another recipe is another row, its runs pooled among themselves.
        let mut models = vec![
            run(ObjectiveName::Electra, 1, 1e-3),
            run(ObjectiveName::Electra, 2, 1e-3),
            run(ObjectiveName::Electra, 1, 2e-3),
            run(ObjectiveName::Electra, 2, 2e-3),
        ];
        label(&mut models, &vec![(None, true); 4]).unwrap();
        let labels: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            labels,
            [
                "ELECTRA (lr=0.001)",
                "ELECTRA (lr=0.001)",
                "ELECTRA (lr=0.002)",
                "ELECTRA (lr=0.002)"
            ]
        );
        assert_eq!(
            run_label(&models, 0),
            "ELECTRA (lr=0.001), pretraining seed 1"
        );
        // One seed twice is not two runs of one model.
        let mut twins = vec![
            run(ObjectiveName::Electra, 1, 1e-3),
            run(ObjectiveName::Electra, 1, 1e-3),
        ];
        twins[1].config_path = PathBuf::from("other/config.json");
        let err = label(&mut twins, &vec![(Some("E".to_owned()), true); 2])
            .unwrap_err()
            .to_string();
        assert!(err.contains("labelled `E, 10 steps`"), "{err}");
    }

    #[test]
    fn listed_models_are_labelled_by_the_knobs_they_differ_in() {
        let named = |objective, lr: f64, norm: &str| {
            let mut summary = pretrain_summary(objective, "d");
            summary.recipe = serde_json::json!({"lr": lr, "model": {"norm": norm}, "seed": 0});
            unlabelled(summary, format!("{lr}-{norm}/config.json"))
        };
        let mut models = vec![
            named(ObjectiveName::Electra, 1e-3, "pre"),
            named(ObjectiveName::Electra, 2e-3, "pre"),
            named(ObjectiveName::Bert, 1e-3, "post"),
        ];
        let names = [
            (None, true),
            (Some("ours".to_owned()), true),
            (Some("B".to_owned()), false),
        ];
        label(&mut models, &names).unwrap();
        let labels: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            labels,
            [
                "ELECTRA (lr=0.001, model.norm=pre)",
                "ours (lr=0.002, model.norm=pre)",
                "B"
            ]
        );
        // ELECTRA's own settings tell its runs apart, and BERT, which has none, keeps its name.
        let mut hot = named(ObjectiveName::Electra, 1e-3, "pre");
        hot.summary.temperature = 2.0;
        let mut models = vec![
            named(ObjectiveName::Electra, 1e-3, "pre"),
            hot,
            named(ObjectiveName::Bert, 1e-3, "pre"),
        ];
        label(&mut models, &[(None, true), (None, true), (None, true)]).unwrap();
        let labels: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(labels, ["ELECTRA", "ELECTRA (temperature=2.0)", "BERT"]);
        // Alike but in their budgets: told apart by their steps.
        let mut budgets = vec![
            named(ObjectiveName::Bert, 1e-3, "pre"),
            named(ObjectiveName::Bert, 1e-3, "pre"),
        ];
        budgets[1].summary.steps = 20;
        label(&mut budgets, &[(None, true), (None, true)]).unwrap();
        assert_eq!(budgets[0].name, "BERT, 10 steps");
        assert_eq!(budgets[1].name, "BERT, 20 steps");
        let mut twins = vec![
            named(ObjectiveName::Bert, 1e-3, "pre"),
            named(ObjectiveName::Bert, 1e-3, "pre"),
        ];
        let err = label(&mut twins, &[(None, true), (None, true)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected `name`s that tell the report's models apart"),
            "{err}"
        );
    }
}
