//! How sure a difference between two rows is: a **paired bootstrap over dev examples and
//! fine-tuning seeds**, hierarchical where a row pools several pretraining runs. Each
//! replicate draws, per task, the dev examples with replacement (the same draw for both rows:
//! they are scored on the same examples); for a row that pools several pretraining runs, as
//! many runs with replacement; then for each drawn run its fine-tuning seeds with replacement
//! (the same draw for both rows' runs when they ran the same seeds, since a seed fixes the
//! training subset and order for every encoder alike). Each row's task score is then the
//! median over every drawn (run, seed) of the task's metric on the drawn examples, as in the
//! table. The 95% interval is the 2.5th–97.5th percentile of A − B over the replicates; the
//! GLUE difference is the mean of the per-task differences over the GLUE tasks both rows have.
//!
//! What it covers: the noise of fine-tuning (seeds) and of the finite dev sets, and, where rows
//! pool several pretraining runs, the spread between separately pretrained encoders (with few
//! runs per row, coarsely: a bootstrap over k runs sees (k − 1)/k of their variance). With one
//! pretraining run per row it says nothing about that spread.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::results::{Model, Origin};
use super::table::{Row, RowKind};
use crate::finetune::metrics::{score_name, task_metrics, Scored};
use crate::glue::Task;
use crate::records::finetune::FinetuneSummary;
use crate::records::pretrain::{ObjectiveName, PretrainSummary};

/// Bootstrap replicates per comparison.
pub const REPLICATES: usize = 1000;

/// A difference of scores (×100, A − B) with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Difference {
    /// The difference of the table's medians.
    pub estimate: f64,
    /// 2.5th percentile over the replicates.
    pub low: f64,
    /// 97.5th percentile over the replicates.
    pub high: f64,
}

impl Difference {
    /// Whether the interval excludes 0.
    pub fn resolved(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }

    /// `+1.2 [−0.4, +2.9]`.
    pub fn text(&self) -> String {
        format!(
            "{:+.1} [{:+.1}, {:+.1}]",
            self.estimate, self.low, self.high
        )
    }
}

/// A − B per task and on the GLUE average.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Per task both rows have, in task-name order.
    pub tasks: BTreeMap<String, Difference>,
    /// Over the GLUE tasks both rows have (WNLI excluded).
    pub glue: Option<Difference>,
    /// How many pretraining runs row A and row B pool (1 for random initialisation, as for
    /// one run): the bootstrap resamples the runs of a row with more than one.
    pub pretraining_runs: (usize, usize),
}

/// One row's runs of one task: per pretraining run (by its encoder's digest), the fine-tuning
/// runs in seed order.
type Runs<'a> = Vec<Vec<&'a FinetuneSummary>>;

fn by_task(results: &[FinetuneSummary]) -> BTreeMap<&str, Runs<'_>> {
    let mut tasks: BTreeMap<&str, BTreeMap<Option<&str>, Vec<&FinetuneSummary>>> = BTreeMap::new();
    for r in results {
        tasks
            .entry(r.task.as_str())
            .or_default()
            .entry(r.encoder.digest.as_deref())
            .or_default()
            .push(r);
    }
    tasks
        .into_iter()
        .map(|(task, by_run)| {
            let runs = by_run
                .into_values()
                .map(|mut seeds| {
                    seeds.sort_by_key(|r| r.seed);
                    seeds
                })
                .collect();
            (task, runs)
        })
        .collect()
}

/// The most pretraining runs any task of a row has.
fn pretraining_runs(tasks: &BTreeMap<&str, Runs<'_>>) -> usize {
    tasks.values().map(Vec::len).max().unwrap_or(1)
}

