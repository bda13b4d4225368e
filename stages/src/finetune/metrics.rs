//! The GLUE dev metrics, exactly: accuracy, F1 of the positive class, Matthews correlation,
//! Pearson and Spearman (average ranks for ties), and which one is the paper's score per task.
//!
//! Where a metric is undefined (a constant prediction or gold column) it is 0, as
//! scikit-learn's `matthews_corrcoef` does: no correlation was shown.

use std::collections::BTreeMap;

use crate::glue::{Metric, Task};

/// Share of `predicted` equal to `gold`.
pub fn accuracy(predicted: &[u32], gold: &[u32]) -> f64 {
    let correct = predicted.iter().zip(gold).filter(|(p, g)| p == g).count();
    ratio(correct as f64, gold.len() as f64)
}

/// F1 of class `positive`: 2·TP / (2·TP + FP + FN); 0 when there is no true positive.
pub fn f1(predicted: &[u32], gold: &[u32], positive: u32) -> f64 {
    let (mut tp, mut fp, mut fn_) = (0.0, 0.0, 0.0);
    for (&p, &g) in predicted.iter().zip(gold) {
        match (p == positive, g == positive) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fn_ += 1.0,
            (false, false) => {}
        }
    }
    ratio(2.0 * tp, 2.0 * tp + fp + fn_)
}

/// Matthews correlation coefficient over `classes` classes (Gorodkin's R_K, which is the
/// usual (TP·TN − FP·FN)/√(…) for two): 0 when undefined.
pub fn matthews(predicted: &[u32], gold: &[u32], classes: usize) -> f64 {
    let n = gold.len() as f64;
    let mut predicted_count = vec![0.0; classes];
    let mut gold_count = vec![0.0; classes];
    let mut correct = 0.0;
    for (&p, &g) in predicted.iter().zip(gold) {
        predicted_count[p as usize] += 1.0;
        gold_count[g as usize] += 1.0;
        if p == g {
            correct += 1.0;
        }
    }
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let covariance = correct * n - dot(&predicted_count, &gold_count);
    let spread_p = n * n - dot(&predicted_count, &predicted_count);
    let spread_g = n * n - dot(&gold_count, &gold_count);
    ratio(covariance, (spread_p * spread_g).sqrt())
}

/// Pearson's correlation of `x` and `y`; 0 when either is constant.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let mean_x = x.iter().sum::<f64>() / n;
    let mean_y = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mean_x, b - mean_y);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    ratio(sxy, (sxx * syy).sqrt())
}

/// Spearman's rank correlation: Pearson's of the ranks, tied values sharing their average
/// rank (as `scipy.stats.spearmanr`).
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&average_ranks(x), &average_ranks(y))
}

/// 1-based ranks of `values`, ties given the mean of the ranks they span.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end hold ranks start+1 ..= end; their mean:
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 || !b.is_finite() {
        0.0
    } else {
        a / b
    }
}

/// Predictions of one split next to its gold labels.
#[derive(Debug, Clone, PartialEq)]
pub enum Scored<'a> {
    /// Class ids.
    Classes {
        /// Predicted ids.
        predicted: &'a [u32],
        /// Gold ids.
        gold: &'a [u32],
    },
    /// Regression scores (STS-B).
    Scores {
        /// Predicted scores.
        predicted: &'a [f64],
        /// Gold scores.
        gold: &'a [f64],
    },
}

/// The metrics GLUE reports for `task`, by name: accuracy (and MCC for CoLA, F1 for MRPC and
/// QQP) for classification, Pearson and Spearman for STS-B.
pub fn task_metrics(task: &Task, scored: &Scored<'_>) -> BTreeMap<String, f64> {
    let mut metrics = BTreeMap::new();
    match *scored {
        Scored::Classes { predicted, gold } => {
            metrics.insert("accuracy".to_owned(), accuracy(predicted, gold));
            if task.metric == Metric::Mcc {
                let classes = task.labels.map_or(2, <[&str]>::len);
                metrics.insert("mcc".to_owned(), matthews(predicted, gold, classes));
            }
            if matches!(task.name, "mrpc" | "qqp") {
                metrics.insert("f1".to_owned(), f1(predicted, gold, 1));
            }
        }
        Scored::Scores { predicted, gold } => {
            metrics.insert("pearson".to_owned(), pearson(predicted, gold));
            metrics.insert("spearman".to_owned(), spearman(predicted, gold));
        }
    }
    metrics
}

