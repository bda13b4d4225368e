//! AdamW as ELECTRA's `AdamWeightDecayOptimizer` does it, with its learning-rate schedule.
//!
//! - moments with β₁ 0.9, β₂ 0.999, ε 1e-6, and no bias correction (as the official code;
//!   optional: without it, step `t`'s update of a steady gradient is `(1 − β₁ᵗ)/√(1 − β₂ᵗ)`
//!   times the rate, 6.5× at step 10 and 2.4× at step 200, which a long warm-up hides and a
//!   short run does not);
//! - decoupled weight decay 0.01 on weight matrices and embeddings, none on LayerNorm gains
//!   and biases (every rank-1 parameter);
//! - gradients clipped to a global norm of 1.0 first;
//! - learning rate: linear warm-up from 0, then linear decay to 0 at the last step (from step 0
//!   as the official code, or from the end of warm-up: [`Decay`]).
//!
//! The state (two moments per parameter) is kept in parameter-visiting order, so it can be
//! saved and restored exactly. On the flex CPU backend each parameter's update is one parallel
//! pass over its values, gradient and moments, in place ([`update_in_place`]); every other
//! backend composes it from tensor operations. Both round each operation to f32 in the same
//! order, so they agree bit for bit (tested).

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::cpu_kernels::{from_flex, into_flex, is_flex_f32, simd};

/// The optimiser's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWSettings {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub epsilon: f64,
    /// Decoupled weight decay on rank ≥ 2 parameters.
    pub weight_decay: f64,
    /// Global gradient-norm limit.
    pub clip_norm: f64,
    /// Divide the moments by `1 − βᵗ` (Adam's bias correction; the official code does not).
    pub bias_correction: bool,
}

impl Default for AdamWSettings {
    fn default() -> Self {
        AdamWSettings {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-6,
            weight_decay: 0.01,
            clip_norm: 1.0,
            bias_correction: false,
        }
    }
}

/// Linear warm-up then linear decay to 0 (ELECTRA's `polynomial_decay` with power 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Peak learning rate.
    pub peak: f64,
    /// Warm-up steps.
    pub warmup: u64,
    /// Total steps.
    pub total: u64,
    /// Where the decay starts.
    pub decay: Decay,
}

/// Where a schedule's linear decay to 0 starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    /// At step 0, as the official code: the warm-up overrides it at the start, so the rate
    /// right after warm-up is peak × (1 − warmup/total) (99% at the paper's 10k of 1M steps).
    #[default]
    WholeRun,
    /// At the end of warm-up, from the peak: with a warm-up over half the steps, the
    /// triangular one-cycle schedule.
    AfterWarmup,
}

impl Schedule {
    /// The learning rate of (0-based) `step`.
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup {
            return self.peak * step as f64 / self.warmup as f64;
        }
        let (done, span) = match self.decay {
            Decay::WholeRun => (step, self.total),
            Decay::AfterWarmup => (step - self.warmup, self.total - self.warmup.min(self.total)),
        };
        self.peak * (1.0 - done as f64 / span.max(1) as f64).max(0.0)
    }
}

type Moment<B> = Tensor<<B as AutodiffBackend>::InnerBackend, 1>;

/// AdamW state: the two moments of every parameter, in visiting order.
pub struct AdamW<B: AutodiffBackend> {
    settings: AdamWSettings,
    moments: Vec<Option<(Moment<B>, Moment<B>)>>,
    /// Updates applied so far (the `t` of the bias correction).
    updates: u64,
}

impl<B: AutodiffBackend> AdamW<B> {
    /// A fresh optimiser.
    pub fn new(settings: AdamWSettings) -> Self {
        AdamW {
            settings,
            moments: Vec::new(),
            updates: 0,
        }
    }

    /// Applies one update with learning rate `lr`; returns the gradients' global norm before
    /// clipping.
    pub fn step<M: AutodiffModule<B>>(
        &mut self,
        model: M,
        grads: GradientsParams,
        lr: f64,
    ) -> (M, f64) {
        self.step_scaled(model, grads, lr, &|_| 1.0)
    }

