//! The dense layers' affine map `x · W + b` as one operation of the CPU training backend.
//!
//! Under autodiff burn makes it two: a matrix product, whose output buffer burn-flex
//! allocates as zeroed bytes and then copies once more to align it, and a broadcast bias
//! addition, a third pass over the output, whose backward sums the gradient over rows with
//! burn's generic reduction. Here, on `flex` with autodiff (and on plain `flex`, for
//! inference), the output starts as the bias rows and the product is accumulated onto them by
//! the `gemm` crate in one call; the backward step makes `dx = dy · Wᵀ` and `dW = xᵀ · dy` as
//! products over strided views (no transposed copies) and `db` as column sums in a fixed
//! order. Every other backend gets burn's composed operations (`model::ops::composed::linear`;
//! tests below compare them).

use burn::backend::Flex;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Shape, Tensor};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::simd;
use super::{contiguous, from_flex, from_tape, into_flex, into_tape, is_flex_f32, on_tape, Tape};

/// Products with at least this many multiply-adds run on every thread of the pool (the
/// threshold burn-flex uses).
const PARALLEL_WORK: usize = 192 * 192 * 192;

/// Columns per parallel task of the bias gradient's column sums.
const COLUMNS_PER_TASK: usize = 256;

/// `model::ops::linear` on flex; elsewhere the operands back.
#[allow(clippy::type_complexity)]
pub(crate) fn linear<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Tensor<B, 1>,
) -> Result<Tensor<B, 2>, (Tensor<B, 2>, Tensor<B, 2>, Tensor<B, 1>)> {
    if is_flex_f32(&x) && is_flex_f32(&weight) && is_flex_f32(&bias) {
        let y = linear_forward(&into_flex(x), &into_flex(weight), &into_flex(bias));
        return Ok(from_flex(y));
    }
    if !(on_tape(&x) && on_tape(&weight) && on_tape(&bias)) {
        return Err((x, weight, bias));
    }
    Ok(from_tape(linear_on_tape(
        into_tape(x),
        into_tape(weight),
        into_tape(bias),
    )))
}

/// A 2-D f32 matrix inside a flex tensor's storage: its shape and strides in elements.
#[derive(Clone, Copy)]
struct Matrix<'a> {
    storage: &'a [f32],
    start: usize,
    rows: usize,
    columns: usize,
    row_stride: isize,
    column_stride: isize,
}

impl<'a> Matrix<'a> {
    /// The matrix `tensor` holds, which must be 2-D with non-negative strides (what
    /// [`strided`] makes sure of).
    fn of(tensor: &'a FlexTensor) -> Self {
        let layout = tensor.layout();
        let (shape, strides) = (layout.shape(), layout.strides());
        assert_eq!(shape.num_dims(), 2, "a linear map's operands are matrices");
        let matrix = Matrix {
            storage: tensor.storage::<f32>(),
            start: layout.start_offset(),
            rows: shape[0],
            columns: shape[1],
            row_stride: strides[0],
            column_stride: strides[1],
        };
        let last = matrix.start as isize
            + (matrix.rows as isize - 1).max(0) * matrix.row_stride
            + (matrix.columns as isize - 1).max(0) * matrix.column_stride;
        assert!(
            matrix.row_stride >= 0
                && matrix.column_stride >= 0
                && (matrix.rows * matrix.columns == 0 || (last as usize) < matrix.storage.len()),
            "a matrix view inside its storage"
        );
        matrix
    }

    /// The transposed view of the same elements.
    fn transposed(self) -> Self {
        Matrix {
            rows: self.columns,
            columns: self.rows,
            row_stride: self.column_stride,
            column_stride: self.row_stride,
            ..self
        }
    }

    /// A pointer to the first element.
    fn first(&self) -> *const f32 {
        self.storage[self.start..].as_ptr()
    }
}

