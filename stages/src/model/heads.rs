//! The output heads on a [`super::encoder::Backbone`]'s hidden states: the masked-LM head
//! (BERT, ELECTRA's generator), the discriminator's replaced-token-detection head, and the
//! fine-tuning classification head.

use burn::module::{Module, Param};
use burn::tensor::activation::gelu;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use super::layers::{Dense, Dropout, Init, LayerNorm};

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
        x.matmul(word.transpose()) + self.bias.val().unsqueeze() // [n, V]
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

/// The fine-tuning head: the pooled hidden state (`[CLS]`'s, or the tokens' mean) → dropout →
/// a linear layer to `k` outputs (the classes, or one score for regression).
#[derive(Module, Debug)]
pub struct ClassificationHead<B: Backend> {
    output: Dense<B>,
    #[module(skip)]
    pooling: Pooling,
}

impl<B: Backend> ClassificationHead<B> {
    /// A head from hidden size `hidden` to `outputs` outputs, reading `pooling`.
    pub fn new(init: &mut Init<'_, B>, hidden: usize, outputs: usize, pooling: Pooling) -> Self {
        ClassificationHead {
            output: Dense::new(init, hidden, outputs),
            pooling,
        }
    }

    /// `hidden`: `[b, s, h]`, `attention` `[b, s]` (1 on real tokens) → outputs `[b, k]`,
    /// with `dropout` on the pooled state.
    pub fn forward(
        &self,
        hidden: Tensor<B, 3>,
        attention: Tensor<B, 2>,
        dropout: &mut Dropout<'_>,
    ) -> Tensor<B, 2> {
        let [b, _, h] = hidden.dims();
        let pooled = match self.pooling {
            Pooling::Cls => hidden.slice([0..b, 0..1]).reshape([b, h]),
            Pooling::Mean => {
                let weights = attention.unsqueeze_dim::<3>(2); // [b, s, 1]
                let sum = (hidden * weights.clone()).sum_dim(1).reshape([b, h]);
                sum / weights.sum_dim(1).reshape([b, 1])
            }
        };
        self.output.forward(dropout.apply(pooled))
    }
}