    /// [`AdamW::step`] with the learning rate of each parameter multiplied by
    /// `lr_factor(path)`, its module path (`encoder.blocks.3.output.weight`): layer-wise
    /// learning-rate decay.
    pub fn step_scaled<M: AutodiffModule<B>>(
        &mut self,
        model: M,
        mut grads: GradientsParams,
        lr: f64,
        lr_factor: &dyn Fn(&str) -> f64,
    ) -> (M, f64) {
        let mut norm = SquaredNorm::<B> {
            grads: &grads,
            sum: None,
        };
        model.visit(&mut norm);
        let global = norm
            .sum
            .map_or(0.0, |sum| sum.into_scalar().elem::<f64>())
            .sqrt();
        let scale = if global > self.settings.clip_norm {
            self.settings.clip_norm / global
        } else {
            1.0
        };
        self.updates += 1;
        let mut update = Update {
            grads: &mut grads,
            optimizer: self,
            index: 0,
            lr,
            lr_factor,
            path: Vec::new(),
            scale,
        };
        (model.map(&mut update), global)
    }

    /// The moments as host vectors `(m, v)` in visiting order (`None` before a first update).
    pub fn export(&self) -> Vec<Option<(Vec<f32>, Vec<f32>)>> {
        self.moments
            .iter()
            .map(|slot| {
                slot.as_ref().map(|(m, v)| {
                    (
                        m.to_data().iter::<f32>().collect(),
                        v.to_data().iter::<f32>().collect(),
                    )
                })
            })
            .collect()
    }

    /// Restores moments saved by [`AdamW::export`] after `updates` updates.
    pub fn import(
        &mut self,
        saved: Vec<Option<(Vec<f32>, Vec<f32>)>>,
        updates: u64,
        device: &B::Device,
    ) {
        self.updates = updates;
        self.moments = saved
            .into_iter()
            .map(|slot| {
                slot.map(|(m, v)| {
                    let tensor = |values: Vec<f32>| {
                        let len = values.len();
                        Tensor::from_data(burn::tensor::TensorData::new(values, [len]), device)
                    };
                    (tensor(m), tensor(v))
                })
            })
            .collect();
    }
}

/// Sums the squares of every gradient on the device (one read-back at the end).
struct SquaredNorm<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    sum: Option<Moment<B>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNorm<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let squares = grad.powi_scalar(2).sum();
            self.sum = Some(match self.sum.take() {
                Some(sum) => sum + squares,
                None => squares,
            });
        }
    }
}

/// Replaces every parameter by its updated value.
struct Update<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    optimizer: &'a mut AdamW<B>,
    index: usize,
    lr: f64,
    lr_factor: &'a dyn Fn(&str) -> f64,
    /// The module path of the parameter being mapped.
    path: Vec<String>,
    scale: f64,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Update<'_, B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let index = self.index;
        self.index += 1;
        let Some(grad) = self.grads.remove::<B::InnerBackend, D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        if self.optimizer.moments.len() <= index {
            self.optimizer.moments.resize_with(index + 1, || None);
        }
        let constants = self.constants::<D>();
        let moments = self.optimizer.moments[index].take();
        let value = tensor.inner();
        let (updated, moments) = if is_flex_f32(&grad) {
            update_on_flex(value, grad, moments, &constants)
        } else {
            update_composed(value, grad, moments, &constants)
        };
        self.optimizer.moments[index] = Some(moments);
        Param::from_mapped_value(id, Tensor::from_inner(updated).require_grad(), mapper)
    }
}

impl<B: AutodiffBackend> Update<'_, B> {
    /// The scalars of the current parameter's update, each rounded to f32 as burn's scalar
    /// operations round their f64 argument.
    fn constants<const D: usize>(&self) -> Constants {
        let s = &self.optimizer.settings;
        let correction = s.bias_correction.then(|| {
            let t = self.optimizer.updates as i32;
            (
                (1.0 - s.beta1.powi(t)) as f32,
                (1.0 - s.beta2.powi(t)) as f32,
            )
        });
        Constants {
            scale: self.scale as f32,
            beta1: s.beta1 as f32,
            one_minus_beta1: (1.0 - s.beta1) as f32,
            beta2: s.beta2 as f32,
            one_minus_beta2: (1.0 - s.beta2) as f32,
            correction,
            epsilon: s.epsilon as f32,
            decay: (D >= 2).then_some(s.weight_decay as f32),
            lr: (self.lr * (self.lr_factor)(&self.path.join("."))) as f32,
        }
    }
}

