//! Vector code for the fused kernels' row loops, the same numbers on every CPU.
//!
//! The crate is compiled for the x86-64 baseline (SSE2), and a float sum in one accumulator
//! cannot be vectorised at all (reordering it would change the result). So:
//! - [`sum`], [`dot`] and [`max`] keep [`LANES`] independent accumulators, which the compiler
//!   maps onto vector registers, and add the lanes in a fixed order at the end: a result that
//!   depends only on the input, never on the vector width;
//! - [`dispatch`] runs a loop compiled for AVX-512 (or AVX2 + FMA) where the CPU has it, found
//!   once at run time, so a binary built for any x86-64 still runs everywhere. Rust never fuses
//!   a product and a sum into an FMA on its own, so every path rounds exactly as the scalar
//!   code does.

/// Accumulators of the reductions: one AVX-512 register of f32, four SSE registers.
pub const LANES: usize = 16;

/// Σ `x`, in [`LANES`] interleaved partial sums added in order, then the tail.
#[inline(always)]
pub fn sum(x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    fold(lanes, tail.iter().copied())
}

/// Σ `a ⊙ b` (the shorter length), accumulated as [`sum`] does.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0.0f32; LANES];
    let chunks = a.chunks_exact(LANES).zip(b.chunks_exact(LANES));
    for (a, b) in chunks {
        for ((lane, &x), &y) in lanes.iter_mut().zip(a).zip(b) {
            *lane += x * y;
        }
    }
    let start = n - n % LANES;
    fold(
        lanes,
        a[start..].iter().zip(&b[start..]).map(|(x, y)| x * y),
    )
}

/// The largest value of `x` (−∞ when empty; NaNs are passed over, as `f32::max` does).
#[inline(always)]
pub fn max(x: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = if v > *lane { v } else { *lane };
        }
    }
    lanes
        .into_iter()
        .chain(tail.iter().copied())
        .fold(f32::NEG_INFINITY, |m, v| if v > m { v } else { m })
}

/// The lanes added in order, then `tail`.
#[inline(always)]
fn fold(lanes: [f32; LANES], tail: impl Iterator<Item = f32>) -> f32 {
    let mut total = 0.0f32;
    for lane in lanes {
        total += lane;
    }
    for v in tail {
        total += v;
    }
    total
}

/// Runs `f` compiled for the widest vector instructions this CPU has (AVX-512, else AVX2 with
/// FMA, else the baseline). `f` and what it calls must be inlined into it (closures and
/// `#[inline(always)]` helpers are) to be compiled that way.
#[inline(always)]
pub fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        match level() {
            // SAFETY: `level` found the features on this CPU.
            Level::Avx512 => return unsafe { with_avx512(f) },
            Level::Avx2 => return unsafe { with_avx2(f) },
            Level::Baseline => {}
        }
    }
    f()
}

/// What the CPU offers, in the order [`dispatch`] prefers it.
#[cfg(target_arch = "x86_64")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Avx512,
    Avx2,
    Baseline,
}

/// The CPU's [`Level`], detected once.
#[cfg(target_arch = "x86_64")]
fn level() -> Level {
    static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        if std::arch::is_x86_feature_detected!("avx512f") {
            Level::Avx512
        } else if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            Level::Avx2
        } else {
            Level::Baseline
        }
    })
}

/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic spread of values, some large, some tiny, both signs.
    fn values(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0 + (i % 3) as f32 * 1e-4)
            .collect()
    }

    #[test]
    fn reductions_agree_with_float64_and_take_every_element() {
        for n in [0, 1, 15, 16, 17, 100, 1029] {
            let x = values(n);
            let y: Vec<f32> = x.iter().map(|v| v * 0.5 - 1.0).collect();
            let exact_sum: f64 = x.iter().map(|&v| f64::from(v)).sum();
            let exact_dot: f64 = x.iter().zip(&y).map(|(&a, &b)| f64::from(a * b)).sum();
            assert!((f64::from(sum(&x)) - exact_sum).abs() <= 1e-4 * (1.0 + exact_sum.abs()));
            assert!((f64::from(dot(&x, &y)) - exact_dot).abs() <= 1e-4 * (1.0 + exact_dot.abs()));
            let exact_max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max(&x), exact_max, "n = {n}");
        }
        let mut spike = vec![0.0f32; 40];
        spike[39] = 5.0;
        assert_eq!(max(&spike), 5.0, "the tail counts");
        spike[33] = f32::NAN;
        assert_eq!(max(&spike), 5.0, "NaN passed over");
    }

    /// The three reductions' bits, inlined into whichever path calls it.
    #[inline(always)]
    fn reductions(x: &[f32], y: &[f32]) -> (u32, u32, u32) {
        (sum(x).to_bits(), dot(x, y).to_bits(), max(x).to_bits())
    }

    #[test]
    fn every_path_gives_the_same_bits() {
        let x = values(1029);
        let y: Vec<f32> = x.iter().map(|v| v.sin()).collect();
        let baseline = reductions(&x, &y);
        assert_eq!(
            dispatch(
                #[inline(always)]
                || reductions(&x, &y)
            ),
            baseline
        );
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected;
            if is_x86_feature_detected!("avx512f") {
                // SAFETY: checked just above.
                let avx512 = unsafe {
                    with_avx512(
                        #[inline(always)]
                        || reductions(&x, &y),
                    )
                };
                assert_eq!(avx512, baseline);
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: checked just above.
                let avx2 = unsafe {
                    with_avx2(
                        #[inline(always)]
                        || reductions(&x, &y),
                    )
                };
                assert_eq!(avx2, baseline);
            }
        }
    }
}
