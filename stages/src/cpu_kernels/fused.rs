//! Fused kernels for the element- and row-wise operations whose memory traffic and scalar
//! libm calls dominate a small model's training step on the CPU: the attention softmax,
//! LayerNorm, GELU and the masked-LM cross-entropy, with a vectorisable [`exp`].
//!
//! Under autodiff, burn composes most of them from five to nine elementwise operations, each
//! a fresh tensor, and its backward recomputes the exponentials and walks the same rows again
//! for every one of them. On the `flex` backend with autodiff (the CPU training backend) each
//! is here one forward pass and one backward pass, parallel by rows:
//! - [`attention_softmax`]: forward the scaled scores plus the padding bias, their maximum,
//!   exponentials and sum, in one sweep of each row; backward `dx = scale · y ⊙ (dy − Σ dy ⊙ y)`
//!   in place of the incoming gradient;
//! - [`layer_norm`]: forward the row mean and variance, then the normalised, scaled and
//!   shifted row; backward `dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ ⊙ x̂))` with
//!   `dx̂ = dy ⊙ γ`, and γ's and β's gradients summed over rows in a fixed order;
//! - [`gelu`]: the exact GELU and its derivative with a vectorisable erf (within 6e-7);
//! - [`dropout`]: the drawn mask and the `1/(1 − p)` scale in one pass each way (bit for bit
//!   what `mask_fill` then a scalar product give);
//! - [`cross_entropy`]: forward the row maximum, its index (for the accuracy) and the
//!   log-sum-exp in two passes; backward `dx = (softmax(x) − onehot(t)) · dl / n` in one.
//!
//! Without autodiff (inference on `flex`: fine-tuning's evaluation) the softmax, LayerNorm
//! and GELU run the same forward pass, so a prediction is the training graph's value bit for
//! bit. Each function takes the operation where it can (f32 on `flex`) and otherwise
//! hands its arguments back, for `model::ops` to compose from burn's operations as every
//! other backend (and every dtype but f32) does; results agree with those to rounding (tests
//! below).

use burn::backend::Flex;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Bytes, DType, Tensor};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{unary, Backward, Ops, OpsKind};
use burn_flex::{FlexTensor, Layout};
use rayon::prelude::*;

use super::{from_flex, from_tape, into_flex, into_tape, is_flex_f32, on_tape, simd, Tape};

/// Rows per parallel task: enough work per task at the attention's short rows.
const ROWS_PER_TASK: usize = 64;

/// e^x in f32 to within 2 ulp of the exact value, written so that loops over slices
/// vectorise (no libm call, no branch): x = n·ln 2 + r with |r| ≤ ln 2 / 2, Cephes' degree-6
/// polynomial for e^r, then 2^n by the exponent bits. Below −87.3, where e^x would be
/// subnormal, it is 0 (subnormal weights would slow every product they enter); above 88.37 it
/// stays finite.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOWEST: f32 = -87.336_54; // ln of the smallest normal f32
    const ROUNDING: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    let clamped = x.clamp(LOWEST, 88.37);
    let shifted = clamped * std::f32::consts::LOG2_E + ROUNDING;
    let n = shifted - ROUNDING;
    let r = clamped - n * 0.693_359_4 + n * 2.121_944_4e-4; // ln 2 in two parts
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    let n = (shifted.to_bits() as i32).wrapping_sub(ROUNDING.to_bits() as i32);
    let value = e_r * f32::from_bits(((n + 127).max(1) as u32) << 23);
    if x < LOWEST || value < f32::MIN_POSITIVE {
        0.0
    } else {
        value
    }
}

/// `model::ops::attention_softmax` on flex; elsewhere the scores and bias back.
pub(crate) fn attention_softmax<B: Backend>(
    scores: Tensor<B, 4>,
    scale: f64,
    bias: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, (Tensor<B, 4>, Tensor<B, 4>)> {
    if is_flex_f32(&scores) {
        let (bias, scores) = (into_flex(bias), into_flex(scores));
        return Ok(from_flex(attention_softmax_forward(
            &scores,
            scale as f32,
            bias,
        )));
    }
    if !on_tape(&scores) {
        return Err((scores, bias));
    }
    let bias = into_tape(bias).primitive;
    Ok(from_tape(attention_softmax_on_tape(
        into_tape(scores),
        scale as f32,
        bias,
    )))
}

/// The backward step of [`attention_softmax`]: it keeps the output `y` and the scale.
#[derive(Debug)]
struct SoftmaxBackward;

impl Backward<Flex, 1> for SoftmaxBackward {
    type State = (FlexTensor, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (y, scale) = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |dy| {
            softmax_backward(&y, scale, dy)
        });
    }
}