/// One parameter's update, as f32 scalars.
#[derive(Debug, Clone, Copy)]
struct Constants {
    /// The clipping factor applied to the gradient.
    scale: f32,
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    /// `1 − β₁ᵗ` and `1 − β₂ᵗ` where the moments are bias-corrected.
    correction: Option<(f32, f32)>,
    epsilon: f32,
    /// The decoupled weight decay, on matrices only.
    decay: Option<f32>,
    /// This parameter's learning rate.
    lr: f32,
}

/// The updated value and moments of one parameter, by burn's tensor operations (any backend).
fn update_composed<B: Backend, const D: usize>(
    value: Tensor<B, D>,
    grad: Tensor<B, D>,
    moments: Option<(Tensor<B, 1>, Tensor<B, 1>)>,
    c: &Constants,
) -> (Tensor<B, D>, (Tensor<B, 1>, Tensor<B, 1>)) {
    let shape = grad.shape();
    let numel = shape.num_elements();
    let g = grad.reshape([numel]) * c.scale;
    let (m, v) = moments.unwrap_or_else(|| (g.zeros_like(), g.zeros_like()));
    let m = m * c.beta1 + g.clone() * c.one_minus_beta1;
    let v = v * c.beta2 + g.powi_scalar(2) * c.one_minus_beta2;
    let value = value.reshape([numel]);
    let mut step = match c.correction {
        Some((first, second)) => (m.clone() / first) / ((v.clone() / second).sqrt() + c.epsilon),
        None => m.clone() / (v.clone().sqrt() + c.epsilon),
    };
    if let Some(decay) = c.decay {
        step = step + value.clone() * decay;
    }
    ((value - step * c.lr).reshape(shape), (m, v))
}

/// [`update_composed`] on the flex backend: one pass, in place where the buffers are not
/// shared (the moments always are not after the first update).
fn update_on_flex<B: Backend, const D: usize>(
    value: Tensor<B, D>,
    grad: Tensor<B, D>,
    moments: Option<(Tensor<B, 1>, Tensor<B, 1>)>,
    c: &Constants,
) -> (Tensor<B, D>, (Tensor<B, 1>, Tensor<B, 1>)) {
    let (numel, device) = (grad.shape().num_elements(), grad.device());
    let grad = into_flex(grad).to_contiguous();
    let mut value = into_flex(value).to_contiguous();
    let (mut m, mut v) = match moments {
        Some((m, v)) => (into_flex(m).to_contiguous(), into_flex(v).to_contiguous()),
        None => {
            let zeros = || into_flex(Tensor::<B, 1>::zeros([numel], &device));
            (zeros(), zeros())
        }
    };
    update_in_place(
        value.storage_mut::<f32>(),
        m.storage_mut::<f32>(),
        v.storage_mut::<f32>(),
        grad.as_slice::<f32>().expect("made contiguous"),
        c,
    );
    (from_flex(value), (from_flex(m), from_flex(v)))
}

