//! The probe: a linear softmax classifier (multinomial logistic regression) over frozen
//! features, each feature standardised by its training rows' mean and standard deviation,
//! trained by Adam on mini-batches (the rate decayed linearly to 0) with an L2 penalty on the
//! weights. Plain Rust on the CPU,
//! one thread: a few million multiply-adds per step, and the same numbers on every machine.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// How a probe is trained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeSettings {
    /// Weight of `½‖W‖²` added to the mean cross-entropy.
    pub l2: f64,
    /// Passes over the training rows.
    pub epochs: usize,
    /// At least this many steps, whatever the rows (the online code's first, small blocks).
    pub min_steps: usize,
    /// Rows per step.
    pub batch_size: usize,
    /// Adam's learning rate at the first step, decayed linearly to 0 at the last.
    pub lr: f64,
}

/// Row-major features: `rows × dim`.
#[derive(Debug, Clone, Copy)]
pub struct Features<'a> {
    /// The values.
    pub values: &'a [f32],
    /// Features per row.
    pub dim: usize,
}

impl<'a> Features<'a> {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }
}

/// A trained probe.
#[derive(Debug, Clone)]
pub struct Probe {
    classes: usize,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    /// `dim × classes`.
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl Probe {
    /// The logits of one row into `out` (`classes` long); `scratch` holds the standardised row.
    fn logits(&self, x: &[f32], scratch: &mut [f32], out: &mut [f32]) {
        out.copy_from_slice(&self.bias);
        for (j, &value) in x.iter().enumerate() {
            let z = (value - self.mean[j]) * self.inv_std[j];
            scratch[j] = z;
            let w = &self.weights[j * self.classes..(j + 1) * self.classes];
            for (o, &w) in out.iter_mut().zip(w) {
                *o += z * w;
            }
        }
    }

    /// Natural-log probabilities of each class for row `x`.
    pub fn log_probs(&self, x: &[f32]) -> Vec<f64> {
        let mut scratch = vec![0.0; x.len()];
        let mut logits = vec![0.0; self.classes];
        self.logits(x, &mut scratch, &mut logits);
        log_softmax(&logits)
    }

    /// The most probable class of row `x` (the lowest id among ties).
    pub fn predict(&self, x: &[f32]) -> u8 {
        let log_probs = self.log_probs(x);
        let mut best = 0;
        for (c, &lp) in log_probs.iter().enumerate() {
            if lp > log_probs[best] {
                best = c;
            }
        }
        best as u8
    }
}

/// `log softmax(logits)` in f64.
fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let sum: f64 = logits.iter().map(|&v| (v as f64 - max).exp()).sum();
    let log_sum = max + sum.ln();
    logits.iter().map(|&v| v as f64 - log_sum).collect()
}

/// Mean and `1 / standard deviation` of each feature over `rows` (a constant feature gets 1).
fn standardiser(features: Features<'_>, rows: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let d = features.dim;
    let mut sum = vec![0f64; d];
    let mut squares = vec![0f64; d];
    for &i in rows {
        for (j, &v) in features.row(i).iter().enumerate() {
            sum[j] += v as f64;
            squares[j] += (v as f64) * (v as f64);
        }
    }
    let n = rows.len().max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let inv_std = squares
        .iter()
        .zip(&mean)
        .map(|(sq, m)| {
            let variance = (sq / n - m * m).max(0.0);
            if variance > 1e-12 {
                (1.0 / variance.sqrt()) as f32
            } else {
                1.0
            }
        })
        .collect();
    (mean.iter().map(|&m| m as f32).collect(), inv_std)
}

/// Adam's state for one parameter vector.
struct Adam {
    m: Vec<f64>,
    v: Vec<f64>,
}

impl Adam {
    fn new(len: usize) -> Self {
        Adam {
            m: vec![0.0; len],
            v: vec![0.0; len],
        }
    }

    /// One Adam step (β 0.9/0.999, ε 1e-8, bias-corrected) of `params` along `grad`.
    fn step(&mut self, params: &mut [f32], grad: &[f64], lr: f64, t: usize) {
        let (b1, b2) = (0.9f64, 0.999f64);
        let correction1 = 1.0 - b1.powi(t as i32);
        let correction2 = 1.0 - b2.powi(t as i32);
        for (((p, &g), m), v) in params
            .iter_mut()
            .zip(grad)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            let update = lr * (*m / correction1) / ((*v / correction2).sqrt() + 1e-8);
            *p -= update as f32;
        }
    }
}