/// Whether every pretraining run of `a` and `b` ran the same fine-tuning seeds, so their seed
/// draws can be paired.
fn same_seeds(a: &Runs<'_>, b: &Runs<'_>) -> bool {
    let seeds = |run: &Vec<&FinetuneSummary>| run.iter().map(|r| r.seed).collect::<Vec<u64>>();
    let first = seeds(&a[0]);
    a.iter().chain(b.iter()).all(|run| seeds(run) == first)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The task's metric (×100) of predictions `predicted` against `gold` at `rows`.
fn metric(task: &Task, gold: &[f64], predicted: &[f64], rows: &[usize]) -> f64 {
    let values = match task.labels {
        Some(_) => {
            let ids = |v: &[f64]| rows.iter().map(|&i| v[i] as u32).collect::<Vec<u32>>();
            let (gold, predicted) = (ids(gold), ids(predicted));
            task_metrics(
                task,
                &Scored::Classes {
                    predicted: &predicted,
                    gold: &gold,
                },
            )
        }
        None => {
            let pick = |v: &[f64]| rows.iter().map(|&i| v[i]).collect::<Vec<f64>>();
            let (gold, predicted) = (pick(gold), pick(predicted));
            task_metrics(
                task,
                &Scored::Scores {
                    predicted: &predicted,
                    gold: &gold,
                },
            )
        }
    };
    values[score_name(task.metric)] * 100.0
}

/// Whether `a` and `b` were scored on the same dev examples.
fn same_examples(a: &Runs<'_>, b: &Runs<'_>) -> bool {
    let gold = &a[0][0].scored_examples.gold;
    !gold.is_empty()
        && a.iter().chain(b.iter()).flatten().all(|r| {
            r.scored_examples.gold == *gold && r.scored_examples.predicted.len() == gold.len()
        })
}

/// The 2.5th and 97.5th percentiles.
pub(super) fn interval(mut replicates: Vec<f64>) -> (f64, f64) {
    replicates.sort_by(f64::total_cmp);
    let at = |q: f64| replicates[((q * (replicates.len() - 1) as f64).round()) as usize];
    (at(0.025), at(0.975))
}

/// `n` indices below `n` drawn with replacement.
pub(super) fn draw(n: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    (0..n).map(|_| rng.random_range(0..n)).collect()
}

/// A row's pretraining runs drawn with replacement; a row of one run draws nothing, so a
/// comparison of single runs is the plain paired bootstrap, replicate for replicate.
pub(super) fn draw_runs(n: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    if n == 1 {
        vec![0]
    } else {
        draw(n, rng)
    }
}

/// One bootstrap replicate of A − B on one task: the dev examples, each row's pretraining
/// runs, and each drawn run's seeds (paired slot by slot when `paired`: [`same_seeds`]).
fn replicate(task: &Task, a: &Runs<'_>, b: &Runs<'_>, paired: bool, rng: &mut ChaCha8Rng) -> f64 {
    let n = a[0][0].scored_examples.gold.len();
    let rows: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
    let (runs_a, runs_b) = (draw_runs(a.len(), rng), draw_runs(b.len(), rng));
    let mut seeds_a = Vec::with_capacity(runs_a.len());
    let mut seeds_b = Vec::with_capacity(runs_b.len());
    for slot in 0..runs_a.len().max(runs_b.len()) {
        let drawn_a = runs_a.get(slot).map(|&r| draw(a[r].len(), rng));
        if let Some(&r) = runs_b.get(slot) {
            seeds_b.push(match (&drawn_a, paired) {
                (Some(same), true) => same.clone(),
                _ => draw(b[r].len(), rng),
            });
        }
        seeds_a.extend(drawn_a);
    }
    let score = |runs: &Runs<'_>, drawn: &[usize], seeds: &[Vec<usize>]| {
        let mut values: Vec<f64> = drawn
            .iter()
            .zip(seeds)
            .flat_map(|(&run, seeds)| {
                let run = &runs[run];
                seeds.iter().map(|&s| {
                    let r = run[s];
                    metric(
                        task,
                        &r.scored_examples.gold,
                        &r.scored_examples.predicted,
                        &rows,
                    )
                })
            })
            .collect();
        median(&mut values)
    };
    score(a, &runs_a, &seeds_a) - score(b, &runs_b, &seeds_b)
}

