//! The matrix products of the `flex` backend against a float64 reference, at the shapes the
//! models use. burn-flex calls the `gemm` crate, which picks its kernels at run time from the
//! CPU's features (AVX-512 here, AVX2/FMA elsewhere; `stages/Cargo.toml` turns the AVX-512 ones
//! on): whichever it picks on the machine running this, the products must be right, with
//! transposed (strided) operands as autodiff's backward passes give them.

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};

type B = Flex;

/// A `[rows, cols]` standard-normal matrix, stored transposed when `transposed` (so the
/// product reads it with strides, as a backward pass does).
fn operand(rows: usize, cols: usize, transposed: bool) -> Tensor<B, 2> {
    let device = Default::default();
    let normal = Distribution::Normal(0.0, 1.0);
    if transposed {
        Tensor::<B, 2>::random([cols, rows], normal, &device).swap_dims(0, 1)
    } else {
        Tensor::random([rows, cols], normal, &device)
    }
}

fn values(t: Tensor<B, 2>) -> Vec<f32> {
    t.into_data().to_vec().unwrap()
}

/// The largest difference from the float64 product, in units of √k (the scale of a sum of k
/// products of standard normals).
fn error(a: &[f32], b: &[f32], c: &[f32], (m, k, n): (usize, usize, usize)) -> f64 {
    let mut worst = 0f64;
    for i in 0..m {
        for j in 0..n {
            let exact: f64 = (0..k)
                .map(|l| f64::from(a[i * k + l]) * f64::from(b[l * n + j]))
                .sum();
            worst = worst.max((f64::from(c[i * n + j]) - exact).abs() / (k as f64).sqrt());
        }
    }
    worst
}

#[test]
fn matrix_products_match_a_float64_reference_at_the_models_shapes() {
    // (m, k, n): odd sizes (kernel edges), fine-tuning's dense layers (batch 32 × ~25 tokens,
    // h 128 and 256, FFN 4h), attention's [s, d] × [d, s], a vocabulary projection.
    let shapes = [
        (1, 1, 1),
        (7, 13, 5),
        (33, 257, 65),
        (800, 128, 512),
        (800, 512, 128),
        (128, 800, 256),
        (128, 64, 128),
        (96, 128, 2048),
    ];
    for (m, k, n) in shapes {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let (a, b) = (operand(m, k, ta), operand(k, n, tb));
            let c = a.clone().matmul(b.clone());
            let err = error(&values(a), &values(b), &values(c), (m, k, n));
            // fp32 accumulation: measured ≤ 5e-6 with both kernel families; a wrong kernel
            // (a lost tile, a misread stride) is off by O(1).
            assert!(
                err < 1e-4,
                "{m}×{k}×{n} (transposed a: {ta}, b: {tb}): error {err:.2e} × √k"
            );
        }
    }
}

#[test]
fn batched_products_match_the_same_products_one_by_one() {
    // Attention's [batch, heads, s, d] × [batch, heads, d, s], with the key side transposed.
    let device = Default::default();
    let normal = Distribution::Normal(0.0, 1.0);
    let q = Tensor::<B, 4>::random([3, 2, 37, 64], normal, &device);
    let k = Tensor::<B, 4>::random([3, 2, 37, 64], normal, &device);
    let scores = q.clone().matmul(k.clone().swap_dims(2, 3));
    for b in 0..3 {
        for h in 0..2 {
            let qi: Tensor<B, 2> = q.clone().slice([b..b + 1, h..h + 1]).reshape([37, 64]);
            let ki: Tensor<B, 2> = k.clone().slice([b..b + 1, h..h + 1]).reshape([37, 64]);
            let one = values(qi.clone().matmul(ki.clone().swap_dims(0, 1)));
            let batched = values(scores.clone().slice([b..b + 1, h..h + 1]).reshape([37, 37]));
            let kt = values(ki.swap_dims(0, 1));
            let err = error(&values(qi), &kt, &batched, (37, 64, 37));
            assert!(err < 1e-4, "batch {b}, head {h}: error {err:.2e} × √k");
            let largest = one
                .iter()
                .zip(&batched)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max);
            assert!(largest < 1e-4, "batch {b}, head {h}: {largest}");
        }
    }
}
