//! The operations the networks are built from, as the paper writes them: the attention
//! softmax, the dense layers' `x · W + b`, attention's split into heads and merge back, GELU,
//! LayerNorm, dropout with a drawn mask, and the masked-LM cross-entropy.
//!
//! Each is burn's tensor operations ([`composed`]): what every backend runs — `cuda`, `wgpu`,
//! `ndarray` — except `flex`, the CPU training backend, whose fused kernels
//! (`crate::cpu_kernels`) take f32 tensors first and agree with these to rounding.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::cpu_kernels::{fused, head_split, linear as dense};

/// Attention probabilities: the softmax over the last dimension of `scores` `[b, n, s, s]` ×
/// `scale` + `bias` (the attention mask, a constant: no gradient flows to it), either
/// `[b, 1, 1, s]` (one row of key biases per example: padding) or `[b, 1, s, s]` (one row per
/// query: sequences packed side by side in a row see only themselves).
pub fn attention_softmax<B: Backend>(
    scores: Tensor<B, 4>,
    scale: f64,
    bias: Tensor<B, 4>,
) -> Tensor<B, 4> {
    fused::attention_softmax(scores, scale, bias)
        .unwrap_or_else(|(scores, bias)| composed::attention_softmax(scores, scale, bias))
}

/// `x · weight + bias`: `x` `[rows, in]`, `weight` `[in, out]` (any strides, e.g. a
/// transposed embedding table), `bias` `[out]`.
pub fn linear<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Tensor<B, 1>,
) -> Tensor<B, 2> {
    dense::linear(x, weight, bias)
        .unwrap_or_else(|(x, weight, bias)| composed::linear(x, weight, bias))
}

/// `[b, s, n·d]` → `[b, n, s, d]`: the hidden states as `heads` heads.
pub fn split_heads<B: Backend>(x: Tensor<B, 3>, heads: usize) -> Tensor<B, 4> {
    head_split::split_heads(x, heads).unwrap_or_else(|x| composed::split_heads(x, heads))
}

/// `[b, n, s, d]` → `[b, s, n·d]`: the heads side by side again.
pub fn merge_heads<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
    head_split::merge_heads(x).unwrap_or_else(composed::merge_heads)
}

/// The exact (erf) GELU, `x · Φ(x)`.
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    fused::gelu(x).unwrap_or_else(composed::gelu)
}

/// LayerNorm over the last dimension of `x`: `(x − mean) / √(var + eps) · gamma + beta`, with
/// the biased variance.
pub fn layer_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    eps: f64,
) -> Tensor<B, D> {
    fused::layer_norm(x, gamma, beta, eps)
        .unwrap_or_else(|(x, gamma, beta)| composed::layer_norm(x, gamma, beta, eps))
}

/// Dropout with a mask already drawn: 0 where `drop` is true, `x · scale` elsewhere; the
/// gradient passes through the same mask and scale. `drop` is in `x`'s row-major order.
pub fn dropout<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    drop: Vec<bool>,
    scale: f32,
) -> Tensor<B, D> {
    fused::dropout(x, drop, scale).unwrap_or_else(|(x, drop)| composed::dropout(x, drop, scale))
}

/// Mean cross-entropy of `logits` `[n, V]` against `targets` (one id per row), and the share
/// of rows whose largest logit is the target.
pub fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, targets: &[u32]) -> (Tensor<B, 1>, f64) {
    let [n, _] = logits.dims();
    assert_eq!(n, targets.len(), "one target per row of logits");
    fused::cross_entropy(logits, targets)
        .unwrap_or_else(|logits| composed::cross_entropy(logits, targets))
}

/// The operations by burn's tensor operations alone: what every backend but `flex` runs.
pub mod composed {
    use burn::tensor::activation::{self, log_softmax, softmax};
    use burn::tensor::backend::Backend;
    use burn::tensor::{Bool, Int, Tensor, TensorData};

    /// [`super::attention_softmax`].
    pub fn attention_softmax<B: Backend>(
        scores: Tensor<B, 4>,
        scale: f64,
        bias: Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        softmax(scores * scale + bias, 3)
    }

    /// [`super::linear`].
    pub fn linear<B: Backend>(
        x: Tensor<B, 2>,
        weight: Tensor<B, 2>,
        bias: Tensor<B, 1>,
    ) -> Tensor<B, 2> {
        x.matmul(weight) + bias.unsqueeze()
    }

    /// [`super::split_heads`]: a reshape and a swap of axes 1 and 2.
    pub fn split_heads<B: Backend>(x: Tensor<B, 3>, heads: usize) -> Tensor<B, 4> {
        let [b, s, h] = x.dims();
        x.reshape([b, s, heads, h / heads]).swap_dims(1, 2)
    }

    /// [`super::merge_heads`]: the swap back and a reshape.
    pub fn merge_heads<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 3> {
        let [b, n, s, d] = x.dims();
        x.swap_dims(1, 2).reshape([b, s, n * d])
    }

    /// [`super::gelu`].
    pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
        activation::gelu(x)
    }

    /// [`super::layer_norm`].
    pub fn layer_norm<B: Backend, const D: usize>(
        x: Tensor<B, D>,
        gamma: Tensor<B, 1>,
        beta: Tensor<B, 1>,
        eps: f64,
    ) -> Tensor<B, D> {
        let (var, mean) = x.clone().var_mean_bias(D - 1);
        let normed = (x - mean) / (var + eps).sqrt();
        normed * gamma.unsqueeze() + beta.unsqueeze()
    }

    /// [`super::dropout`].
    pub fn dropout<B: Backend, const D: usize>(
        x: Tensor<B, D>,
        drop: Vec<bool>,
        scale: f32,
    ) -> Tensor<B, D> {
        let mask = Tensor::<B, D, Bool>::from_data(TensorData::new(drop, x.dims()), &x.device());
        x.mask_fill(mask, 0.0) * scale
    }

    /// [`super::cross_entropy`].
    pub fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, targets: &[u32]) -> (Tensor<B, 1>, f64) {
        let n = targets.len();
        let device = logits.device();
        let predicted = logits.clone().detach().argmax(1).into_data();
        let correct = predicted
            .iter::<i64>()
            .zip(targets)
            .filter(|(p, &t)| *p == i64::from(t))
            .count();
        let ids: Vec<i64> = targets.iter().map(|&t| i64::from(t)).collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [n, 1]), &device);
        let picked = log_softmax(logits, 1).gather(1, ids); // [n, 1]
        (
            -picked.mean().reshape([1]),
            correct as f64 / n.max(1) as f64,
        )
    }
}