fn attention_softmax_on_tape(
    scores: FloatTensor<Tape>,
    scale: f32,
    bias: FlexTensor,
) -> FloatTensor<Tape> {
    let y = attention_softmax_forward(&scores.primitive, scale, bias);
    match SoftmaxBackward
        .prepare::<NoCheckpointing>([scores.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((y.clone(), scale), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// The values of [`attention_softmax`], as a new contiguous tensor.
fn attention_softmax_forward(scores: &FlexTensor, scale: f32, bias: FlexTensor) -> FlexTensor {
    let x = scores.to_contiguous();
    let shape = x.layout().shape().clone();
    let (queries, width) = (shape[2], shape[3]);
    let rows_per_example = shape[1] * queries;
    let bias = bias.to_contiguous();
    let bias = bias.as_slice::<f32>().expect("made contiguous above");
    let bias_rows = bias.len() / width;
    assert!(
        bias_rows == shape[0] || bias_rows == shape[0] * queries,
        "an attention bias of [b, 1, 1, s] or [b, 1, s, s]"
    );
    let per_query = bias_rows != shape[0];
    let x = x.as_slice::<f32>().expect("made contiguous above");
    let mut y = vec![0.0f32; x.len()];
    y.par_chunks_mut(ROWS_PER_TASK * width)
        .zip(x.par_chunks(ROWS_PER_TASK * width))
        .enumerate()
        .for_each(|(task, (y, x))| {
            simd::dispatch(
                #[inline(always)]
                || {
                    for (k, (y, x)) in y.chunks_mut(width).zip(x.chunks(width)).enumerate() {
                        let row = task * ROWS_PER_TASK + k;
                        let example = row / rows_per_example;
                        let bias_row = if per_query {
                            example * queries + row % queries
                        } else {
                            example
                        };
                        let bias = &bias[bias_row * width..(bias_row + 1) * width];
                        for ((y, &x), &b) in y.iter_mut().zip(x).zip(bias) {
                            *y = x * scale + b;
                        }
                        let max = simd::max(y);
                        for y in y.iter_mut() {
                            *y = exp(*y - max);
                        }
                        let inverse = 1.0 / simd::sum(y);
                        for y in y.iter_mut() {
                            *y *= inverse;
                        }
                    }
                },
            )
        });
    contiguous(y, shape)
}

/// `scale · y ⊙ (dy − Σ dy ⊙ y)` per row of the last dimension, written over `dy` (over a
/// copy of it where it is shared or not contiguous).
fn softmax_backward(y: &FlexTensor, scale: f32, dy: FlexTensor) -> FlexTensor {
    let width = y.layout().shape()[y.layout().shape().num_dims() - 1];
    let y = y
        .as_slice::<f32>()
        .expect("a softmax output is contiguous f32");
    in_place(dy, |dx| {
        dx.par_chunks_mut(ROWS_PER_TASK * width)
            .zip(y.par_chunks(ROWS_PER_TASK * width))
            .for_each(|(dx, y)| {
                simd::dispatch(
                    #[inline(always)]
                    || {
                        for (dx, y) in dx.chunks_mut(width).zip(y.chunks(width)) {
                            let dot = simd::dot(dx, y);
                            for (dx, &y) in dx.iter_mut().zip(y) {
                                *dx = scale * y * (*dx - dot);
                            }
                        }
                    },
                )
            })
    })
}

/// `tensor` after `update` has rewritten its values (in row-major order): in its own storage
/// where the tensor holds that alone and is contiguous from its start (no allocation, no
/// copy), otherwise in a contiguous copy.
fn in_place(mut tensor: FlexTensor, update: impl FnOnce(&mut [f32])) -> FlexTensor {
    let shape = tensor.layout().shape().clone();
    let len = shape.num_elements();
    if tensor.layout().contiguous_offsets() == Some((0, len)) {
        if let Some(values) = tensor.try_storage_mut::<f32>() {
            update(&mut values[..len]);
            return tensor;
        }
    }
    let mut copy = tensor
        .to_contiguous()
        .as_slice::<f32>()
        .expect("made contiguous")
        .to_vec();
    update(&mut copy);
    contiguous(copy, shape)
}

/// A contiguous f32 flex tensor of `shape` holding `values`.
pub(crate) fn contiguous(values: Vec<f32>, shape: burn::tensor::Shape) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape),
        DType::F32,
    )
}

/// erf(x) in f32 to within 6e-7 (Abramowitz and Stegun 7.1.26, with [`exp`]), written so
/// that loops over slices vectorise.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152_1 + t * 1.061_405_4))));
    (1.0 - poly * exp(-a * a)).copysign(x)
}

/// `model::ops::gelu` on flex; elsewhere `x` back.
pub(crate) fn gelu<B: Backend, const D: usize>(
    x: Tensor<B, D>,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    if is_flex_f32(&x) {
        return Ok(from_flex(gelu_forward(&into_flex(x).to_contiguous())));
    }
    if !on_tape(&x) {
        return Err(x);
    }
    Ok(from_tape(gelu_on_tape(into_tape(x))))
}

