//! ELECTRA: a generator fills the masked positions with its samples; the discriminator reads
//! the corrupted sequence and predicts, for every real token, whether it was replaced (a
//! sample equal to the original counts as real). Loss = w · MLM loss + λ · binary
//! cross-entropy (w = 1, λ = 50). Generator and discriminator share the token, position and
//! segment embeddings.
//!
//! **ELECTRA 15%** (the paper's Table 5) is the same model whose discriminator loss comes only
//! from the masked positions.
//!
//! **Two-stage training** (the paper's Figure 3, right): the generator is trained alone for
//! the first steps; then the discriminator starts from its weights (so it must be the same
//! size) and is trained with the generator frozen.

use std::path::Path;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::generator::{corrupt, Generator, GeneratorOptions, GeneratorShape, WeightSharing};
use super::masking::MaskedBatch;
use super::objective::{
    collapse, floats, input, part_of_whole, to_f32, token_log_probs, ExportedNetwork,
    PretrainingModel, Role, StepOutput,
};
use super::prior::OutputPrior;
use super::stats::StepStats;
use super::unigram::UnigramSampler;
use crate::error::Result;
use crate::model::config::EncoderConfig;
use crate::model::encoder::{Backbone, Embeddings, Encoder};
use crate::model::heads::ReplacedTokenHead;
use crate::model::layers::{Dropout, Init};
use crate::model::weights::{load_named, named_tensors, Network};
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
    /// Two-stage training: the steps that train the generator alone.
    pub generator_steps: Option<u64>,
    /// Whether this step trains the generator alone (set by [`PretrainingModel::before_step`]).
    pub generator_only: bool,
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
                sharing: WeightSharing::Embeddings,
            },
            lambda: 50.0,
            masked_only: false,
            generator_steps: None,
            generator_only: false,
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
    /// stats. The loss is the batch's part of the whole batch's (see [`MaskedBatch::split`]).
    pub fn discriminator_loss(
        &self,
        batch: &MaskedBatch,
        corrupted: &[u32],
        scored: &[f32],
        dropout: &mut Dropout,
        device: &B::Device,
    ) -> (Tensor<B, 1>, StepStats) {
        let labels: Vec<f32> = corrupted
            .iter()
            .zip(&batch.original)
            .map(|(c, o)| f32::from(u8::from(c != o)))
            .collect();
        let input = input(batch, corrupted, device);
        let hidden = self.discriminator_backbone().forward(&input, dropout);
        let states = collapse(hidden.clone(), batch);
        let logits = self.discriminator_head.forward(hidden); // [b, s]
        let share = if self.shape.masked_only {
            batch.masked_share()
        } else {
            batch.token_share()
        };
        let bce = part_of_whole(weighted_bce(logits.clone(), &labels, scored, device), share);
        let mut stats = StepStats {
            tokens: batch.tokens(),
            states,
            bce_loss: f64::from(to_f32(bce.clone().detach())[0]),
            ..StepStats::default()
        };
        stats.score_discriminator(&to_f32(logits.detach()), &labels, scored);
        (bce, stats.finished())
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
        dropout: &mut Dropout,
        device: &B::Device,
    ) -> StepOutput<B> {
        let samples = self
            .generator
            .sample(self.discriminator_backbone(), batch, dropout, device);
        let mut stats = StepStats {
            tokens: batch.tokens(),
            ..StepStats::default()
        };
        let loss = if self.shape.generator_only {
            // Two-stage training's first stage: the generator alone.
            samples
                .loss
                .expect("two-stage training has a masked-LM generator")
        } else {
            let corrupted = corrupt(batch, &samples.tokens);
            let scored = self.scored_positions(batch);
            let (bce, disc_stats) =
                self.discriminator_loss(batch, &corrupted, &scored, dropout, device);
            stats = disc_stats;
            let weighted = bce * self.shape.lambda;
            match samples.loss {
                // The second stage's generator is frozen: its loss is left out.
                Some(mlm) if self.shape.generator_steps.is_none() => mlm + weighted,
                _ => weighted,
            }
        };
        stats.mlm_accuracy = samples.mlm_accuracy;
        stats.masked = batch.positions.len();
        stats.mlm_loss = samples.mlm_loss;
        stats.loss = f64::from(to_f32(loss.clone().detach())[0]);
        StepOutput { loss, stats }
    }

    /// Two-stage training: the generator alone before `generator_steps`; at that step the
    /// discriminator (and, if the generator has its own, the embeddings) start from the
    /// generator's weights.
    fn before_step(self, step: u64, device: &B::Device) -> Result<Self> {
        let Some(switch) = self.shape.generator_steps else {
            return Ok(self);
        };
        let shape = ElectraShape {
            generator_only: step < switch,
            ..self.shape
        };
        let mut model = Electra { shape, ..self };
        if step == switch {
            let source = Path::new("the generator of two-stage training");
            if let Some(encoder) = &model.generator.encoder {
                let tensors = named_tensors(encoder);
                model.discriminator = load_named(model.discriminator, &tensors, device, source)?;
            }
            if let Some(embeddings) = &model.generator.embeddings {
                let tensors = named_tensors(embeddings);
                model.embeddings = load_named(model.embeddings, &tensors, device, source)?;
            }
        }
        Ok(model)
    }

    fn exports(&self) -> Vec<ExportedNetwork> {
        self.shape.generator.exports_after(ExportedNetwork {
            role: Role::Kept,
            network: Network::DISCRIMINATOR,
            config: self.shape.discriminator,
        })
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
    use burn::optim::GradientsParams;

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

    #[test]
    fn two_stage_training_starts_the_discriminator_from_the_frozen_generator() {
        use crate::model::config::Preset;
        use crate::model::weights::named_tensors;
        use crate::pretrain::masking::{mask_batch, MaskingOptions, Replacement};
        use crate::pretrain_data::Batch;
        use crate::tokenizer::SpecialIds;
        use crate::training::optimizer::{AdamW, AdamWSettings};
        use burn::backend::Autodiff;
        use rand::SeedableRng;
        use rand_chacha::ChaCha8Rng;

        type A = Autodiff<Flex>;
        let device = Default::default();
        let config = Preset::Tiny.encoder(30);
        let mut shape = ElectraShape::paper(config);
        shape.generator.shape = GeneratorShape::MaskedLm(config.generator(1.0, 1.0));
        shape.generator_steps = Some(2);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut model = Electra::<A>::new(
            &mut Init {
                device: &device,
                rng: &mut rng,
            },
            shape,
            None,
        );
        let ids: Vec<u32> = (0..32).map(|i| 5 + (i % 25)).collect();
        let batch = Batch {
            batch_size: 2,
            seq_len: 16,
            input_ids: ids,
            segment_ids: vec![0; 32],
            lengths: vec![16, 16],
        };
        let options = MaskingOptions {
            mask_prob: 0.25,
            max_predictions: 4,
            replacement: Replacement::Electra,
        };
        let generator = |m: &Electra<A>| named_tensors(m.generator.encoder.as_ref().unwrap());
        let discriminator = |m: &Electra<A>| named_tensors(&m.discriminator);
        let initial_discriminator = discriminator(&model);
        let mut optimizer = AdamW::<A>::new(AdamWSettings::default());
        let mut at_switch = None;
        for step in 0..4 {
            model = model.before_step(step, &device).unwrap();
            assert_eq!(model.shape.generator_only, step < 2);
            if step == 2 {
                // The discriminator starts where the generator got to.
                assert_eq!(discriminator(&model), generator(&model));
                at_switch = Some(generator(&model));
            }
            let masked = mask_batch(&batch, SpecialIds::LEADING, 30, &options, &mut rng);
            let output = model.step(&masked, &mut Dropout::Off, &device);
            if step < 2 {
                assert_eq!(output.stats.bce_loss, 0.0);
            } else {
                assert!(output.stats.bce_loss > 0.0);
            }
            let grads = GradientsParams::from_grads(output.loss.backward(), &model);
            model = optimizer.step(model, grads, 1e-3).0;
            if step < 2 {
                assert_eq!(discriminator(&model), initial_discriminator, "untouched");
            }
        }
        // The second stage trained the discriminator and left the generator as it was.
        assert_eq!(Some(generator(&model)), at_switch);
        assert_ne!(Some(discriminator(&model)), at_switch);
    }

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }
}
