//! The output heads on a [`super::encoder::Backbone`]'s hidden states: the masked-LM head
//! (BERT, ELECTRA's generator), the discriminator's replaced-token-detection head, and the
//! fine-tuning classification head.

use burn::module::{Module, Param};
use burn::tensor::activation::tanh;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use super::layers::{Dense, Dropout, Init, LayerNorm};
use super::ops::{gelu, linear};

/// Dense `h → e`, GELU, LayerNorm, then the tied word embeddings plus a bias: logits over the
/// vocabulary, computed **only at the masked positions**.
#[derive(Module, Debug)]
pub struct MaskedLmHead<B: Backend> {
    dense: Dense<B>,
    norm: LayerNorm<B>,
    /// `[V]`.
    bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> MaskedLmHead<B> {
    /// A head from hidden size `hidden` to embedding width `embedding` and `vocab` logits.
    pub fn new(init: &mut Init<'_, B>, hidden: usize, embedding: usize, vocab: usize) -> Self {
        MaskedLmHead {
            dense: Dense::new(init, hidden, embedding),
            norm: LayerNorm::new(init, embedding),
            bias: Param::from_tensor(init.constant(vocab, 0.0)),
        }
    }

    /// The head with its output bias replaced by `bias` `[V]` (a starting point, before
    /// training).
    pub fn with_bias(self, bias: Tensor<B, 1>) -> Self {
        MaskedLmHead {
            bias: Param::from_tensor(bias),
            ..self
        }
    }

    /// `hidden`: `[b, s, h]`; `positions`: `[n]` flat indices `row · s + column` of the
    /// masked tokens; `word`: the `[V, e]` embedding matrix → logits `[n, V]`.
    pub fn forward(
        &self,
        hidden: Tensor<B, 3>,
        positions: Tensor<B, 1, Int>,
        word: Tensor<B, 2>,
    ) -> Tensor<B, 2> {
        let [b, s, h] = hidden.dims();
        let picked = hidden.reshape([b * s, h]).select(0, positions); // [n, h]
        let x = self.norm.forward(gelu(self.dense.forward(picked))); // [n, e]
        linear(x, word.transpose(), self.bias.val()) // [n, V]
    }
}

/// The discriminator's head: dense `h → h`, GELU, dense `h → 1`: one logit per token, the
/// score that the token was replaced.
#[derive(Module, Debug)]
pub struct ReplacedTokenHead<B: Backend> {
    dense: Dense<B>,
    logit: Dense<B>,
}

impl<B: Backend> ReplacedTokenHead<B> {
    /// A head for hidden size `hidden`.
    pub fn new(init: &mut Init<'_, B>, hidden: usize) -> Self {
        ReplacedTokenHead {
            dense: Dense::new(init, hidden, hidden),
            logit: Dense::new(init, hidden, 1),
        }
    }

    /// The head with its logit's bias set to `bias` (a starting point, before training).
    pub fn with_bias(self, bias: f32) -> Self {
        let device = self.logit.bias.val().device();
        let logit = Dense {
            bias: Param::from_tensor(Tensor::from_floats([bias], &device)),
            ..self.logit
        };
        ReplacedTokenHead { logit, ..self }
    }

    /// `[b, s, h]` → logits `[b, s]`.
    pub fn forward(&self, hidden: Tensor<B, 3>) -> Tensor<B, 2> {
        let [b, s, _] = hidden.dims();
        self.logit
            .forward(gelu(self.dense.forward(hidden)))
            .reshape([b, s])
    }
}

/// Which summary of the sequence a classification head reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The `[CLS]` token's final state (the paper's).
    #[default]
    Cls,
    /// The mean of the real tokens' final states.
    Mean,
}

/// The layers a fine-tuning head puts between the pooled state and its outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadLayers {
    /// The official ELECTRA code's (BERT's pooler): dense `h → h`, tanh, dropout, linear.
    #[default]
    Pooler,
    /// transformers' `ElectraClassificationHead`: dropout, dense `h → h`, GELU, dropout,
    /// linear.
    DenseGelu,
    /// Dropout, linear.
    Linear,
}

/// What a fine-tuning head reads and computes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadShape {
    /// The summary of the sequence it reads.
    pub pooling: Pooling,
    /// Its layers.
    pub layers: HeadLayers,
}

impl HeadShape {
    /// Whether this is transformers' `ElectraClassificationHead` (dense + GELU on `[CLS]`), the
    /// one head a fine-tuned model can be exported with.
    pub fn is_transformers(&self) -> bool {
        self.pooling == Pooling::Cls && self.layers == HeadLayers::DenseGelu
    }
}

/// The fine-tuning head: the pooled hidden state (`[CLS]`'s, or the tokens' mean) → its
/// [`HeadLayers`] → `k` outputs (the classes, or one score for regression).
#[derive(Module, Debug)]
pub struct ClassificationHead<B: Backend> {
    /// The dense `h → h` layer before the output (none for [`HeadLayers::Linear`]).
    dense: Option<Dense<B>>,
    output: Dense<B>,
    #[module(skip)]
    shape: HeadShape,
}