/// A − B with 95% intervals from `replicates` paired bootstrap replicates drawn from `seed`.
/// Tasks whose runs were not scored on the same dev examples are left out.
pub fn compare(
    a: &[FinetuneSummary],
    b: &[FinetuneSummary],
    replicates: usize,
    seed: u64,
) -> Comparison {
    let (a, b) = (by_task(a), by_task(b));
    let pretraining_runs = (pretraining_runs(&a), pretraining_runs(&b));
    let tasks: Vec<(&Task, &Runs<'_>, &Runs<'_>, bool)> = a
        .iter()
        .filter_map(|(name, runs_a)| {
            let runs_b = b.get(name)?;
            let task = Task::named(name)?;
            same_examples(runs_a, runs_b)
                .then(|| (task, runs_a, runs_b, same_seeds(runs_a, runs_b)))
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut draws: Vec<Vec<f64>> = vec![Vec::with_capacity(replicates); tasks.len()];
    for _ in 0..replicates {
        for (&(task, runs_a, runs_b, paired), out) in tasks.iter().zip(&mut draws) {
            out.push(replicate(task, runs_a, runs_b, paired, &mut rng));
        }
    }
    let observed = |runs: &Runs<'_>| {
        median(
            &mut runs
                .iter()
                .flatten()
                .map(|r| r.score * 100.0)
                .collect::<Vec<_>>(),
        )
    };
    let mut differences = BTreeMap::new();
    let mut glue_estimate = Vec::new();
    let mut glue_draws = vec![0.0; replicates];
    let mut glue_tasks = 0usize;
    for ((task, runs_a, runs_b, _), draws) in tasks.iter().zip(draws) {
        let estimate = observed(runs_a) - observed(runs_b);
        if task.name != "wnli" {
            glue_estimate.push(estimate);
            glue_tasks += 1;
            for (sum, d) in glue_draws.iter_mut().zip(&draws) {
                *sum += d;
            }
        }
        let (low, high) = interval(draws);
        differences.insert(
            task.name.to_owned(),
            Difference {
                estimate,
                low,
                high,
            },
        );
    }
    let glue = (glue_tasks > 0).then(|| {
        let means: Vec<f64> = glue_draws.iter().map(|s| s / glue_tasks as f64).collect();
        let (low, high) = interval(means);
        Difference {
            estimate: glue_estimate.iter().sum::<f64>() / glue_tasks as f64,
            low,
            high,
        }
    });
    Comparison {
        tasks: differences,
        glue,
        pretraining_runs,
    }
}

/// Two rows of the table compared: `a` − `b` (indices into the rows).
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// The row compared.
    pub a: usize,
    /// The row it is compared with.
    pub b: usize,
    /// `a` − `b`.
    pub comparison: Comparison,
}

/// Whether two train-FLOPs figures are equal within 1% (what compute matching gives).
pub fn same_compute(a: f64, b: f64) -> bool {
    (a - b).abs() <= 0.01 * a.max(b)
}

/// Whether two runs had the same budget: one was matched to the other's train FLOPs, both to
/// the same run's, or their train FLOPs agree within 1% ([`same_compute`]).
fn matched_compute(a: &PretrainSummary, b: &PretrainSummary) -> bool {
    let target = |s: &PretrainSummary| s.match_compute.train_flops.unwrap_or(s.train_flops);
    target(a) == target(b) || same_compute(a.train_flops, b.train_flops)
}

fn is_final(row: &Row) -> bool {
    matches!(
        row.kind,
        RowKind::Ours(Origin::Pretrained { step: None, .. })
    )
}