/// `tensor` itself when its strides are non-negative, otherwise a contiguous copy.
fn strided(tensor: FlexTensor) -> FlexTensor {
    if tensor.layout().strides().iter().all(|&s| s >= 0) {
        tensor
    } else {
        tensor.to_contiguous()
    }
}

/// `dst ← lhs · rhs`, or `dst ← dst + lhs · rhs` where `accumulate`; `dst` is the row-major
/// `[lhs.rows, rhs.columns]` product.
fn product(dst: &mut [f32], lhs: Matrix<'_>, rhs: Matrix<'_>, accumulate: bool) {
    let (m, k, n) = (lhs.rows, lhs.columns, rhs.columns);
    assert_eq!(rhs.rows, k, "the inner dimensions of a product agree");
    assert_eq!(dst.len(), m * n, "the product's shape");
    if m * n == 0 {
        return;
    }
    let parallelism = if m * n * k >= PARALLEL_WORK {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `Matrix::of` checked that every element of both views lies inside its storage,
    // `dst` holds exactly m × n elements in row-major order, and nothing else aliases it.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.first(),
            lhs.column_stride,
            lhs.row_stride,
            rhs.first(),
            rhs.column_stride,
            rhs.row_stride,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `x · weight + bias` on flex tensors, as a new contiguous `[rows, out]` tensor.
fn linear_forward(x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor) -> FlexTensor {
    let (x, weight) = (Matrix::of(x), Matrix::of(weight));
    let bias = bias.to_contiguous();
    let bias = bias.as_slice::<f32>().expect("made contiguous");
    assert_eq!(bias.len(), weight.columns, "a bias per output");
    let mut y = Vec::with_capacity(x.rows * weight.columns);
    for _ in 0..x.rows {
        y.extend_from_slice(bias);
    }
    product(&mut y, x, weight, true);
    contiguous(y, Shape::new([x.rows, weight.columns]))
}

/// The sum of each column of the row-major `values` with `width` columns, every column
/// summed down its rows in order (so the result does not depend on the thread count).
fn column_sums(values: &[f32], width: usize) -> Vec<f32> {
    let mut sums = vec![0.0f32; width];
    sums.par_chunks_mut(COLUMNS_PER_TASK)
        .enumerate()
        .for_each(|(task, sums)| {
            let first = task * COLUMNS_PER_TASK;
            simd::dispatch(
                #[inline(always)]
                || {
                    for row in values.chunks(width) {
                        for (sum, &v) in sums.iter_mut().zip(&row[first..]) {
                            *sum += v;
                        }
                    }
                },
            )
        });
    sums
}

/// The backward step of [`linear`]: it keeps the input and the weight (their storage is
/// shared, not copied).
#[derive(Debug)]
struct LinearBackward;

impl Backward<Flex, 3> for LinearBackward {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, weight_node, bias_node] = ops.parents;
        let (x, weight) = &ops.state;
        let (x, weight) = (Matrix::of(x), Matrix::of(weight));
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let dy_matrix = Matrix::of(&dy);
        if let Some(node) = x_node {
            let mut dx = vec![0.0f32; x.rows * x.columns];
            product(&mut dx, dy_matrix, weight.transposed(), false);
            grads.register::<Flex>(node.id, contiguous(dx, Shape::new([x.rows, x.columns])));
        }
        if let Some(node) = weight_node {
            let mut dweight = vec![0.0f32; weight.rows * weight.columns];
            product(&mut dweight, x.transposed(), dy_matrix, false);
            let shape = Shape::new([weight.rows, weight.columns]);
            grads.register::<Flex>(node.id, contiguous(dweight, shape));
        }
        if let Some(node) = bias_node {
            let dy = dy.as_slice::<f32>().expect("made contiguous");
            let dbias = column_sums(dy, weight.columns);
            grads.register::<Flex>(node.id, contiguous(dbias, Shape::new([weight.columns])));
        }
    }
}