impl<B: Backend> ClassificationHead<B> {
    /// A head of `shape` from hidden size `hidden` to `outputs` outputs.
    pub fn new(init: &mut Init<'_, B>, hidden: usize, outputs: usize, shape: HeadShape) -> Self {
        ClassificationHead {
            dense: (shape.layers != HeadLayers::Linear).then(|| Dense::new(init, hidden, hidden)),
            output: Dense::new(init, hidden, outputs),
            shape,
        }
    }

    /// `hidden`: `[b, s, h]`, `attention` `[b, s]` (1 on real tokens) → outputs `[b, k]`,
    /// with `dropout` where [`HeadLayers`] puts it.
    pub fn forward(
        &self,
        hidden: Tensor<B, 3>,
        attention: Tensor<B, 2>,
        dropout: &mut Dropout,
    ) -> Tensor<B, 2> {
        let [b, _, h] = hidden.dims();
        let pooled = match self.shape.pooling {
            Pooling::Cls => hidden.slice([0..b, 0..1]).reshape([b, h]),
            Pooling::Mean => {
                let weights = attention.unsqueeze_dim::<3>(2); // [b, s, 1]
                let sum = (hidden * weights.clone()).sum_dim(1).reshape([b, h]);
                sum / weights.sum_dim(1).reshape([b, 1])
            }
        };
        let features = match (&self.dense, self.shape.layers) {
            (Some(dense), HeadLayers::Pooler) => dropout.apply(tanh(dense.forward(pooled))),
            (Some(dense), HeadLayers::DenseGelu) => {
                let inner = gelu(dense.forward(dropout.apply(pooled)));
                dropout.apply(inner)
            }
            _ => dropout.apply(pooled),
        };
        self.output.forward(features)
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// `x · W + b` for a `[in, out]` weight, on plain numbers.
    fn affine(x: &[f32], dense: &Dense<Flex>) -> Vec<f32> {
        let w = dense.weight.val().into_data().to_vec::<f32>().unwrap();
        let b = dense.bias.val().into_data().to_vec::<f32>().unwrap();
        (0..b.len())
            .map(|j| {
                b[j] + x
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v * w[i * b.len() + j])
                    .sum::<f32>()
            })
            .collect()
    }

    #[test]
    fn the_heads_compute_pooler_dense_gelu_and_linear_on_the_cls_state() {
        let device = Default::default();
        let hidden = [0.3f32, -1.1, 0.7, 0.2, 2.0, -0.4, 0.1, 0.9]; // [1, 2, 4]: [CLS] first
        let input = Tensor::<Flex, 3>::from_floats(
            [[[0.3, -1.1, 0.7, 0.2], [2.0, -0.4, 0.1, 0.9]]],
            &device,
        );
        let attention = Tensor::<Flex, 2>::ones([1, 2], &device);
        let cls = &hidden[..4];
        let gelu = |v: f32| 0.5 * v * (1.0 + erf(v / std::f32::consts::SQRT_2));
        for layers in [
            HeadLayers::Pooler,
            HeadLayers::DenseGelu,
            HeadLayers::Linear,
        ] {
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let mut init = Init {
                device: &device,
                rng: &mut rng,
            };
            let shape = HeadShape {
                pooling: Pooling::Cls,
                layers,
            };
            let mut head = ClassificationHead::<Flex>::new(&mut init, 4, 3, shape);
            // Weights of order 1, so that every nonlinearity shows in the outputs.
            let scaled = |dense: Dense<Flex>| Dense {
                weight: Param::from_tensor(dense.weight.val() * 40.0),
                bias: Param::from_tensor(dense.bias.val() + 0.3),
            };
            head.dense = head.dense.map(scaled);
            head.output = scaled(head.output);
            let features: Vec<f32> = match (&head.dense, layers) {
                (Some(dense), HeadLayers::Pooler) => {
                    affine(cls, dense).into_iter().map(f32::tanh).collect()
                }
                (Some(dense), HeadLayers::DenseGelu) => {
                    affine(cls, dense).into_iter().map(gelu).collect()
                }
                (None, HeadLayers::Linear) => cls.to_vec(),
                _ => panic!("{layers:?} has the wrong layers"),
            };
            let expected = affine(&features, &head.output);
            let actual = head
                .forward(input.clone(), attention.clone(), &mut Dropout::Off)
                .into_data()
                .to_vec::<f32>()
                .unwrap();
            for (a, e) in actual.iter().zip(&expected) {
                assert!(
                    (a - e).abs() < 1e-5,
                    "{layers:?}: {actual:?} against {expected:?}"
                );
            }
        }
    }

    /// The error function (Abramowitz and Stegun 7.1.26, |error| < 1.5e-7).
    fn erf(x: f32) -> f32 {
        let x = f64::from(x);
        let t = 1.0 / (1.0 + 0.3275911 * x.abs());
        let poly = t
            * (0.254829592
                + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
        (1.0 - poly * (-x * x).exp()).copysign(x) as f32
    }
}