/// AdamW's update of `value` and its moments `m`, `v` for gradient `grad`, element by
/// element in parallel chunks, each operation rounded to f32 in [`update_composed`]'s order.
fn update_in_place(value: &mut [f32], m: &mut [f32], v: &mut [f32], grad: &[f32], c: &Constants) {
    const CHUNK: usize = 16_384;
    assert!(
        value.len() == grad.len() && m.len() == grad.len() && v.len() == grad.len(),
        "a value, a gradient and two moments of {} elements",
        grad.len()
    );
    value
        .par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .zip(grad.par_chunks(CHUNK))
        .for_each(|(((value, m), v), grad)| {
            simd::dispatch(
                #[inline(always)]
                || {
                    for (((x, m), v), &g) in value.iter_mut().zip(m).zip(v).zip(grad) {
                        let g = g * c.scale;
                        *m = *m * c.beta1 + g * c.one_minus_beta1;
                        *v = *v * c.beta2 + g * g * c.one_minus_beta2;
                        let mut step = match c.correction {
                            Some((first, second)) => {
                                (*m / first) / ((*v / second).sqrt() + c.epsilon)
                            }
                            None => *m / (v.sqrt() + c.epsilon),
                        };
                        if let Some(decay) = c.decay {
                            step += *x * decay;
                        }
                        *x -= step * c.lr;
                    }
                },
            )
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_linearly_then_decays_to_zero() {
        let s = Schedule {
            peak: 5e-4,
            warmup: 10,
            total: 100,
            decay: Decay::WholeRun,
        };
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(5) - 2.5e-4).abs() < 1e-12);
        assert!((s.lr(10) - 4.5e-4).abs() < 1e-12);
        assert!((s.lr(50) - 2.5e-4).abs() < 1e-12);
        assert_eq!(s.lr(100), 0.0);
    }

    #[test]
    fn the_triangular_schedule_peaks_at_the_end_of_warm_up() {
        let s = Schedule {
            peak: 1e-3,
            warmup: 50,
            total: 100,
            decay: Decay::AfterWarmup,
        };
        assert!((s.lr(25) - 5e-4).abs() < 1e-15);
        assert_eq!(s.lr(50), 1e-3);
        assert!((s.lr(75) - 5e-4).abs() < 1e-15);
        assert_eq!(s.lr(100), 0.0);
        let no_warmup = Schedule { warmup: 0, ..s };
        assert_eq!(no_warmup.lr(0), 1e-3);
        assert!((no_warmup.lr(50) - 5e-4).abs() < 1e-15);
    }

    /// The first update of a bias under a steady gradient, as a multiple of the rate.
    fn first_update(bias_correction: bool) -> f32 {
        use crate::model::layers::{Dense, Init};
        use rand::SeedableRng;
        type B = burn::backend::Autodiff<burn::backend::Flex>;
        let device = Default::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut init = Init::<B> {
            device: &device,
            rng: &mut rng,
        };
        let dense = Dense::new(&mut init, 2, 1);
        let loss = dense.forward(Tensor::<B, 2>::zeros([1, 2], &device)).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &dense);
        let settings = AdamWSettings {
            bias_correction,
            ..AdamWSettings::default()
        };
        let (dense, _) = AdamW::new(settings).step(dense, grads, 1e-3);
        -dense.bias.val().into_scalar() / 1e-3
    }

    #[test]
    fn the_in_place_update_is_bit_for_bit_the_composed_one() {
        use burn::tensor::Distribution;
        type Inner = burn::backend::Flex;
        let device = Default::default();
        for (correction, decay) in [(None, Some(0.01f32)), (Some((0.19f32, 0.002f32)), None)] {
            let c = Constants {
                scale: 0.7,
                beta1: 0.9,
                one_minus_beta1: (1.0f64 - 0.9) as f32,
                beta2: 0.999,
                one_minus_beta2: (1.0f64 - 0.999) as f32,
                correction,
                epsilon: 1e-6,
                decay,
                lr: 3e-4,
            };
            let start =
                Tensor::<Inner, 2>::random([37, 41], Distribution::Normal(0.0, 0.02), &device);
            let (mut fused, mut composed) = ((start.clone(), None), (start, None));
            for _ in 0..3 {
                let grad =
                    Tensor::<Inner, 2>::random([37, 41], Distribution::Normal(0.0, 1.0), &device);
                let (value, moments) = update_on_flex(fused.0, grad.clone(), fused.1, &c);
                fused = (value, Some(moments));
                let (value, moments) = update_composed(composed.0, grad, composed.1, &c);
                composed = (value, Some(moments));
            }
            let bits = |t: Tensor<Inner, 2>| -> Vec<u32> {
                t.into_data().iter::<f32>().map(f32::to_bits).collect()
            };
            let moment_bits = |t: Tensor<Inner, 1>| -> Vec<u32> {
                t.into_data().iter::<f32>().map(f32::to_bits).collect()
            };
            let ((fm, fv), (cm, cv)) = (fused.1.unwrap(), composed.1.unwrap());
            assert_eq!(moment_bits(fm), moment_bits(cm));
            assert_eq!(moment_bits(fv), moment_bits(cv));
            assert_eq!(bits(fused.0), bits(composed.0));
        }
    }

    #[test]
    fn bias_correction_makes_the_first_update_the_rate() {
        // (1 − β₁) / √(1 − β₂) = 0.1 / √0.001 ≈ 3.16 without it, ≈ 1 with it.
        assert!(
            (first_update(false) - 3.1623).abs() < 1e-3,
            "{}",
            first_update(false)
        );
        assert!(
            (first_update(true) - 1.0).abs() < 1e-3,
            "{}",
            first_update(true)
        );
    }
}
