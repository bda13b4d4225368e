//! ELECTRA: a generator fills the masked positions with its samples; the discriminator reads
//! the corrupted sequence and predicts, for every real token, whether it was replaced (a
//! sample equal to the original counts as real). Loss = w · MLM loss + λ · binary
//! cross-entropy (w = 1, λ = 50). Generator and discriminator share the token, position and
//! segment embeddings.
//!
//! **ELECTRA 15%** (the paper's Table 5) is the same model whose discriminator loss comes only
//! from the masked positions.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use rand_chacha::ChaCha8Rng;

use super::generator::{corrupt, Generator, GeneratorOptions, GeneratorShape};
use super::masking::MaskedBatch;
use super::objective::{
    collapse, floats, input, to_f32, token_log_probs, ExportedNetwork, PretrainingModel, Role,
    StepOutput,
};
use super::prior::OutputPrior;
use super::stats::{discriminator_stats, StepStats};
use super::unigram::UnigramSampler;
use crate::model::config::EncoderConfig;
use crate::model::encoder::{Backbone, Embeddings, Encoder};
use crate::model::heads::ReplacedTokenHead;
use crate::model::layers::{Dropout, Init};
use crate::model::weights::Network;
use crate::records::pretrain::ObjectiveName;

/// ELECTRA: generator and discriminator over shared embeddings.
#[derive(Module, Debug)]
pub struct Electra<B: Backend> {
    /// Shared token, position and segment embeddings.
    pub embeddings: Embeddings<B>,
    /// The generator.
    pub generator: Generator<B>,
    /// The discriminator's transformer: the model that is kept and fine-tuned.
    pub discriminator: Encoder<B>,
    /// The replaced-token-detection head.
    pub discriminator_head: ReplacedTokenHead<B>,
    /// The shapes and loss weights.
    #[module(skip)]
    pub shape: ElectraShape,
}

/// ELECTRA's shapes and loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ElectraShape {
    /// The discriminator's shape.
    pub discriminator: EncoderConfig,
    /// The generator.
    pub generator: GeneratorOptions,
    /// Weight λ of the discriminator's loss.
    pub lambda: f64,
    /// ELECTRA 15%: the discriminator's loss over the masked positions only.
    pub masked_only: bool,
}

impl ElectraShape {
    /// The paper's ELECTRA for this discriminator: a ¼-width generator as deep, sampled at
    /// temperature 1 with loss weight 1, λ = 50, the loss over every token.
    pub fn paper(discriminator: EncoderConfig) -> Self {
        ElectraShape {
            discriminator,
            generator: GeneratorOptions {
                shape: GeneratorShape::MaskedLm(discriminator.generator(0.25, 1.0)),
                temperature: 1.0,
                weight: 1.0,
            },
            lambda: 50.0,
            masked_only: false,
        }
    }
}

impl<B: Backend> Electra<B> {
    /// A fresh model of `shape`; a unigram generator draws with `unigram`.
    ///
    /// # Panics
    /// If the generator is a unigram one and `unigram` is `None`.
    pub fn new(
        init: &mut Init<'_, B>,
        shape: ElectraShape,
        unigram: Option<UnigramSampler>,
    ) -> Self {
        let discriminator = &shape.discriminator;
        Electra {
            embeddings: Embeddings::new(init, discriminator),
            generator: Generator::new(init, shape.generator, unigram),
            discriminator: Encoder::new(init, discriminator),
            discriminator_head: ReplacedTokenHead::new(init, discriminator.hidden),
            shape,
        }
    }

    /// The discriminator: its encoder over the shared embeddings.
    pub fn discriminator_backbone(&self) -> Backbone<'_, B> {
        Backbone {
            embeddings: &self.embeddings,
            encoder: &self.discriminator,
        }
    }

    /// The discriminator's loss on `corrupted` (the batch's original ids with some replaced):
    /// binary cross-entropy of "was this token replaced?", averaged over the positions where
    /// `scored` is 1 (every real token, or for ELECTRA 15% the masked ones), with its accuracy,
    /// the all-original baseline, precision, recall and ROC-AUC on those positions in the
    /// stats.
    pub fn discriminator_loss(
        &self,
        batch: &MaskedBatch,
        corrupted: &[u32],
        scored: &[f32],
        dropout: &mut Dropout<'_>,
        device: &B::Device,
    ) -> (Tensor<B, 1>, StepStats) {
        let labels: Vec<f32> = corrupted
            .iter()
            .zip(&batch.original)
            .map(|(c, o)| f32::from(u8::from(c != o)))
            .collect();
        let input = input(batch, corrupted, device);
        let hidden = self.discriminator_backbone().forward(&input, dropout);
        let hidden_cosine = collapse(hidden.clone(), batch);
        let logits = self.discriminator_head.forward(hidden); // [b, s]
        let bce = weighted_bce(logits.clone(), &labels, scored, device);
        let mut stats = StepStats {
            tokens: batch.attention.iter().filter(|&&a| a > 0.0).count(),
            hidden_cosine,
            ..StepStats::default()
        };
        discriminator_stats(&mut stats, &to_f32(logits.detach()), &labels, scored);
        stats.bce_loss = f64::from(to_f32(bce.clone().detach())[0]);
        (bce, stats)
    }

    /// Where the discriminator's loss is taken: 1 on every real token of `batch`, or for
    /// ELECTRA 15% on its masked positions only.
    fn scored_positions(&self, batch: &MaskedBatch) -> Vec<f32> {
        if !self.shape.masked_only {
            return batch.attention.clone();
        }
        let mut scored = vec![0.0f32; batch.attention.len()];
        for &p in &batch.positions {
            scored[p] = 1.0;
        }
        scored
    }
}

