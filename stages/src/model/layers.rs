//! The building blocks, written out so every parameter and every random draw is ours: a dense
//! layer, LayerNorm, dropout driven by the step's own random stream, and the truncated-normal
//! initialisation BERT and ELECTRA use (σ 0.02).

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::ops::{dropout, layer_norm, linear};

/// Standard deviation of the initial weights (BERT's `initializer_range`).
pub const INIT_STD: f64 = 0.02;
/// LayerNorm's epsilon (BERT's).
pub const LAYER_NORM_EPS: f64 = 1e-12;

/// Draws initial weights: a truncated normal N(0, σ²) cut at 2σ, from a seeded stream.
pub struct Init<'a, B: Backend> {
    /// Where the tensors live.
    pub device: &'a B::Device,
    /// The stream the weights are drawn from.
    pub rng: &'a mut ChaCha8Rng,
}

impl<B: Backend> Init<'_, B> {
    /// A `[rows, cols]` tensor of truncated-normal weights.
    pub fn weights(&mut self, rows: usize, cols: usize) -> Tensor<B, 2> {
        let values: Vec<f32> = (0..rows * cols)
            .map(|_| truncated_normal(self.rng) * INIT_STD as f32)
            .collect();
        Tensor::from_data(TensorData::new(values, [rows, cols]), self.device)
    }

    /// A `[len]` tensor filled with `value` (biases 0, LayerNorm gains 1).
    pub fn constant(&mut self, len: usize, value: f32) -> Tensor<B, 1> {
        Tensor::from_data(TensorData::new(vec![value; len], [len]), self.device)
    }
}

/// A standard normal draw, redrawn until within 2σ (TensorFlow's truncated normal).
fn truncated_normal(rng: &mut ChaCha8Rng) -> f32 {
    loop {
        // Box–Muller.
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        if z.abs() <= 2.0 {
            return z as f32;
        }
    }
}

/// `x · W + b` over the last dimension. `weight`: `[in, out]`.
#[derive(Module, Debug)]
pub struct Dense<B: Backend> {
    /// `[in, out]`.
    pub weight: Param<Tensor<B, 2>>,
    /// `[out]`.
    pub bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> Dense<B> {
    /// A freshly initialised `in → out` layer.
    pub fn new(init: &mut Init<'_, B>, d_in: usize, d_out: usize) -> Self {
        Dense {
            weight: Param::from_tensor(init.weights(d_in, d_out)),
            bias: Param::from_tensor(init.constant(d_out, 0.0)),
        }
    }

    /// `[.., in] → [.., out]`, as one `[rows, in] × [in, out]` product over all leading
    /// dimensions (a batched product of `[s, in]` slices is several times slower on the CPU
    /// when sequences are short).
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let mut dims = x.dims();
        let rows = dims[..D - 1].iter().product();
        let [d_in, d_out] = self.weight.val().dims();
        let y = linear(x.reshape([rows, d_in]), self.weight.val(), self.bias.val());
        dims[D - 1] = d_out;
        y.reshape(dims)
    }
}

/// LayerNorm over the last dimension with a learned gain and bias.
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    /// `[d]`, initially 1.
    pub gamma: Param<Tensor<B, 1>>,
    /// `[d]`, initially 0.
    pub beta: Param<Tensor<B, 1>>,
}

impl<B: Backend> LayerNorm<B> {
    /// A LayerNorm over `d` features.
    pub fn new(init: &mut Init<'_, B>, d: usize) -> Self {
        LayerNorm {
            gamma: Param::from_tensor(init.constant(d, 1.0)),
            beta: Param::from_tensor(init.constant(d, 0.0)),
        }
    }

    /// Normalises `[.., d]` to zero mean and unit variance, then scales and shifts.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        layer_norm(x, self.gamma.val(), self.beta.val(), LAYER_NORM_EPS)
    }
}

/// Where dropout masks come from: the step's random stream, or nowhere (evaluation).
pub enum Dropout<'a> {
    /// Training: masks are drawn from this stream with drop probability `p`.
    Train {
        /// Drop probability.
        p: f64,
        /// The step's stream.
        rng: &'a mut ChaCha8Rng,
    },
    /// Evaluation: the identity.
    Off,
}

impl Dropout<'_> {
    /// Zeroes each element with probability `p` and scales the rest by `1/(1-p)`.
    pub fn apply<B: Backend, const D: usize>(&mut self, x: Tensor<B, D>) -> Tensor<B, D> {
        let Dropout::Train { p, rng } = self else {
            return x;
        };
        if *p <= 0.0 {
            return x;
        }
        let count: usize = x.dims().iter().product();
        // Four 16-bit draws per 64-bit word: drop where the draw falls under p · 2^16.
        let threshold = (*p * 65536.0).round() as u64;
        let mut drop = vec![false; count];
        for four in drop.chunks_mut(4) {
            let word: u64 = rng.random();
            for (k, drop) in four.iter_mut().enumerate() {
                *drop = ((word >> (16 * k)) & 0xffff) < threshold;
            }
        }
        dropout(x, drop, (1.0 / (1.0 - *p)) as f32)
    }
}
