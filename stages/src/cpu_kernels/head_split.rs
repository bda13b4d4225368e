//! Moving attention's activations between the hidden layout `[b, s, h]` and the per-head
//! layout `[b, n, s, d]` (`h = n · d`), without burn's generic strided copies.
//!
//! Composed from burn's operations, the split is a reshape and a swap of axes 1 and 2 — a free
//! view forward, but its backward makes the swapped gradient contiguous one element at a time
//! (burn-flex's strided iterator: ~5% of an ELECTRA-Small step); the merge is the same the
//! other way round. On `flex` with autodiff each direction here is a view where a view
//! suffices (the products take strided operands) and a copy of `d`-long runs where memory
//! must be rearranged. Data only moves, so the values are bit for bit burn's.

use burn::backend::Flex;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{FloatTensor, FloatTensorOps};
use burn::tensor::{Shape, Tensor};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{unary, Backward, Ops, OpsKind};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::{contiguous, from_flex, from_tape, into_flex, into_tape, is_flex_f32, on_tape, Tape};

/// `model::ops::split_heads` on the tape; elsewhere `x` back.
pub(crate) fn split_heads<B: Backend>(
    x: Tensor<B, 3>,
    heads: usize,
) -> Result<Tensor<B, 4>, Tensor<B, 3>> {
    if !on_tape(&x) {
        return Err(x);
    }
    let [b, s, h] = x.dims();
    let shape = Shape::new([b, s, heads, h / heads]);
    Ok(from_tape(split_on_tape(into_tape(x), shape)))
}

/// `model::ops::merge_heads` on flex; elsewhere `x` back.
pub(crate) fn merge_heads<B: Backend>(x: Tensor<B, 4>) -> Result<Tensor<B, 3>, Tensor<B, 4>> {
    if is_flex_f32(&x) {
        return Ok(from_flex(merged(&into_flex(x))));
    }
    if !on_tape(&x) {
        return Err(x);
    }
    Ok(from_tape(merge_on_tape(into_tape(x))))
}

/// `x` `[b, s, n·d]` seen as `[b, n, s, d]` (`shape` is `[b, s, n, d]`): a view, no copy.
fn split_view(x: FlexTensor, shape: Shape) -> FlexTensor {
    Flex::float_swap_dims(Flex::float_reshape(x, shape), 1, 2)
}

/// `x` `[b, n, s, d]` as a contiguous `[b, s, n·d]`: the heads side by side, copied.
fn merged(x: &FlexTensor) -> FlexTensor {
    let [b, n, s, d] = dims4(x);
    Flex::float_reshape(swapped_copy(x), Shape::new([b, s, n * d]))
}

/// A contiguous copy of the 4-D `x` `[a, p, q, d]` with axes 1 and 2 swapped: `[a, q, p, d]`.
/// Any strides; runs of `d` are copied whole where they are contiguous.
fn swapped_copy(x: &FlexTensor) -> FlexTensor {
    let layout = x.layout();
    let [a, p, q, d] = dims4(x);
    let strides = layout.strides();
    if strides.iter().any(|&stride| stride < 0) {
        return swapped_copy(&x.to_contiguous());
    }
    let [sa, sp, sq, sd] = [0, 1, 2, 3].map(|axis| strides[axis] as usize);
    let (values, start) = (x.storage::<f32>(), layout.start_offset());
    let mut out = vec![0.0f32; a * q * p * d];
    if !out.is_empty() {
        out.par_chunks_mut(q * p * d)
            .enumerate()
            .for_each(|(ai, out)| {
                for (qi, out) in out.chunks_mut(p * d).enumerate() {
                    for (pi, out) in out.chunks_mut(d).enumerate() {
                        let first = start + ai * sa + pi * sp + qi * sq;
                        if sd == 1 {
                            out.copy_from_slice(&values[first..first + d]);
                        } else {
                            for (i, out) in out.iter_mut().enumerate() {
                                *out = values[first + i * sd];
                            }
                        }
                    }
                }
            });
    }
    contiguous(out, Shape::new([a, q, p, d]))
}

/// The backward step of [`split_heads`]: the gradient `[b, n, s, d]` copied back to
/// `[b, s, n·d]`.
#[derive(Debug)]
struct SplitBackward;

impl Backward<Flex, 1> for SplitBackward {
    type State = ();

    fn backward(self, ops: Ops<(), 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        unary::<Flex, _>(ops.parents, ops.node, grads, |dy| merged(&dy));
    }
}

fn split_on_tape(x: FloatTensor<Tape>, shape: Shape) -> FloatTensor<Tape> {
    let y = split_view(x.primitive, shape);
    SplitBackward
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateless(y)
}

/// The backward step of [`merge_heads`]: the gradient `[b, s, n·d]` seen as `[b, n, s, d]`
/// (a view: the products that made the heads take strided operands).
#[derive(Debug)]
struct MergeBackward;

impl Backward<Flex, 1> for MergeBackward {
    type State = [usize; 4];

    fn backward(self, ops: Ops<[usize; 4], 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [b, n, s, d] = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |dy| {
            split_view(dy, Shape::new([b, s, n, d]))
        });
    }
}

fn merge_on_tape(x: FloatTensor<Tape>) -> FloatTensor<Tape> {
    let dims = dims4(&x.primitive);
    let y = merged(&x.primitive);
    match MergeBackward
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(dims, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// The dimensions of a 4-D tensor.
fn dims4(x: &FlexTensor) -> [usize; 4] {
    x.layout().shape().dims::<4>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::{composed, merge_heads, split_heads};
    use burn::tensor::Distribution;

    fn values<const D: usize>(t: Tensor<Flex, D>) -> Vec<f32> {
        t.into_data().iter::<f32>().collect()
    }

    /// The split heads, merged back, and the gradient of `Σ g ⊙ merge(f(split(x)))` where
    /// `f` multiplies by a weight and swaps the last two axes twice (so the gradient reaching
    /// the split is strided, as the key's is under attention), fused or composed.
    fn run(
        fused: bool,
        x: &Tensor<Flex, 3>,
        w: &Tensor<Flex, 4>,
        g: &Tensor<Flex, 3>,
    ) -> [Vec<f32>; 3] {
        let x = Tensor::<Tape, 3>::from_inner(x.clone()).require_grad();
        let heads = if fused {
            split_heads(x.clone(), 4)
        } else {
            composed::split_heads(x.clone(), 4)
        };
        let mixed = (heads.clone().swap_dims(2, 3) * Tensor::from_inner(w.clone())).swap_dims(2, 3);
        let merged = if fused {
            merge_heads(mixed)
        } else {
            composed::merge_heads(mixed)
        };
        let grads = (merged.clone() * Tensor::from_inner(g.clone()))
            .sum()
            .backward();
        [
            values(heads.inner()),
            values(merged.inner()),
            values(x.grad(&grads).expect("x takes part")),
        ]
    }

    #[test]
    fn split_and_merge_move_values_and_gradients_as_burns_views_do() {
        let device = Default::default();
        let x = Tensor::<Flex, 3>::random([2, 5, 12], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<Flex, 4>::random([2, 4, 3, 5], Distribution::Normal(0.0, 1.0), &device);
        let g = Tensor::<Flex, 3>::random([2, 5, 12], Distribution::Normal(0.0, 1.0), &device);
        assert_eq!(run(true, &x, &w, &g), run(false, &x, &w, &g), "bit for bit");
        let plain = values(merge_heads(split_heads(x.clone(), 4)));
        assert_eq!(plain, values(x), "inference: merge undoes split");
    }
}