/// The backward step of [`gelu`]: it keeps the input (contiguous).
#[derive(Debug)]
struct GeluBackward;

impl Backward<Flex, 1> for GeluBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let x = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |dy| {
            in_place(dy, |dy| {
                zip_update(
                    dy,
                    x.as_slice::<f32>().expect("kept contiguous"),
                    #[inline(always)]
                    |dy, x| {
                        let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
                        let pdf = exp(-0.5 * x * x) * 0.398_942_3; // e^(−x²/2) / √(2π)
                        dy * (cdf + x * pdf)
                    },
                )
            })
        });
    }
}

fn gelu_on_tape(x: FloatTensor<Tape>) -> FloatTensor<Tape> {
    let input = x.primitive.to_contiguous();
    let y = gelu_forward(&input);
    match GeluBackward
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(input, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// The values of [`gelu`] on the contiguous `input`, as a new tensor.
fn gelu_forward(input: &FlexTensor) -> FlexTensor {
    let y = map(
        input.as_slice::<f32>().expect("made contiguous"),
        #[inline(always)]
        |x| 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
    );
    contiguous(y, input.layout().shape().clone())
}

/// `model::ops::dropout` on the tape; elsewhere `x` and the mask back.
#[allow(clippy::type_complexity)]
pub(crate) fn dropout<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    drop: Vec<bool>,
    scale: f32,
) -> Result<Tensor<B, D>, (Tensor<B, D>, Vec<bool>)> {
    if !on_tape(&x) {
        return Err((x, drop));
    }
    Ok(from_tape(dropout_on_tape(into_tape(x), drop, scale)))
}

/// The backward step of [`dropout`]: it keeps the mask and the scale.
#[derive(Debug)]
struct DropoutBackward;

impl Backward<Flex, 1> for DropoutBackward {
    type State = (Vec<bool>, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (drop, scale) = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |dy| masked(dy, &drop, scale));
    }
}

/// `x · scale` where `drop` is false, 0 where it is true: in `x`'s storage where it may be
/// written (see [`in_place`]).
fn masked(x: FlexTensor, drop: &[bool], scale: f32) -> FlexTensor {
    assert_eq!(
        x.layout().shape().num_elements(),
        drop.len(),
        "a dropout mask per element"
    );
    in_place(x, |values| {
        zip_update(
            values,
            drop,
            #[inline(always)]
            |x, drop| if drop { 0.0 } else { x * scale },
        )
    })
}

