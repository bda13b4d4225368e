//! What every pretraining objective is to the training loop ([`PretrainingModel`]): a model
//! and its loss. The objectives, each in a module of its own: [`super::electra`] (ELECTRA and
//! ELECTRA 15%), [`super::bert`] (BERT), [`super::replace_mlm`] (Replace MLM and All-Tokens
//! MLM), with the generator they share in [`super::generator`]. Also the pieces they share:
//! inputs on the device, the masked-LM logits and loss, sampling, the collapse statistic.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rayon::prelude::*;

use super::masking::MaskedBatch;
use super::prior::OutputPrior;
use super::stats::{StepStats, UnitSum};
use crate::cpu_kernels::fused::exponentials;
use crate::error::Result;
use crate::model::config::EncoderConfig;
use crate::model::encoder::{Backbone, EncoderInput, Layout};
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

    /// One forward pass of the objective on `batch`: the loss to back-propagate (its part of
    /// the whole batch's, [`MaskedBatch::split`]) and the step's measurements. A generator's
    /// replacements come from the batch's `replacement_draws`.
    fn step(&self, batch: &MaskedBatch, dropout: &mut Dropout, device: &B::Device)
        -> StepOutput<B>;

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
        layout: Layout::Padded(floats::<B, 2>(batch.attention.clone(), [b, s], device)),
    }
}

/// Masked-LM logits `[n, V]` at the masked positions of `batch`: the backbone on the masked
/// input, then the head (tied to the word embeddings). Also the backbone's final hidden
/// states `[b, s, h]`.
pub(super) fn masked_lm_logits<B: Backend>(
    backbone: Backbone<'_, B>,
    head: &MaskedLmHead<B>,
    batch: &MaskedBatch,
    dropout: &mut Dropout,
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 3>) {
    let input = input(batch, &batch.masked, device);
    let positions: Vec<u32> = batch.positions.iter().map(|&p| p as u32).collect();
    let positions = ints::<B, 1>(&positions, [positions.len()], device);
    let hidden = backbone.forward(&input, dropout);
    let logits = head.forward(hidden.clone(), positions, backbone.embeddings.word.val());
    (logits, hidden)
}

/// The final hidden states `hidden` `[b, s, h]` of `batch`'s real tokens, for the collapse
/// statistic.
pub(super) fn collapse<B: Backend>(hidden: Tensor<B, 3>, batch: &MaskedBatch) -> UnitSum {
    let h = hidden.dims()[2];
    UnitSum::of(&to_f32(hidden.detach()), h, &batch.attention)
}

/// A micro-batch's `mean` (a loss or a figure averaged over its own positions) as its part of
/// the whole batch's mean, `share` being its share of the whole batch's positions (see
/// [`MaskedBatch::masked_share`]); a whole batch's is left exactly as it is.
pub(super) fn part_of_whole<B: Backend>(mean: Tensor<B, 1>, share: f64) -> Tensor<B, 1> {
    if share == 1.0 {
        mean
    } else {
        mean * share
    }
}

/// Samples one token per row of `logits` `[n, V]` from its softmax at `temperature`, by
/// inverse CDF with the row's uniform draw from `uniforms` `[n]` (the same distribution as
/// ELECTRA's Gumbel-max trick). No gradient. The rows are read on the host, in parallel: the
/// row maximum, then the weights and their total, then the running sum against the row's draw.
pub(super) fn sample_tokens<B: Backend>(
    logits: Tensor<B, 2>,
    temperature: f64,
    uniforms: &[f32],
) -> Vec<u32> {
    let [n, vocab] = logits.dims();
    assert_eq!(n, uniforms.len(), "one draw per row of logits");
    let logits = to_f32(logits.detach());
    let inverse_temperature = (1.0 / temperature) as f32;
    logits
        .par_chunks(vocab.max(1))
        .zip(uniforms.par_iter())
        .map_init(Vec::new, |weights, (row, &u)| {
            sample_row(row, inverse_temperature, u, weights)
        })
        .collect()
}

/// The index of `row` that the draw `u` in [0, 1) picks from `softmax(row ×
/// inverse_temperature)`: the first whose cumulative weight exceeds `u` × the total.
/// `weights` is scratch space.
fn sample_row(row: &[f32], inverse_temperature: f32, u: f32, weights: &mut Vec<f32>) -> u32 {
    let threshold = u * exponentials(row, inverse_temperature, weights).total;
    let mut cumulative = 0.0f32;
    for (i, &w) in weights.iter().enumerate() {
        cumulative += w;
        if cumulative > threshold {
            return i as u32;
        }
    }
    row.len().saturating_sub(1) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn a_row_draw_picks_the_first_token_whose_cumulative_weight_exceeds_it() {
        // Weights 1 and 3: the first token takes draws under 0.25.
        let row = [0.0, 3f32.ln()];
        let draw = |inverse_temperature, u| sample_row(&row, inverse_temperature, u, &mut vec![]);
        assert_eq!(draw(1.0, 0.0), 0);
        assert_eq!(draw(1.0, 0.24), 0);
        assert_eq!(draw(1.0, 0.26), 1);
        assert_eq!(draw(1.0, 0.999_999), 1);
        // At temperature 2 the weights are 1 and √3: the first takes draws under 0.366.
        assert_eq!(draw(0.5, 0.36), 0);
        assert_eq!(draw(0.5, 0.37), 1);
    }

    #[test]
    fn samples_follow_the_softmax_at_the_temperature() {
        let logits = [2.0f32, 0.0, -1.0, 1.0, -30.0];
        let draws = 20_000;
        for temperature in [1.0, 2.0] {
            let rows: Vec<f32> = logits.iter().copied().cycle().take(draws * 5).collect();
            let tensor = floats::<Flex, 2>(rows, [draws, 5], &Default::default());
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let uniforms: Vec<f32> = (0..draws).map(|_| rng.random()).collect();
            let tokens = sample_tokens(tensor, temperature, &uniforms);
            let weights: Vec<f64> = logits
                .iter()
                .map(|&x| (f64::from(x) / temperature).exp())
                .collect();
            let total: f64 = weights.iter().sum();
            for (token, weight) in weights.iter().enumerate() {
                let share =
                    tokens.iter().filter(|&&t| t as usize == token).count() as f64 / draws as f64;
                let expected = weight / total;
                // Four standard deviations of a share of 20,000 draws.
                let tolerance = 4.0 * (expected * (1.0 - expected) / draws as f64).sqrt() + 1e-9;
                assert!(
                    (share - expected).abs() <= tolerance,
                    "temperature {temperature}, token {token}: {share} against {expected}"
                );
            }
        }
    }
}