/// Binary cross-entropy of `logits` `[b, s]` against `labels` (1 = replaced), averaged over
/// the positions where `scored` is 1; in the stable form `max(x, 0) − x·y + ln(1 + e^−|x|)`.
pub fn weighted_bce<B: Backend>(
    logits: Tensor<B, 2>,
    labels: &[f32],
    scored: &[f32],
    device: &B::Device,
) -> Tensor<B, 1> {
    let shape = logits.dims();
    let y = floats::<B, 2>(labels.to_vec(), shape, device);
    let weights = floats::<B, 2>(scored.to_vec(), shape, device);
    let x = logits;
    let per_token = x.clone().clamp_min(0.0) - x.clone() * y + (x.abs().neg().exp() + 1.0).log();
    let counted = scored.iter().filter(|&&w| w > 0.0).count();
    (per_token * weights).sum() / counted.max(1) as f64
}

impl<B: Backend> PretrainingModel<B> for Electra<B> {
    fn objective(&self) -> ObjectiveName {
        if self.shape.masked_only {
            ObjectiveName::Electra15
        } else {
            ObjectiveName::Electra
        }
    }

    /// The generator's masked LM and its samples in the masked positions, then the
    /// discriminator's loss on the result, weighted by λ. `rng` supplies the samples.
    fn step(
        &self,
        batch: &MaskedBatch,
        dropout: &mut Dropout<'_>,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> StepOutput<B> {
        let samples = self
            .generator
            .sample(&self.embeddings, batch, dropout, rng, device);
        let corrupted = corrupt(batch, &samples.tokens);
        let scored = self.scored_positions(batch);
        let (bce, mut stats) = self.discriminator_loss(batch, &corrupted, &scored, dropout, device);
        let weighted = bce * self.shape.lambda;
        let loss = match samples.loss {
            Some(mlm) => mlm + weighted,
            None => weighted,
        };
        stats.mlm_accuracy = samples.mlm_accuracy;
        stats.masked = batch.positions.len();
        stats.mlm_loss = samples.mlm_loss;
        stats.loss = f64::from(to_f32(loss.clone().detach())[0]);
        StepOutput { loss, stats }
    }

    fn exports(&self) -> Vec<ExportedNetwork> {
        let kept = ExportedNetwork {
            role: Role::Kept,
            network: Network::DISCRIMINATOR,
            config: self.shape.discriminator,
        };
        let generator = self
            .shape
            .generator
            .shape
            .network()
            .map(|config| ExportedNetwork {
                role: Role::Generator,
                network: Network::GENERATOR,
                config,
            });
        std::iter::once(kept).chain(generator).collect()
    }

    fn with_output_prior(self, prior: &OutputPrior, device: &B::Device) -> Self {
        let replaced = if self.shape.masked_only {
            prior.masked_replaced_logit
        } else {
            prior.replaced_logit
        };
        Electra {
            generator: self
                .generator
                .with_output_bias(token_log_probs(prior, device)),
            discriminator_head: self.discriminator_head.with_bias(replaced),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    type B = Flex;

    #[test]
    fn the_bce_is_the_mean_over_the_scored_positions_only() {
        let device = Default::default();
        // One row of four tokens: logits 2, −1, 0, 3; the second and fourth were replaced.
        let labels = [0.0, 1.0, 0.0, 1.0];
        let logits = |values: [f32; 4]| floats::<B, 2>(values.to_vec(), [1, 4], &device);
        let bce = |x: f64, y: f64| -(y * sigmoid(x).ln() + (1.0 - y) * (1.0 - sigmoid(x)).ln());
        let value = |t: Tensor<B, 1>| f64::from(to_f32(t)[0]);
        let all = value(weighted_bce(
            logits([2.0, -1.0, 0.0, 3.0]),
            &labels,
            &[1.0; 4],
            &device,
        ));
        let expected = (bce(2.0, 0.0) + bce(-1.0, 1.0) + bce(0.0, 0.0) + bce(3.0, 1.0)) / 4.0;
        assert!((all - expected).abs() < 1e-5, "{all} vs {expected}");
        // ELECTRA 15%: only the (masked) second and third positions count, whatever the
        // discriminator says elsewhere.
        let masked = [0.0, 1.0, 1.0, 0.0];
        let some = value(weighted_bce(
            logits([2.0, -1.0, 0.0, 3.0]),
            &labels,
            &masked,
            &device,
        ));
        let changed = value(weighted_bce(
            logits([-5.0, -1.0, 0.0, 9.0]),
            &labels,
            &masked,
            &device,
        ));
        let expected = (bce(-1.0, 1.0) + bce(0.0, 0.0)) / 2.0;
        assert!((some - expected).abs() < 1e-5, "{some} vs {expected}");
        assert_eq!(some, changed);
    }

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }
}