fn dropout_on_tape(x: FloatTensor<Tape>, drop: Vec<bool>, scale: f32) -> FloatTensor<Tape> {
    let y = masked(x.primitive, &drop, scale);
    match DropoutBackward
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((drop, scale), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// Elements per parallel task of [`map`] and [`zip_update`].
const ELEMENTS_PER_TASK: usize = 16_384;

/// `f(x)` for every element of `x`, in parallel chunks, as a new vector.
fn map(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    out.spare_capacity_mut()[..x.len()]
        .par_chunks_mut(ELEMENTS_PER_TASK)
        .zip(x.par_chunks(ELEMENTS_PER_TASK))
        .for_each(|(out, x)| {
            simd::dispatch(
                #[inline(always)]
                || {
                    for (out, &x) in out.iter_mut().zip(x) {
                        out.write(f(x));
                    }
                },
            )
        });
    // SAFETY: the chunks above cover the first `x.len()` elements of the spare capacity, and
    // each of them was written once.
    unsafe { out.set_len(x.len()) };
    out
}

/// `values[i] ← f(values[i], with[i])` for every element, in parallel chunks.
fn zip_update<T: Copy + Sync>(values: &mut [f32], with: &[T], f: impl Fn(f32, T) -> f32 + Sync) {
    assert_eq!(
        values.len(),
        with.len(),
        "one element to pair with each value"
    );
    values
        .par_chunks_mut(ELEMENTS_PER_TASK)
        .zip(with.par_chunks(ELEMENTS_PER_TASK))
        .for_each(|(values, with)| {
            simd::dispatch(
                #[inline(always)]
                || {
                    for (value, &with) in values.iter_mut().zip(with) {
                        *value = f(*value, with);
                    }
                },
            )
        });
}

/// `model::ops::layer_norm` on flex; elsewhere `x`, gamma and beta back.
#[allow(clippy::type_complexity)]
pub(crate) fn layer_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    eps: f64,
) -> Result<Tensor<B, D>, (Tensor<B, D>, Tensor<B, 1>, Tensor<B, 1>)> {
    if is_flex_f32(&x) {
        let input = into_flex(x).to_contiguous();
        let (gamma, beta) = (into_flex(gamma), into_flex(beta));
        return Ok(from_flex(
            layer_norm_forward(&input, &gamma, &beta, eps as f32).0,
        ));
    }
    if !on_tape(&x) {
        return Err((x, gamma, beta));
    }
    Ok(from_tape(layer_norm_on_tape(
        into_tape(x),
        into_tape(gamma),
        into_tape(beta),
        eps as f32,
    )))
}

/// What [`layer_norm`]'s backward step keeps: the input (contiguous), each row's mean and
/// reciprocal standard deviation, and gamma.
#[derive(Debug, Clone)]
struct LayerNormState {
    x: FlexTensor,
    mean: Vec<f32>,
    rstd: Vec<f32>,
    gamma: FlexTensor,
}

/// The backward step of [`layer_norm`].
#[derive(Debug)]
struct LayerNormBackward;

impl Backward<Flex, 3> for LayerNormBackward {
    type State = LayerNormState;

    fn backward(self, ops: Ops<LayerNormState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, gamma_node, beta_node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let (dx, dgamma, dbeta) = layer_norm_backward(&ops.state, &dy);
        let shape = ops.state.x.layout().shape().clone();
        let width = shape[shape.num_dims() - 1];
        if let Some(node) = x_node {
            grads.register::<Flex>(node.id, contiguous(dx, shape));
        }
        if let Some(node) = gamma_node {
            grads.register::<Flex>(node.id, contiguous(dgamma, [width].into()));
        }
        if let Some(node) = beta_node {
            grads.register::<Flex>(node.id, contiguous(dbeta, [width].into()));
        }
    }
}

fn layer_norm_on_tape(
    x: FloatTensor<Tape>,
    gamma: FloatTensor<Tape>,
    beta: FloatTensor<Tape>,
    eps: f32,
) -> FloatTensor<Tape> {
    let input = x.primitive.to_contiguous();
    let gamma_values = gamma.primitive.to_contiguous();
    let (y, stats) = layer_norm_forward(&input, &gamma_values, &beta.primitive, eps);
    match LayerNormBackward
        .prepare::<NoCheckpointing>([x.node.clone(), gamma.node.clone(), beta.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let (mean, rstd) = stats.into_iter().unzip();
            let state = LayerNormState {
                x: input,
                mean,
                rstd,
                gamma: gamma_values,
            };
            prep.finish(state, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// The values of [`layer_norm`] on the contiguous `input`, as a new tensor, with each row's
/// mean and reciprocal standard deviation.
fn layer_norm_forward(
    input: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    eps: f32,
) -> (FlexTensor, Vec<(f32, f32)>) {
    let shape = input.layout().shape().clone();
    let width = shape[shape.num_dims() - 1];
    let values = input.as_slice::<f32>().expect("made contiguous above");
    let (gamma, beta) = (gamma.to_contiguous(), beta.to_contiguous());
    let (g, b) = (
        gamma.as_slice::<f32>().expect("contiguous f32"),
        beta.as_slice::<f32>().expect("contiguous f32"),
    );
    let mut y = vec![0.0f32; values.len()];
    let stats: Vec<(f32, f32)> = y
        .par_chunks_mut(width)
        .zip(values.par_chunks(width))
        .map(|(y, x)| {
            simd::dispatch(
                #[inline(always)]
                || {
                    let mean = simd::sum(x) / width as f32;
                    for (y, &x) in y.iter_mut().zip(x) {
                        *y = x - mean;
                    }
                    let var = simd::dot(y, y) / width as f32;
                    let rstd = 1.0 / (var + eps).sqrt();
                    for ((y, &g), &b) in y.iter_mut().zip(g).zip(b) {
                        *y = *y * rstd * g + b;
                    }
                    (mean, rstd)
                },
            )
        })
        .collect();
    (contiguous(y, shape), stats)
}

/// The gradients of x, gamma and beta given `dy` (contiguous, x's shape).
fn layer_norm_backward(state: &LayerNormState, dy: &FlexTensor) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let x = state.x.as_slice::<f32>().expect("kept contiguous");
    let dy = dy.as_slice::<f32>().expect("made contiguous");
    let g = state.gamma.as_slice::<f32>().expect("kept contiguous");
    let width = g.len();
    let mut dx = vec![0.0f32; x.len()];
    let chunk = ROWS_PER_TASK * width;
    // Each task's partial sums for gamma and beta, added in the tasks' order below.
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .zip(dy.par_chunks(chunk))
        .zip(state.mean.par_chunks(ROWS_PER_TASK))
        .zip(state.rstd.par_chunks(ROWS_PER_TASK))
        .map(|((((dx, x), dy), mean), rstd)| {
            simd::dispatch(
                #[inline(always)]
                || {
                    let (mut dgamma, mut dbeta) = (vec![0.0f32; width], vec![0.0f32; width]);
                    let (mut x_hat, mut d) = (vec![0.0f32; width], vec![0.0f32; width]);
                    for ((((dx, x), dy), &mean), &rstd) in dx
                        .chunks_mut(width)
                        .zip(x.chunks(width))
                        .zip(dy.chunks(width))
                        .zip(mean)
                        .zip(rstd)
                    {
                        for j in 0..width {
                            x_hat[j] = (x[j] - mean) * rstd;
                            d[j] = dy[j] * g[j];
                            dgamma[j] += dy[j] * x_hat[j];
                            dbeta[j] += dy[j];
                        }
                        let a = simd::sum(&d) / width as f32;
                        let b = simd::dot(&d, &x_hat) / width as f32;
                        for j in 0..width {
                            dx[j] = rstd * (d[j] - a - x_hat[j] * b);
                        }
                    }
                    (dgamma, dbeta)
                },
            )
        })
        .collect();
    let (mut dgamma, mut dbeta) = (vec![0.0f32; width], vec![0.0f32; width]);
    for (pg, pb) in partials {
        for j in 0..width {
            dgamma[j] += pg[j];
            dbeta[j] += pb[j];
        }
    }
    (dx, dgamma, dbeta)
}

/// `model::ops::cross_entropy` on the tape; elsewhere the logits back.
pub(crate) fn cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    targets: &[u32],
) -> Result<(Tensor<B, 1>, f64), Tensor<B, 2>> {
    if !on_tape(&logits) {
        return Err(logits);
    }
    let (loss, accuracy) = cross_entropy_on_tape(into_tape(logits), targets);
    Ok((from_tape(loss), accuracy))
}

/// What one row of logits gives: its log-sum-exp, its loss and whether its argmax is the
/// target.
struct RowLoss {
    log_sum_exp: f32,
    loss: f32,
    correct: bool,
}

/// [`RowLoss`] of `row` against `target`; `weights` is scratch space.
fn row_loss(row: &[f32], target: usize, weights: &mut Vec<f32>) -> RowLoss {
    let row_weights = exponentials(row, 1.0, weights);
    let log_sum_exp = row_weights.max + row_weights.total.ln();
    RowLoss {
        log_sum_exp,
        loss: log_sum_exp - row[target],
        correct: row_weights.argmax == target,
    }
}

/// A row's largest value, where it is, and the total of its [`exponentials`].
pub(crate) struct RowExponentials {
    /// The index of the largest value (the first, on ties).
    pub(crate) argmax: usize,
    /// The largest value.
    pub(crate) max: f32,
    /// Σ `weights`.
    pub(crate) total: f32,
}

/// `weights` ← `exp((x − max) · scale)` for every `x` of `row` (softmax's unnormalised
/// weights at temperature 1 / `scale`), in two sweeps: the maximum, then the weights.
pub(crate) fn exponentials(row: &[f32], scale: f32, weights: &mut Vec<f32>) -> RowExponentials {
    simd::dispatch(
        #[inline(always)]
        || {
            let max = simd::max(row);
            let argmax = row.iter().position(|&x| x == max).unwrap_or(0);
            weights.clear();
            weights.extend(row.iter().map(|&x| exp((x - max) * scale)));
            RowExponentials {
                argmax,
                max,
                total: simd::sum(weights),
            }
        },
    )
}

/// The backward step of [`cross_entropy`]: it keeps the logits, each row's log-sum-exp and
/// the targets.
#[derive(Debug)]
struct CrossEntropyBackward;

impl Backward<Flex, 1> for CrossEntropyBackward {
    type State = (FlexTensor, Vec<f32>, Vec<u32>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (logits, log_sum_exp, targets) = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |dl| {
            let dl = dl.to_contiguous();
            let scale = dl.as_slice::<f32>().expect("a contiguous f32 scalar")[0]
                / targets.len().max(1) as f32;
            cross_entropy_backward(&logits, &log_sum_exp, &targets, scale)
        });
    }
}

fn cross_entropy_on_tape(logits: FloatTensor<Tape>, targets: &[u32]) -> (FloatTensor<Tape>, f64) {
    let x = logits.primitive.to_contiguous();
    let width = x.layout().shape()[1];
    let rows: Vec<RowLoss> = x
        .as_slice::<f32>()
        .expect("made contiguous above")
        .par_chunks(width)
        .zip(targets.par_iter())
        .map_init(Vec::new, |weights, (row, &t)| {
            row_loss(row, t as usize, weights)
        })
        .collect();
    let n = rows.len().max(1);
    let loss = rows.iter().map(|r| f64::from(r.loss)).sum::<f64>() / n as f64;
    let accuracy = rows.iter().filter(|r| r.correct).count() as f64 / n as f64;
    let loss = contiguous(vec![loss as f32], [1].into());
    let output = match CrossEntropyBackward
        .prepare::<NoCheckpointing>([logits.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let log_sum_exp = rows.iter().map(|r| r.log_sum_exp).collect();
            prep.finish((x, log_sum_exp, targets.to_vec()), loss)
        }
        OpsKind::UnTracked(prep) => prep.finish(loss),
    };
    (output, accuracy)
}

/// `(softmax(x) − onehot(t)) · scale` per row.
fn cross_entropy_backward(
    logits: &FlexTensor,
    log_sum_exp: &[f32],
    targets: &[u32],
    scale: f32,
) -> FlexTensor {
    let shape = logits.layout().shape().clone();
    let width = shape[1];
    let x = logits.as_slice::<f32>().expect("kept contiguous");
    let mut dx = vec![0.0f32; x.len()];
    dx.par_chunks_mut(width)
        .zip(x.par_chunks(width))
        .zip(log_sum_exp.par_iter().zip(targets.par_iter()))
        .for_each(|((dx, x), (&lse, &t))| {
            simd::dispatch(
                #[inline(always)]
                || {
                    for (dx, &x) in dx.iter_mut().zip(x) {
                        *dx = exp(x - lse) * scale;
                    }
                },
            );
            dx[t as usize] -= scale;
        });
    contiguous(dx, shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::{
        attention_softmax, composed, cross_entropy, dropout, gelu, layer_norm,
    };
    use burn::tensor::{activation, Distribution, TensorData};

    type Inner = Flex;

    /// Values and input gradients of `f` on the tape (the kernels) and by burn's composed
    /// operations on the same data (the reference), for the gradient of `Σ w ⊙ f(x)`.
    fn both<const D: usize>(
        shape: [usize; D],
        f: impl Fn(Tensor<Tape, D>) -> Tensor<Tape, D>,
        reference: impl Fn(Tensor<Tape, D>) -> Tensor<Tape, D>,
    ) -> [(Vec<f32>, Vec<f32>); 2] {
        let device = Default::default();
        let x = Tensor::<Inner, D>::random(shape, Distribution::Normal(0.0, 3.0), &device);
        let w = Tensor::<Inner, D>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        [
            &f as &dyn Fn(Tensor<Tape, D>) -> Tensor<Tape, D>,
            &reference,
        ]
        .map(|g| {
            let x = Tensor::<Tape, D>::from_inner(x.clone()).require_grad();
            assert!(on_tape(&x), "the kernels are taken on the tape");
            let y = g(x.clone());
            let grads = (y.clone() * Tensor::from_inner(w.clone())).sum().backward();
            let dx = x.grad(&grads).expect("x takes part");
            (values(y.inner()), values(dx))
        })
    }

    fn values<const D: usize>(t: Tensor<Inner, D>) -> Vec<f32> {
        t.into_data().iter::<f32>().collect()
    }

    fn assert_close(actual: &[f32], expected: &[f32], tolerance: f32) {
        assert_eq!(actual.len(), expected.len());
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert!(
                (a - e).abs() <= tolerance * (1.0 + e.abs()),
                "element {i}: {a} against {e}"
            );
        }
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_exact_value() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 175.3 * f64::from(i) / 200_000.0;
            let (actual, exact) = (f64::from(exp(x as f32)), (x as f32 as f64).exp());
            worst = worst.max((actual - exact).abs() / exact);
        }
        assert!(
            worst < 2.0 * f64::from(f32::EPSILON),
            "worst relative error {worst:e}"
        );
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-10_000.0), 0.0, "no subnormal weights");
        assert!(exp(-87.0).is_normal());
        assert!(exp(f32::NAN).is_nan(), "a NaN stays visible");
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn erf_is_within_6e_7_of_libms() {
        let xs: Vec<f32> = (0..=100_000)
            .map(|i| -6.0 + 12.0 * i as f32 / 100_000.0)
            .collect();
        let exact =
            values(Tensor::<Inner, 1>::from_floats(xs.as_slice(), &Default::default()).erf());
        let worst = xs
            .iter()
            .zip(&exact)
            .map(|(&x, &e)| (erf(x) - e).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 6e-7, "worst absolute error {worst:e}");
    }

    #[test]
    fn the_fused_gelu_matches_burns_and_its_gradient() {
        // Within what erf's 6e-7 allows (x and its derivative scale it by at most ~|x|).
        let [(y, dx), (y_ref, dx_ref)] = both([7, 33, 65], gelu, activation::gelu);
        assert_close(&y, &y_ref, 2e-6);
        assert_close(&dx, &dx_ref, 2e-6);
        assert!(
            dx.iter().any(|&g| g.abs() > 1e-3),
            "a gradient that is not all zero"
        );
    }

    #[test]
    fn the_fused_dropout_is_bit_for_bit_the_composed_one_and_so_is_its_gradient() {
        let shape = [5, 17, 33];
        let drop: Vec<bool> = (0..5 * 17 * 33).map(|i| (i * 7919) % 10 == 3).collect();
        let scale = (1.0 / (1.0 - 0.1)) as f32;
        let [(y, dx), (y_ref, dx_ref)] = both(
            shape,
            |x| dropout(x, drop.clone(), scale),
            |x| composed::dropout(x, drop.clone(), scale),
        );
        assert_eq!(y, y_ref);
        assert_eq!(dx, dx_ref);
        let zeros = y.iter().filter(|&&v| v == 0.0).count();
        assert_eq!(
            zeros,
            drop.iter().filter(|&&d| d).count(),
            "dropped exactly the mask"
        );
    }

    /// The fused attention softmax of random scores of `shape` under `bias`, checked against
    /// the composed one (values and gradients); its values.
    fn softmax_against_composed(shape: [usize; 4], scale: f64, bias: Tensor<Inner, 4>) -> Vec<f32> {
        let bias = Tensor::<Tape, 4>::from_inner(bias);
        let [(y, dx), (y_ref, dx_ref)] = both(
            shape,
            |x| attention_softmax(x, scale, bias.clone()),
            |x| composed::attention_softmax(x, scale, bias.clone()),
        );
        assert_close(&y, &y_ref, 1e-6);
        assert_close(&dx, &dx_ref, 1e-5);
        assert!(
            dx.iter().any(|&g| g.abs() > 1e-3),
            "a gradient that is not all zero"
        );
        y
    }

    #[test]
    fn the_attention_softmax_matches_the_composed_one_and_its_gradient() {
        let device = Default::default();
        // Padding bias of [b, 1, 1, s]: the last 40 keys of the second example are padding.
        let (b, n, s) = (3, 2, 130);
        let mut padding = vec![0.0f32; b * s];
        padding[s + 90..2 * s].fill(-10000.0);
        let bias = Tensor::<Inner, 4>::from_data(TensorData::new(padding, [b, 1, 1, s]), &device);
        let y = softmax_against_composed([b, n, s, s], 0.125, bias);
        // Padding keys get no weight in the second example; the first example has none.
        assert!(y[(n * s) * s + 95] < 1e-30 && y[95] > 1e-30);
    }

    #[test]
    fn the_attention_softmax_takes_one_bias_row_per_query() {
        let device = Default::default();
        // Two sequences packed in each row of 7: tokens 0..3 and 3..7 see only their own.
        let (b, n, s) = (2, 3, 7);
        let sequence = |i: usize| usize::from(i >= 3);
        let bias: Vec<f32> = (0..b * s * s)
            .map(|i| {
                let (q, k) = ((i / s) % s, i % s);
                if sequence(q) == sequence(k) {
                    0.0
                } else {
                    -10000.0
                }
            })
            .collect();
        let bias = Tensor::<Inner, 4>::from_data(TensorData::new(bias, [b, 1, s, s]), &device);
        let y = softmax_against_composed([b, n, s, s], 0.5, bias);
        // Query 1 of the second example's last head: weight on keys 0..3 only, summing to 1.
        let row = &y[((b * n - 1) * s + 1) * s..][..s];
        assert!(row[..3].iter().all(|&p| p > 1e-30) && row[3..].iter().all(|&p| p == 0.0));
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn the_attention_softmax_takes_a_transposed_input() {
        let bias = Tensor::<Tape, 4>::zeros([4, 1, 1, 9], &Default::default());
        let [(y, dx), (y_ref, dx_ref)] = both(
            [4, 5, 9, 9],
            |x| attention_softmax(x.swap_dims(2, 3), 0.5, bias.clone()).swap_dims(2, 3),
            |x| composed::attention_softmax(x.swap_dims(2, 3), 0.5, bias.clone()).swap_dims(2, 3),
        );
        assert_close(&y, &y_ref, 1e-6);
        assert_close(&dx, &dx_ref, 1e-5);
    }

    #[test]
    fn the_fused_layer_norm_matches_the_composed_one_and_its_gradients() {
        let device = Default::default();
        let (rows, width) = (150, 48);
        let x = Tensor::<Inner, 3>::random(
            [3, rows / 3, width],
            Distribution::Normal(1.0, 2.0),
            &device,
        );
        let w = Tensor::<Inner, 3>::random(
            [3, rows / 3, width],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let gamma = Tensor::<Inner, 1>::random([width], Distribution::Normal(1.0, 0.3), &device);
        let beta = Tensor::<Inner, 1>::random([width], Distribution::Normal(0.0, 0.3), &device);
        let run = |fused: bool| {
            let x = Tensor::<Tape, 3>::from_inner(x.clone()).require_grad();
            let g = Tensor::<Tape, 1>::from_inner(gamma.clone()).require_grad();
            let b = Tensor::<Tape, 1>::from_inner(beta.clone()).require_grad();
            let y = if fused {
                layer_norm(x.clone(), g.clone(), b.clone(), 1e-12)
            } else {
                composed::layer_norm(x.clone(), g.clone(), b.clone(), 1e-12)
            };
            let grads = (y.clone() * Tensor::from_inner(w.clone())).sum().backward();
            [
                values(y.inner()),
                values(x.grad(&grads).unwrap()),
                values(g.grad(&grads).unwrap()),
                values(b.grad(&grads).unwrap()),
            ]
        };
        let (fused, reference) = (run(true), run(false));
        for (name, (a, e)) in ["y", "dx", "dgamma", "dbeta"]
            .iter()
            .zip(fused.iter().zip(&reference))
        {
            assert!(a.iter().any(|v| v.abs() > 1e-3), "{name} is not all zero");
            for (i, (a, e)) in a.iter().zip(e).enumerate() {
                assert!(
                    (a - e).abs() <= 2e-5 * (1.0 + e.abs()),
                    "{name}[{i}]: {a} against {e}"
                );
            }
        }
    }

    #[test]
    fn the_fused_cross_entropy_matches_log_softmax_and_gather() {
        let device = Default::default();
        let (n, v) = (37, 1000);
        let x = Tensor::<Inner, 2>::random([n, v], Distribution::Normal(0.0, 4.0), &device);
        let targets: Vec<u32> = (0..n as u32).map(|i| (i * 7919) % v as u32).collect();
        // One row whose target is its argmax, so the accuracy is not trivially 0.
        let mut data: Vec<f32> = values(x);
        data[3 * v + targets[3] as usize] = 100.0;
        let x = Tensor::<Inner, 2>::from_data(TensorData::new(data, [n, v]), &device);
        let run = |fused: bool| {
            let x = Tensor::<Tape, 2>::from_inner(x.clone()).require_grad();
            let (loss, accuracy) = if fused {
                cross_entropy(x.clone(), &targets)
            } else {
                composed::cross_entropy(x.clone(), &targets)
            };
            let grads = (loss.clone() * 3.0).backward();
            (
                values(loss.inner()),
                values(x.grad(&grads).unwrap()),
                accuracy,
            )
        };
        let (loss, dx, accuracy) = run(true);
        let (loss_ref, dx_ref, accuracy_ref) = run(false);
        assert_close(&loss, &loss_ref, 1e-6);
        assert_close(&dx, &dx_ref, 1e-6);
        assert_eq!(accuracy, accuracy_ref);
        assert!(accuracy > 0.0);
        assert!(
            loss[0] > 1.0,
            "random logits give a loss well above 0: {}",
            loss[0]
        );
    }

    #[test]
    fn inference_on_flex_takes_the_forward_kernels() {
        let device = Default::default();
        let x = Tensor::<Inner, 3>::random([3, 5, 40], Distribution::Normal(0.0, 2.0), &device);
        let tape = Tensor::<Tape, 3>::from_inner(x.clone());
        assert!(is_flex_f32(&x) && !is_flex_f32(&tape));
        let gamma = Tensor::<Inner, 1>::random([40], Distribution::Normal(1.0, 0.1), &device);
        let beta = Tensor::<Inner, 1>::random([40], Distribution::Normal(0.0, 0.1), &device);
        let normed = layer_norm(x.clone(), gamma.clone(), beta.clone(), 1e-12);
        let normed_on_tape = layer_norm(
            tape.clone(),
            Tensor::from_inner(gamma.clone()),
            Tensor::from_inner(beta.clone()),
            1e-12,
        );
        assert_eq!(values(normed.clone()), values(normed_on_tape.inner()));
        let reference = composed::layer_norm(x.clone(), gamma, beta, 1e-12);
        assert_close(&values(normed), &values(reference), 1e-5);
        assert_eq!(values(gelu(x.clone())), values(gelu(tape).inner()));
        assert_close(
            &values(gelu(x.clone())),
            &values(activation::gelu(x.clone())),
            2e-6,
        );
        let scores = x.reshape([3, 1, 5, 40]).slice([0..3, 0..1, 0..5, 0..5]);
        let bias = Tensor::<Inner, 4>::zeros([3, 1, 1, 5], &device);
        let probs = attention_softmax(scores.clone(), 0.5, bias.clone());
        let reference = composed::attention_softmax(scores, 0.5, bias);
        assert_close(&values(probs), &values(reference), 1e-6);
    }

    #[test]
    fn other_backends_get_the_composed_operations() {
        // Without autodiff the kernels are not taken; the result is burn's.
        let device = Default::default();
        let x = Tensor::<Inner, 2>::random([4, 6], Distribution::Normal(0.0, 1.0), &device);
        assert!(!on_tape(&x));
        let (loss, _) = cross_entropy(x.clone(), &[0, 1, 2, 3]);
        let (loss_ref, _) = composed::cross_entropy(x, &[0, 1, 2, 3]);
        assert_eq!(values(loss), values(loss_ref));
    }
}