/// Trains a probe on `rows` of `features` with `labels[row]` (ids below `classes`): weights
/// start at 0; each epoch visits the rows in an order shuffled by `seed`.
pub fn train(
    features: Features<'_>,
    rows: &[usize],
    labels: &[u8],
    classes: usize,
    settings: &ProbeSettings,
    seed: u64,
) -> Probe {
    let d = features.dim;
    let (mean, inv_std) = standardiser(features, rows);
    let mut probe = Probe {
        classes,
        mean,
        inv_std,
        weights: vec![0.0; d * classes],
        bias: vec![0.0; classes],
    };
    if rows.is_empty() {
        return probe;
    }
    let batch = settings.batch_size.min(rows.len()).max(1);
    let per_epoch = rows.len().div_ceil(batch);
    let steps = (settings.epochs * per_epoch).max(settings.min_steps);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order = rows.to_vec();
    let (mut adam_w, mut adam_b) = (Adam::new(d * classes), Adam::new(classes));
    let mut grad_w = vec![0f64; d * classes];
    let mut grad_b = vec![0f64; classes];
    let mut scratch = vec![0f32; d];
    let mut logits = vec![0f32; classes];
    for step in 0..steps {
        let in_epoch = step % per_epoch;
        if in_epoch == 0 {
            order.shuffle(&mut rng);
        }
        let chunk = &order[in_epoch * batch..((in_epoch + 1) * batch).min(order.len())];
        grad_w.iter_mut().for_each(|g| *g = 0.0);
        grad_b.iter_mut().for_each(|g| *g = 0.0);
        let scale = 1.0 / chunk.len() as f64;
        for &i in chunk {
            probe.logits(features.row(i), &mut scratch, &mut logits);
            let log_probs = log_softmax(&logits);
            let label = labels[i] as usize;
            for (c, lp) in log_probs.iter().enumerate() {
                // d(cross-entropy)/d(logit c) = p_c − 1[c = label].
                let delta = (lp.exp() - f64::from(u8::from(c == label))) * scale;
                logits[c] = delta as f32;
                grad_b[c] += delta;
            }
            for (j, &z) in scratch.iter().enumerate() {
                let row = &mut grad_w[j * classes..(j + 1) * classes];
                for (g, &delta) in row.iter_mut().zip(&logits) {
                    *g += f64::from(z) * f64::from(delta);
                }
            }
        }
        for (g, &w) in grad_w.iter_mut().zip(&probe.weights) {
            *g += settings.l2 * f64::from(w);
        }
        let lr = settings.lr * (1.0 - step as f64 / steps as f64);
        adam_w.step(&mut probe.weights, &grad_w, lr, step + 1);
        adam_b.step(&mut probe.bias, &grad_b, lr, step + 1);
    }
    probe
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ProbeSettings {
        ProbeSettings {
            l2: 1e-4,
            epochs: 20,
            min_steps: 0,
            batch_size: 16,
            lr: 1e-2,
        }
    }

    #[test]
    fn learns_a_linearly_separable_rule_and_is_deterministic() {
        // Class = which of three coordinates is largest, with an offset feature.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let n = 600;
        let mut values = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..n {
            let x: [f32; 3] = [
                rand::Rng::random(&mut rng),
                rand::Rng::random(&mut rng),
                rand::Rng::random(&mut rng),
            ];
            let label = (0..3).max_by(|&a, &b| x[a].total_cmp(&x[b])).unwrap();
            values.extend_from_slice(&[x[0] * 10.0 + 5.0, x[1], x[2], 7.0]);
            labels.push(label as u8);
        }
        let features = Features {
            values: &values,
            dim: 4,
        };
        let rows: Vec<usize> = (0..500).collect();
        let probe = train(features, &rows, &labels, 3, &settings(), 7);
        let correct = (500..n)
            .filter(|&i| probe.predict(features.row(i)) == labels[i])
            .count();
        assert!(correct >= 90, "{correct}/100");
        let again = train(features, &rows, &labels, 3, &settings(), 7);
        assert_eq!(probe.weights, again.weights);
        let other = train(features, &rows, &labels, 3, &settings(), 8);
        assert_ne!(probe.weights, other.weights);
    }
}
