//! What every pretraining objective is to the training loop ([`PretrainingModel`]): a model
//! and its loss. The objectives, each in a module of its own: [`super::electra`] (ELECTRA and
//! ELECTRA 15%), [`super::bert`] (BERT), [`super::replace_mlm`] (Replace MLM and All-Tokens
//! MLM), with the generator they share in [`super::generator`]. Also the pieces they share:
//! inputs on the device, the masked-LM logits and loss, sampling, the collapse statistic.

use burn::module::Module;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::masking::MaskedBatch;
use super::prior::OutputPrior;
use super::stats::{mean_pairwise_cosine, StepStats};
use crate::error::Result;
use crate::model::config::EncoderConfig;
use crate::model::encoder::{Backbone, EncoderInput};
use crate::model::heads::MaskedLmHead;
use crate::model::layers::Dropout;
use crate::model::weights::Network;
use crate::records::pretrain::ObjectiveName;

/// Which exported file a network of a pretraining model goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The model to fine-tune: ELECTRA's discriminator, or BERT.
    Kept,
    /// ELECTRA's generator.
    Generator,
}

/// A network a pretraining model exports: where it sits in the model, and its shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExportedNetwork {
    /// Its file.
    pub role: Role,
    /// Its parameters' place in the model.
    pub network: Network,
    /// Its shape.
    pub config: EncoderConfig,
}

/// What the training loop needs of a pretraining objective's model.
pub trait PretrainingModel<B: Backend>: Module<B> {
    /// The objective it trains (its name in exported files).
    fn objective(&self) -> ObjectiveName;

    /// One forward pass of the objective on `batch`: the loss to back-propagate and the
    /// step's measurements. `rng` supplies the objective's own draws (ELECTRA's samples).
    fn step(
        &self,
        batch: &MaskedBatch,
        dropout: &mut Dropout<'_>,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> StepOutput<B>;

    /// Called before step `step` (also the first after a resume): where a model changes
    /// between steps (two-stage training), the model for that step.
    fn before_step(self, _step: u64, _device: &B::Device) -> Result<Self>
    where
        Self: Sized,
    {
        Ok(self)
    }

    /// The networks it exports, the kept one first.
    fn exports(&self) -> Vec<ExportedNetwork>;

    /// The model with its output heads' biases at `prior` (`output_bias: prior`).
    fn with_output_prior(self, prior: &OutputPrior, device: &B::Device) -> Self;
}

/// The masked-LM bias of `prior` as a tensor.
pub(super) fn token_log_probs<B: Backend>(prior: &OutputPrior, device: &B::Device) -> Tensor<B, 1> {
    Tensor::from_floats(prior.token_log_probs.as_slice(), device)
}

/// A step's loss (to back-propagate) and its measurements.
pub struct StepOutput<B: Backend> {
    /// Scalar loss.
    pub loss: Tensor<B, 1>,
    /// Measurements.
    pub stats: StepStats,
}

/// `values` as an integer tensor of `shape`.
pub(super) fn ints<B: Backend, const D: usize>(
    values: &[u32],
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D, Int> {
    let data: Vec<i64> = values.iter().map(|&v| i64::from(v)).collect();
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// `values` as a float tensor of `shape`.
pub(super) fn floats<B: Backend, const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// A float tensor's values.
pub(super) fn to_f32<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor.into_data().iter::<f32>().collect()
}

/// An integer tensor's values.
pub(super) fn to_u32<B: Backend, const D: usize>(tensor: Tensor<B, D, Int>) -> Vec<u32> {
    tensor.into_data().iter::<i64>().map(|v| v as u32).collect()
}

/// `ids` (the batch's masked or corrupted token ids) with the batch's segments and padding,
/// on the device.
pub(super) fn input<B: Backend>(
    batch: &MaskedBatch,
    ids: &[u32],
    device: &B::Device,
) -> EncoderInput<B> {
    let (b, s) = (batch.batch_size, batch.seq_len);
    EncoderInput {
        ids: ints::<B, 2>(ids, [b, s], device),
        segments: ints::<B, 2>(&batch.segments, [b, s], device),
        attention: floats::<B, 2>(batch.attention.clone(), [b, s], device),
    }
}

/// Masked-LM logits `[n, V]` at the masked positions of `batch`: the backbone on the masked
/// input, then the head (tied to the word embeddings). Also the backbone's final hidden
/// states `[b, s, h]`.
pub(super) fn masked_lm_logits<B: Backend>(
    backbone: Backbone<'_, B>,
    head: &MaskedLmHead<B>,
    batch: &MaskedBatch,
    dropout: &mut Dropout<'_>,
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 3>) {
    let input = input(batch, &batch.masked, device);
    let positions: Vec<u32> = batch.positions.iter().map(|&p| p as u32).collect();
    let positions = ints::<B, 1>(&positions, [positions.len()], device);
    let hidden = backbone.forward(&input, dropout);
    let logits = head.forward(hidden.clone(), positions, backbone.embeddings.word.val());
    (logits, hidden)
}

/// [`mean_pairwise_cosine`] of `hidden` `[b, s, h]` over `batch`'s real tokens.
pub(super) fn collapse<B: Backend>(hidden: Tensor<B, 3>, batch: &MaskedBatch) -> f64 {
    let h = hidden.dims()[2];
    mean_pairwise_cosine(&to_f32(hidden.detach()), h, &batch.attention)
}

/// Mean cross-entropy of `logits` `[n, V]` against `targets`; also the argmax accuracy.
pub(super) fn masked_lm_loss<B: Backend>(
    logits: Tensor<B, 2>,
    targets: &[u32],
    device: &B::Device,
) -> (Tensor<B, 1>, f64) {
    let n = targets.len();
    let predicted = to_u32(logits.clone().detach().argmax(1));
    let correct = predicted
        .iter()
        .zip(targets)
        .filter(|(p, t)| p == t)
        .count();
    let target_ids = ints::<B, 2>(targets, [n, 1], device);
    let picked = log_softmax(logits, 1).gather(1, target_ids); // [n, 1]
    let loss = -picked.mean().reshape([1]);
    (loss, correct as f64 / n.max(1) as f64)
}

/// Samples one token per row of `logits` `[n, V]` from its softmax at `temperature`, by
/// inverse CDF with one uniform draw per row (the same distribution as ELECTRA's Gumbel-max
/// trick). No gradient.
pub(super) fn sample_tokens<B: Backend>(
    logits: Tensor<B, 2>,
    temperature: f64,
    rng: &mut ChaCha8Rng,
) -> Vec<u32> {
    let [n, vocab] = logits.dims();
    let device = logits.device();
    let logits = logits.detach();
    let logits = if temperature == 1.0 {
        logits
    } else {
        logits / temperature
    };
    let cdf = softmax(logits, 1).cumsum(1); // [n, V]
    let uniforms: Vec<f32> = (0..n).map(|_| rng.random::<f32>()).collect();
    let u = floats::<B, 2>(uniforms, [n, 1], &device);
    let below = cdf.lower(u.expand([n, vocab])).int().sum_dim(1); // [n, 1]
    to_u32(below)
        .into_iter()
        .map(|i| i.min(vocab as u32 - 1))
        .collect()
}
