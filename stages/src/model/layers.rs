//! The building blocks, written out so every parameter and every random draw is ours: a dense
//! layer, LayerNorm, dropout with masks keyed by the step's seed and each example's row, and the truncated-normal
//! initialisation BERT and ELECTRA use (σ 0.02).

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

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

/// Where dropout masks come from: a forward pass's [`DropoutMasks`], or nowhere (evaluation).
pub enum Dropout {
    /// Training: masks are drawn from `masks` with drop probability `p`.
    Train {
        /// Drop probability.
        p: f64,
        /// The forward pass's masks.
        masks: DropoutMasks,
    },
    /// Evaluation: the identity.
    Off,
}

/// The dropout masks of one forward pass, keyed by *row* (the first dimension of every
/// tensor dropout sees: the batch's examples) so that a row's masks are the same whichever
/// slice of the batch it is computed in. The `c`-th dropout of the pass draws from stream `c`
/// of a ChaCha generator seeded with the step's seed; row `r` of the whole batch starts at
/// word `r · ⌈n/4⌉` of that stream, for `n` elements per row (four 16-bit draws per 64-bit
/// word). A micro-batch starting at row `first_row` therefore draws exactly the masks its rows
/// get in one pass over the whole batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropoutMasks {
    seed: u64,
    first_row: usize,
    calls: u64,
}

impl DropoutMasks {
    /// The masks of a pass over the rows from `first_row` on of the batch whose dropout seed is
    /// `seed`.
    pub fn new(seed: u64, first_row: usize) -> Self {
        DropoutMasks {
            seed,
            first_row,
            calls: 0,
        }
    }

    /// The next dropout's drop flags for `rows` rows of `per_row` elements each, dropping
    /// where a 16-bit draw falls under `p · 2^16`.
    fn next(&mut self, rows: usize, per_row: usize, p: f64) -> Vec<bool> {
        let stream = self.calls;
        self.calls += 1;
        let threshold = (p * 65536.0).round() as u64;
        let words_per_row = per_row.div_ceil(4);
        let mut drop = vec![false; rows * per_row];
        drop.par_chunks_mut(per_row.max(1))
            .enumerate()
            .for_each(|(r, row)| {
                let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
                rng.set_stream(stream);
                // ChaCha counts its position in 32-bit words: two per 64-bit draw.
                rng.set_word_pos(2 * (words_per_row * (self.first_row + r)) as u128);
                for four in row.chunks_mut(4) {
                    let word: u64 = rng.random();
                    for (k, drop) in four.iter_mut().enumerate() {
                        *drop = ((word >> (16 * k)) & 0xffff) < threshold;
                    }
                }
            });
        drop
    }
}

impl Dropout {
    /// A training pass's dropout with probability `p` over the rows from `first_row` on of the
    /// batch whose dropout seed is `seed`.
    pub fn train(p: f64, seed: u64, first_row: usize) -> Self {
        Dropout::Train {
            p,
            masks: DropoutMasks::new(seed, first_row),
        }
    }

    /// Zeroes each element with probability `p` and scales the rest by `1/(1-p)`. `x`'s first
    /// dimension is the batch's rows.
    pub fn apply<B: Backend, const D: usize>(&mut self, x: Tensor<B, D>) -> Tensor<B, D> {
        let Dropout::Train { p, masks } = self else {
            return x;
        };
        if *p <= 0.0 {
            return x;
        }
        let dims = x.dims();
        let rows = dims[0];
        let per_row: usize = dims[1..].iter().product();
        let drop = masks.next(rows, per_row, *p);
        dropout(x, drop, (1.0 / (1.0 - *p)) as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rows_dropout_masks_do_not_depend_on_the_slice_of_the_batch_it_is_in() {
        // Two dropouts over 5 rows of 7 elements (not a multiple of four draws), in one pass
        // and in passes over rows 0..2 and 2..5.
        let p = 0.3;
        let mut whole = DropoutMasks::new(11, 0);
        let whole: Vec<Vec<bool>> = (0..2).map(|_| whole.next(5, 7, p)).collect();
        let mut first = DropoutMasks::new(11, 0);
        let mut rest = DropoutMasks::new(11, 2);
        for call in &whole {
            let mut sliced = first.next(2, 7, p);
            sliced.extend(rest.next(3, 7, p));
            assert_eq!(&sliced, call);
        }
        // The calls and the rows draw different masks, at about the drop probability.
        assert_ne!(whole[0], whole[1]);
        assert_ne!(whole[0][..7], whole[0][7..14]);
        let mut many = DropoutMasks::new(3, 0);
        let dropped = many.next(100, 1000, p).iter().filter(|&&d| d).count();
        assert!(
            (dropped as f64 / 1e5 - p).abs() < 0.01,
            "{dropped} of 100,000"
        );
    }
}