/// The name of the paper's score for `metric` in [`task_metrics`]'s map.
pub fn score_name(metric: Metric) -> &'static str {
    match metric {
        Metric::Mcc => "mcc",
        Metric::Spearman => "spearman",
        Metric::Accuracy => "accuracy",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    #[test]
    fn accuracy_and_f1_by_hand() {
        let gold = [1, 1, 1, 0, 0, 0, 0, 1];
        let pred = [1, 0, 1, 1, 0, 0, 0, 1];
        close(accuracy(&pred, &gold), 6.0 / 8.0);
        // TP 3, FP 1, FN 1: F1 = 6 / (6 + 2).
        close(f1(&pred, &gold, 1), 0.75);
        // Class 0: TP 3, FP 1, FN 1.
        close(f1(&pred, &gold, 0), 0.75);
        close(f1(&[0, 0], &[1, 1], 1), 0.0);
    }

    #[test]
    fn matthews_by_hand_and_when_undefined() {
        // TP 3, TN 3, FP 1, FN 1: (9 − 1) / √(4·4·4·4) = 0.5.
        let gold = [1, 1, 1, 0, 0, 0, 0, 1];
        let pred = [1, 0, 1, 1, 0, 0, 0, 1];
        close(matthews(&pred, &gold, 2), 0.5);
        // TP 2, TN 1, FP 2, FN 0: (2 − 0) / √(4·2·3·1) = 2 / √24.
        close(
            matthews(&[1, 1, 1, 1, 0], &[1, 1, 0, 0, 0], 2),
            2.0 / 24f64.sqrt(),
        );
        close(matthews(&[0, 1, 1, 0], &[1, 0, 0, 1], 2), -1.0);
        // A constant prediction: undefined, so 0.
        close(matthews(&[1, 1, 1], &[0, 1, 0], 2), 0.0);
        close(matthews(&[1, 0, 1], &[1, 1, 1], 2), 0.0);
    }

    #[test]
    fn pearson_by_hand() {
        // x̄ 2, ȳ 3: dx = [-1, 0, 1], dy = [-2, 1, 1].
        // Σdxdy = 2 + 0 + 1 = 3, Σdx² = 2, Σdy² = 6: 3 / √12.
        close(
            pearson(&[1.0, 2.0, 3.0], &[1.0, 4.0, 4.0]),
            3.0 / 12f64.sqrt(),
        );
        close(pearson(&[1.0, 2.0, 3.0], &[6.0, 4.0, 2.0]), -1.0);
        close(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), 0.0);
    }

    #[test]
    fn spearman_averages_tied_ranks() {
        assert_eq!(
            average_ranks(&[10.0, 20.0, 20.0, 5.0]),
            [2.0, 3.5, 3.5, 1.0]
        );
        assert_eq!(average_ranks(&[1.0, 1.0, 1.0]), [2.0, 2.0, 2.0]);
        // x ranks [1, 2, 3, 4]; y = [1, 3, 3, 2] ranks [1, 3.5, 3.5, 2].
        // Ranks of y centred: [-1.5, 1, 1, -0.5]; of x: [-1.5, -0.5, 0.5, 1.5].
        // Σ = 2.25 − 0.5 + 0.5 − 0.75 = 1.5; Σx² = 5; Σy² = 2.25 + 1 + 1 + 0.25 = 4.5.
        close(
            spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 3.0, 2.0]),
            1.5 / (5.0f64 * 4.5).sqrt(),
        );
        // Monotone but not linear: Spearman 1, Pearson below.
        let (x, y) = ([1.0, 2.0, 3.0, 4.0], [1.0, 10.0, 100.0, 1000.0]);
        close(spearman(&x, &y), 1.0);
        assert!(pearson(&x, &y) < 0.99);
    }

    #[test]
    fn each_task_reports_the_papers_metric() {
        let cola = Task::named("cola").unwrap();
        let m = task_metrics(
            cola,
            &Scored::Classes {
                predicted: &[1, 0],
                gold: &[1, 0],
            },
        );
        assert_eq!(m.keys().collect::<Vec<_>>(), ["accuracy", "mcc"]);
        close(m[score_name(cola.metric)], 1.0);
        let mrpc = Task::named("mrpc").unwrap();
        let m = task_metrics(
            mrpc,
            &Scored::Classes {
                predicted: &[1, 1],
                gold: &[1, 0],
            },
        );
        assert_eq!(m.keys().collect::<Vec<_>>(), ["accuracy", "f1"]);
        let stsb = Task::named("stsb").unwrap();
        let m = task_metrics(
            stsb,
            &Scored::Scores {
                predicted: &[1.0, 2.0, 3.0],
                gold: &[0.5, 2.5, 2.0],
            },
        );
        assert_eq!(m.keys().collect::<Vec<_>>(), ["pearson", "spearman"]);
        close(m[score_name(stsb.metric)], 0.5);
    }
}