/// The comparisons the report makes: each final ELECTRA row against its compute-matched BERT
/// row (the BERT run whose `match_compute` recipe is the ELECTRA run's; without one, the only
/// BERT row of equal train FLOPs), then each final pretrained row against random
/// initialisation of its size. `groups` holds every row's fine-tuning results.
pub fn pairs(
    rows: &[Row],
    models: &[Model],
    groups: &BTreeMap<Origin, Vec<FinetuneSummary>>,
) -> Vec<Pair> {
    let results = |row: &Row| match &row.kind {
        RowKind::Ours(origin) => groups.get(origin).map(Vec::as_slice),
        RowKind::Published => None,
    };
    let pair = |a: usize, b: usize| {
        let (ra, rb) = (results(&rows[a])?, results(&rows[b])?);
        Some(Pair {
            a,
            b,
            comparison: compare(ra, rb, REPLICATES, 0),
        })
    };
    let summary = |row: &Row| match &row.kind {
        RowKind::Ours(Origin::Pretrained { model, step: None }) => Some(&models[*model].summary),
        _ => None,
    };
    let berts: Vec<usize> = (0..rows.len())
        .filter(|&b| summary(&rows[b]).is_some_and(|s| s.objective == ObjectiveName::Bert))
        .collect();
    let mut out = Vec::new();
    for (a, electra) in rows.iter().enumerate() {
        // Every other objective (ELECTRA, and Table 5's) against the BERT of its recipe.
        let Some(e) = summary(electra).filter(|s| s.objective != ObjectiveName::Bert) else {
            continue;
        };
        // The BERT matched to its recipe (at its compute, where several share the recipe),
        // else the one BERT at its compute.
        let by_recipe: Vec<usize> = berts
            .iter()
            .copied()
            .filter(|&b| {
                summary(&rows[b]).and_then(|s| s.match_compute.recipe.as_ref()) == Some(&e.recipe)
            })
            .collect();
        let at_compute = |candidates: &[usize]| -> Vec<usize> {
            candidates
                .iter()
                .copied()
                .filter(|&b| summary(&rows[b]).is_some_and(|s| matched_compute(e, s)))
                .collect()
        };
        let matched = match (by_recipe.as_slice(), at_compute(&by_recipe).as_slice()) {
            ([only], _) => Some(*only),
            (_, [first, ..]) => Some(*first),
            _ => match at_compute(&berts).as_slice() {
                [only] => Some(*only),
                _ => None,
            },
        };
        out.extend(matched.and_then(|b| pair(a, b)));
    }
    for (a, model) in rows.iter().enumerate().filter(|(_, r)| is_final(r)) {
        let scratch = rows.iter().position(
            |r| matches!(&r.kind, RowKind::Ours(Origin::Scratch(size)) if *size == model.size),
        );
        out.extend(scratch.and_then(|b| pair(a, b)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::finetune::test_summary;

    fn run(seed: u64, gold: &[u32], predicted: &[u32]) -> FinetuneSummary {
        test_summary("sst2", seed, gold, predicted, None)
    }

    fn labels(n: usize, rng: &mut ChaCha8Rng) -> Vec<u32> {
        (0..n).map(|_| rng.random_range(0..2)).collect()
    }

    #[test]
    fn the_same_predictions_differ_by_nothing() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let gold = labels(200, &mut rng);
        let runs: Vec<FinetuneSummary> = (1..=3)
            .map(|seed| run(seed, &gold, &labels(200, &mut rng)))
            .collect();
        let comparison = compare(&runs, &runs, 200, 0);
        let d = comparison.tasks["sst2"];
        assert_eq!((d.estimate, d.low, d.high), (0.0, 0.0, 0.0));
        assert!(!d.resolved());
        assert_eq!(comparison.glue, Some(d));
    }

    #[test]
    fn a_clear_gap_is_resolved_and_a_coin_flip_is_not() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let gold = labels(400, &mut rng);
        let flip = |p: f64, rng: &mut ChaCha8Rng| -> Vec<u32> {
            gold.iter()
                .map(|&g| if rng.random::<f64>() < p { 1 - g } else { g })
                .collect()
        };
        let good: Vec<_> = (1..=3)
            .map(|s| run(s, &gold, &flip(0.1, &mut rng)))
            .collect();
        let chance: Vec<_> = (1..=3)
            .map(|s| run(s, &gold, &flip(0.5, &mut rng)))
            .collect();
        let d = compare(&good, &chance, 500, 0).tasks["sst2"];
        assert!(
            d.resolved() && d.low > 20.0 && d.estimate > d.low && d.estimate < d.high,
            "{d:?}"
        );
        let other: Vec<_> = (1..=3)
            .map(|s| run(s, &gold, &flip(0.5, &mut rng)))
            .collect();
        let d = compare(&chance, &other, 500, 0).tasks["sst2"];
        assert!(!d.resolved() && d.low < 0.0 && d.high > 0.0, "{d:?}");
    }

    #[test]
    fn pooled_pretraining_runs_are_resampled_and_widen_the_interval() {
        // Two pretraining runs of A that disagree (60% and 70% right on every seed) against
        // one run of B (65%): the seeds of a run agree, so only resampling the runs can show
        // the spread between them.
        let gold: Vec<u32> = (0..400).map(|i| i % 2).collect();
        let right = |share: f64| -> Vec<u32> {
            let n = (share * gold.len() as f64).round() as usize;
            gold.iter()
                .enumerate()
                .map(|(i, &g)| if i < n { g } else { 1 - g })
                .collect()
        };
        let runs = |share: f64, digest: Option<&str>| -> Vec<FinetuneSummary> {
            (1..=3)
                .map(|seed| test_summary("sst2", seed, &gold, &right(share), digest))
                .collect()
        };
        let pooled: Vec<FinetuneSummary> = runs(0.60, Some("run-1"))
            .into_iter()
            .chain(runs(0.70, Some("run-2")))
            .collect();
        let baseline = runs(0.65, None);
        let comparison = compare(&pooled, &baseline, 1000, 0);
        assert_eq!(comparison.pretraining_runs, (2, 1));
        let d = comparison.tasks["sst2"];
        assert!(d.estimate.abs() < 1e-9, "the median over both runs: {d:?}");
        assert!(
            d.low < -3.0 && d.high > 3.0 && !d.resolved(),
            "a run drawn twice moves the median by ±5: {d:?}"
        );
    }

    #[test]
    fn runs_on_other_examples_are_not_compared() {
        let a = [run(1, &[0, 1, 1], &[0, 1, 0])];
        let b = [run(1, &[1, 1, 1, 0], &[0, 1, 0, 0])];
        assert!(compare(&a, &b, 10, 0).tasks.is_empty());
    }

    #[test]
    fn each_electra_row_pairs_with_the_bert_run_that_matched_its_recipe() {
        use crate::records::pretrain::test_summary as pretrain_summary;
        use crate::report::table::TaskScores;
        // Four runs of equal FLOPs: ELECTRA lr 1e-3 and 2e-3, then BERT matched to 2e-3 and
        // to 1e-3. FLOPs alone cannot pair them.
        let recipe = |lr: f64| serde_json::json!({"lr": lr});
        let mut models = Vec::new();
        for (objective, lr, matched) in [
            (ObjectiveName::Electra, 1e-3, None),
            (ObjectiveName::Electra, 2e-3, None),
            (ObjectiveName::Bert, 5e-4, Some(2e-3)),
            (ObjectiveName::Bert, 5e-4, Some(1e-3)),
        ] {
            let mut summary = pretrain_summary(objective, "d");
            summary.recipe = recipe(lr);
            summary.match_compute.recipe = matched.map(recipe);
            models.push(Model {
                name: String::new(),
                summary,
                curve: Vec::new(),
                config_path: "config.json".into(),
            });
        }
        let gold = [0, 1, 0, 1];
        let mut groups = BTreeMap::new();
        let rows: Vec<Row> = models
            .iter()
            .enumerate()
            .map(|(model, m)| {
                let origin = Origin::Pretrained { model, step: None };
                groups.insert(origin.clone(), vec![run(1, &gold, &gold)]);
                Row {
                    label: format!("{model}"),
                    kind: RowKind::Ours(origin),
                    objective: format!("{:?}", m.summary.objective).to_uppercase(),
                    size: "tiny".to_owned(),
                    parameters: None,
                    train_flops: Some(m.summary.train_flops),
                    steps: None,
                    wall: None,
                    tasks: BTreeMap::from([("sst2".to_owned(), TaskScores::new(vec![(1, 100.0)]))]),
                    glue: Some(100.0),
                }
            })
            .collect();
        let found: Vec<(usize, usize)> = pairs(&rows, &models, &groups)
            .iter()
            .map(|p| (p.a, p.b))
            .collect();
        assert_eq!(found, [(0, 3), (1, 2)]);
    }
}