fn linear_on_tape(
    x: FloatTensor<Tape>,
    weight: FloatTensor<Tape>,
    bias: FloatTensor<Tape>,
) -> FloatTensor<Tape> {
    let (x_values, weight_values) = (strided(x.primitive), strided(weight.primitive));
    let y = linear_forward(&x_values, &weight_values, &bias.primitive);
    match LinearBackward
        .prepare::<NoCheckpointing>([x.node.clone(), weight.node.clone(), bias.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((x_values, weight_values), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::{composed, linear};
    use burn::tensor::Distribution;

    type Inner = Flex;

    fn random<const D: usize>(shape: [usize; D]) -> Tensor<Inner, D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
    }

    fn values<const D: usize>(t: Tensor<Inner, D>) -> Vec<f32> {
        t.into_data().iter::<f32>().collect()
    }

    fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
        assert_eq!(actual.len(), expected.len(), "{what}: length");
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert!(
                (a - e).abs() <= 1e-4 * (1.0 + e.abs()),
                "{what}[{i}]: {a} against {e}"
            );
        }
    }

    /// The output and the gradients of x, the weight and the bias, by the fused operation
    /// and by burn's composed ones, for the gradient of `Σ g ⊙ y`; the weight used is
    /// `[in, out]`, or the transpose of an `[out, in]` parameter where `transposed`.
    fn both(rows: usize, d_in: usize, d_out: usize, transposed: bool) -> [[Vec<f32>; 4]; 2] {
        let x = random([rows, d_in]);
        let weight = if transposed {
            random([d_out, d_in])
        } else {
            random([d_in, d_out])
        };
        let bias = random([d_out]);
        let g = random([rows, d_out]);
        [true, false].map(|fused| {
            let x = Tensor::<Tape, 2>::from_inner(x.clone()).require_grad();
            let weight = Tensor::<Tape, 2>::from_inner(weight.clone()).require_grad();
            let bias = Tensor::<Tape, 1>::from_inner(bias.clone()).require_grad();
            let w = if transposed {
                weight.clone().transpose()
            } else {
                weight.clone()
            };
            let y = if fused {
                linear(x.clone(), w, bias.clone())
            } else {
                composed::linear(x.clone(), w, bias.clone())
            };
            let grads = (y.clone() * Tensor::from_inner(g.clone())).sum().backward();
            [
                values(y.inner()),
                values(x.grad(&grads).expect("x takes part")),
                values(weight.grad(&grads).expect("the weight takes part")),
                values(bias.grad(&grads).expect("the bias takes part")),
            ]
        })
    }

    #[test]
    fn the_fused_map_and_its_gradients_are_burns() {
        // Small (one thread) and large (the pool) products, a row count that no tile
        // divides, and a bias wider than one column task.
        for (rows, d_in, d_out) in [(3, 5, 7), (333, 200, 300)] {
            for transposed in [false, true] {
                let [fused, composed] = both(rows, d_in, d_out, transposed);
                for (what, (f, c)) in ["y", "dx", "dW", "db"]
                    .iter()
                    .zip(fused.iter().zip(&composed))
                {
                    assert_close(f, c, what);
                }
            }
        }
    }

    #[test]
    fn inference_on_flex_gives_the_tapes_values() {
        let (x, weight, bias) = (random([40, 16]), random([16, 24]), random([24]));
        let plain = values(linear(x.clone(), weight.clone(), bias.clone()));
        let taped = linear(
            Tensor::<Tape, 2>::from_inner(x),
            Tensor::from_inner(weight),
            Tensor::from_inner(bias),
        );
        assert_eq!(plain, values(taped.inner()), "bit for bit");
    }

    #[test]
    fn column_sums_add_each_column_down_its_rows() {
        let width = 600;
        let values: Vec<f32> = (0..3 * width).map(|i| i as f32).collect();
        let sums = column_sums(&values, width);
        for (c, &sum) in sums.iter().enumerate() {
            assert_eq!(sum, (3 * c + 3 * width) as f32, "column {c}");
        }
    }
}
