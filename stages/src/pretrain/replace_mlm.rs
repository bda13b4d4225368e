//! The masked-LM variants of the paper's efficiency analysis (Section 3.5, Table 5), each a
//! step from BERT towards ELECTRA:
//!
//! - **Replace MLM**: the masked positions are filled with the generator's samples instead of
//!   `[MASK]` (no `[MASK]` is ever read), and the model is trained as a masked LM on them: it
//!   predicts the original token at the masked positions.
//! - **All-Tokens MLM**: as Replace MLM, but the model predicts the identity of every input
//!   token, with the paper's copy mechanism: a sigmoid gate `D` per token, and
//!   `p(x) = D · 1[x = input token] + (1 − D) · softmax(logits)[x]`.
//!
//! The generator (shared embeddings, trained by maximum likelihood) is ELECTRA's; loss = its
//! weighted masked-LM loss + the model's.

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::generator::{corrupt, Generator, GeneratorOptions};
use super::masking::MaskedBatch;
use super::objective::{
    collapse, floats, input, ints, part_of_whole, to_f32, to_u32, token_log_probs, ExportedNetwork,
    PretrainingModel, Role, StepOutput,
};
use super::prior::OutputPrior;
use super::stats::{StepStats, UnitSum};
use super::unigram::UnigramSampler;
use crate::model::config::EncoderConfig;
use crate::model::encoder::{Backbone, Embeddings, Encoder};
use crate::model::heads::MaskedLmHead;
use crate::model::layers::{Dense, Dropout, Init};
use crate::model::ops::cross_entropy;
use crate::model::weights::Network;
use crate::records::pretrain::ObjectiveName;

/// Replace MLM or All-Tokens MLM: a generator and the masked LM it feeds, over shared
/// embeddings.
#[derive(Module, Debug)]
pub struct ReplaceMlm<B: Backend> {
    /// Shared token, position and segment embeddings.
    pub embeddings: Embeddings<B>,
    /// The generator.
    pub generator: Generator<B>,
    /// The transformer that is kept and fine-tuned.
    pub encoder: Encoder<B>,
    /// Its masked-LM head (tied to the shared word embeddings).
    pub head: MaskedLmHead<B>,
    /// All-Tokens MLM's copy gate: hidden state → the logit of `D`.
    pub copy_gate: Option<Dense<B>>,
    /// The shapes.
    #[module(skip)]
    pub shape: ReplaceShape,
}

/// The shapes of a [`ReplaceMlm`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplaceShape {
    /// The kept encoder's shape.
    pub encoder: EncoderConfig,
    /// The generator.
    pub generator: GeneratorOptions,
    /// All-Tokens MLM: predict every token, with the copy gate.
    pub all_tokens: bool,
}

/// What the model is asked to predict, and from what.
struct Targets {
    /// Flat indices `row · s + column` of the predicted positions.
    positions: Vec<u32>,
    /// The original token at each.
    targets: Vec<u32>,
    /// The token the model read there (a sample, or the original).
    read: Vec<u32>,
}

impl<B: Backend> ReplaceMlm<B> {
    /// A fresh model of `shape`; a unigram generator draws with `unigram`.
    ///
    /// # Panics
    /// If the generator is a unigram one and `unigram` is `None`.
    pub fn new(
        init: &mut Init<'_, B>,
        shape: ReplaceShape,
        unigram: Option<UnigramSampler>,
    ) -> Self {
        let config = &shape.encoder;
        ReplaceMlm {
            embeddings: Embeddings::new(init, config),
            generator: Generator::new(init, shape.generator, unigram),
            encoder: Encoder::new(init, config),
            head: MaskedLmHead::new(init, config.hidden, config.embedding, config.vocab_size),
            copy_gate: shape.all_tokens.then(|| Dense::new(init, config.hidden, 1)),
            shape,
        }
    }

    /// The kept encoder over the shared embeddings.
    pub fn backbone(&self) -> Backbone<'_, B> {
        Backbone {
            embeddings: &self.embeddings,
            encoder: &self.encoder,
        }
    }

    /// The positions to predict: the masked ones, or for All-Tokens MLM every real token.
    fn targets(&self, batch: &MaskedBatch, corrupted: &[u32]) -> Targets {
        let positions: Vec<usize> = if self.shape.all_tokens {
            (0..batch.attention.len())
                .filter(|&i| batch.attention[i] > 0.0)
                .collect()
        } else {
            batch.positions.clone()
        };
        Targets {
            targets: positions.iter().map(|&p| batch.original[p]).collect(),
            read: positions.iter().map(|&p| corrupted[p]).collect(),
            positions: positions.iter().map(|&p| p as u32).collect(),
        }
    }

    /// The model's loss on `corrupted`: the masked LM's cross-entropy at the masked positions,
    /// or All-Tokens MLM's at every real token with the copy gate (see [`copy_loss`]); also
    /// its accuracy and the final hidden states (for the collapse statistic). The loss and
    /// accuracy are the batch's part of the whole batch's (see [`MaskedBatch::split`]).
    pub fn model_loss(
        &self,
        batch: &MaskedBatch,
        corrupted: &[u32],
        dropout: &mut Dropout,
        device: &B::Device,
    ) -> (Tensor<B, 1>, f64, UnitSum) {
        let backbone = self.backbone();
        let hidden = backbone.forward(&input(batch, corrupted, device), dropout);
        let states = collapse(hidden.clone(), batch);
        let wanted = self.targets(batch, corrupted);
        let n = wanted.positions.len();
        let positions = ints::<B, 1>(&wanted.positions, [n], device);
        let logits = self.head.forward(
            hidden.clone(),
            positions.clone(),
            backbone.embeddings.word.val(),
        );
        let (loss, accuracy) = match &self.copy_gate {
            None => cross_entropy(logits, &wanted.targets),
            Some(gate) => {
                let [b, s, h] = hidden.dims();
                let picked = hidden.reshape([b * s, h]).select(0, positions); // [n, h]
                let gate_logits = gate.forward(picked); // [n, 1]
                copy_loss(logits, gate_logits, &wanted, device)
            }
        };
        let share = if self.shape.all_tokens {
            batch.token_share()
        } else {
            batch.masked_share()
        };
        (part_of_whole(loss, share), accuracy * share, states)
    }
}

/// All-Tokens MLM's loss: with `D = σ(gate)` and `q = softmax(logits)[target]`, the mean over
/// the predicted tokens of `−ln(D · 1[target = read] + (1 − D) · q)`; and the share predicted
/// right (the input token where `D > ½`, else the argmax).
fn copy_loss<B: Backend>(
    logits: Tensor<B, 2>,
    gate_logits: Tensor<B, 2>,
    wanted: &Targets,
    device: &B::Device,
) -> (Tensor<B, 1>, f64) {
    let n = wanted.targets.len();
    let argmax = to_u32(logits.clone().detach().argmax(1));
    let copies: Vec<bool> = to_f32(gate_logits.clone().detach())
        .iter()
        .map(|&g| g > 0.0)
        .collect();
    let correct = (0..n)
        .filter(|&i| {
            let predicted = if copies[i] { wanted.read[i] } else { argmax[i] };
            predicted == wanted.targets[i]
        })
        .count();
    let targets = ints::<B, 2>(&wanted.targets, [n, 1], device);
    let log_q = log_softmax(logits, 1).gather(1, targets); // [n, 1]
                                                           // ln D = −softplus(−g), ln(1 − D) = −softplus(g); softplus(x) = max(x, 0) + ln(1 + e^−|x|).
    let softplus = |x: Tensor<B, 2>| x.clone().clamp_min(0.0) + (x.abs().neg().exp() + 1.0).log();
    let log_copy = -softplus(-gate_logits.clone());
    let log_predict = -softplus(gate_logits) + log_q; // ln((1 − D) q)
    let same: Vec<f32> = wanted
        .targets
        .iter()
        .zip(&wanted.read)
        .map(|(t, r)| f32::from(u8::from(t == r)))
        .collect();
    let same = floats::<B, 2>(same, [n, 1], device);
    // ln(e^a + e^b) = m + ln(e^(a−m) + e^(b−m)), m = max(a, b).
    let top = log_copy.clone().max_pair(log_predict.clone());
    let either =
        top.clone() + ((log_copy - top.clone()).exp() + (log_predict.clone() - top).exp()).log();
    let log_p = same.clone() * either + (-same + 1.0) * log_predict;
    (-log_p.mean().reshape([1]), correct as f64 / n.max(1) as f64)
}

impl<B: Backend> PretrainingModel<B> for ReplaceMlm<B> {
    fn objective(&self) -> ObjectiveName {
        if self.shape.all_tokens {
            ObjectiveName::AllTokensMlm
        } else {
            ObjectiveName::ReplaceMlm
        }
    }

    /// The generator's masked LM and its samples in the masked positions, then the model's
    /// masked-LM loss on the result. The step log's MLM loss and accuracy are the model's.
    fn step(
        &self,
        batch: &MaskedBatch,
        dropout: &mut Dropout,
        device: &B::Device,
    ) -> StepOutput<B> {
        let samples = self
            .generator
            .sample(self.backbone(), batch, dropout, device);
        let corrupted = corrupt(batch, &samples.tokens);
        let (model_loss, accuracy, states) = self.model_loss(batch, &corrupted, dropout, device);
        let mlm_loss = f64::from(to_f32(model_loss.clone().detach())[0]);
        let loss = match samples.loss {
            Some(generator) => generator + model_loss,
            None => model_loss,
        };
        StepOutput {
            stats: StepStats {
                mlm_loss,
                loss: f64::from(to_f32(loss.clone().detach())[0]),
                mlm_accuracy: accuracy,
                states,
                masked: batch.positions.len(),
                tokens: batch.tokens(),
                ..StepStats::default()
            }
            .finished(),
            loss,
        }
    }

    fn exports(&self) -> Vec<ExportedNetwork> {
        self.shape.generator.exports_after(ExportedNetwork {
            role: Role::Kept,
            network: Network::BERT,
            config: self.shape.encoder,
        })
    }

    fn with_output_prior(self, prior: &OutputPrior, device: &B::Device) -> Self {
        ReplaceMlm {
            generator: self
                .generator
                .with_output_bias(token_log_probs(prior, device)),
            head: self.head.with_bias(token_log_probs(prior, device)),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::Preset;
    use crate::pretrain::generator::GeneratorShape;
    use crate::pretrain::masking::{mask_batch, MaskingOptions, Replacement};
    use crate::pretrain_data::Batch;
    use crate::tokenizer::SpecialIds;
    use burn::backend::Flex;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    type B = Flex;
    const SPECIAL: SpecialIds = SpecialIds::LEADING;

    #[test]
    fn the_copy_loss_mixes_copying_the_input_and_the_softmax() {
        let device = Default::default();
        // Two tokens over a vocabulary of three. The first was read as it is (read 2, target
        // 2), the second was replaced (read 0, target 1).
        let logits = [0.5f32, -1.0, 2.0, 1.0, 0.0, -0.5];
        let gates = [0.3f32, -1.2];
        let wanted = Targets {
            positions: vec![0, 1],
            targets: vec![2, 1],
            read: vec![2, 0],
        };
        let (loss, accuracy) = copy_loss(
            floats::<B, 2>(logits.to_vec(), [2, 3], &device),
            floats::<B, 2>(gates.to_vec(), [2, 1], &device),
            &wanted,
            &device,
        );
        let softmax = |row: &[f32], i: usize| {
            let z: f64 = row.iter().map(|&x| f64::from(x).exp()).sum();
            f64::from(row[i]).exp() / z
        };
        let d = |g: f32| 1.0 / (1.0 + (-f64::from(g)).exp());
        let (d0, d1) = (d(gates[0]), d(gates[1]));
        assert!(d0 > 0.0 && d0 < 1.0 && d1 > 0.0 && d1 < 1.0);
        let p0 = d0 + (1.0 - d0) * softmax(&logits[..3], 2);
        let p1 = (1.0 - d1) * softmax(&logits[3..], 1);
        let expected = -(p0.ln() + p1.ln()) / 2.0;
        let got = f64::from(to_f32(loss)[0]);
        assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
        // The first copies (D > ½) and is right; the second's argmax is 0, not 1.
        assert_eq!(accuracy, 0.5);
    }

    #[test]
    fn replace_mlm_reads_no_mask_and_all_tokens_mlm_predicts_every_real_token() {
        let device = Default::default();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        // Two rows of 12, the second padded after 8; ids 5..20 are words.
        let mut ids: Vec<u32> = (0..24).map(|i| 5 + (i % 15)).collect();
        ids[0] = SPECIAL.cls;
        ids[11] = SPECIAL.sep;
        ids[12] = SPECIAL.cls;
        ids[19] = SPECIAL.sep;
        ids[20..].fill(SPECIAL.pad);
        let batch = Batch {
            batch_size: 2,
            seq_len: 12,
            input_ids: ids,
            segment_ids: vec![0; 24],
            lengths: vec![12, 8],
        };
        let options = MaskingOptions {
            mask_prob: 0.3,
            max_predictions: 4,
            replacement: Replacement::Electra,
        };
        let masked = mask_batch(&batch, SPECIAL, 20, &options, &mut rng);
        let counts: Vec<u64> = (0..20).map(|id| u64::from(id >= 5)).collect();
        let sampler = UnigramSampler::new(&counts, SPECIAL, 1.0);
        let config = Preset::Tiny.encoder(20);
        for all_tokens in [false, true] {
            let shape = ReplaceShape {
                encoder: config,
                generator: GeneratorOptions {
                    shape: GeneratorShape::Unigram,
                    temperature: 1.0,
                    weight: 1.0,
                    sharing: crate::pretrain::generator::WeightSharing::Embeddings,
                },
                all_tokens,
            };
            let mut init_rng = ChaCha8Rng::seed_from_u64(0);
            let model = ReplaceMlm::<B>::new(
                &mut Init {
                    device: &device,
                    rng: &mut init_rng,
                },
                shape,
                Some(sampler.clone()),
            );
            let samples =
                model
                    .generator
                    .sample(model.backbone(), &masked, &mut Dropout::Off, &device);
            let corrupted = corrupt(&masked, &samples.tokens);
            assert!(
                masked.masked.contains(&SPECIAL.mask),
                "the generator reads [MASK]"
            );
            assert!(!corrupted.contains(&SPECIAL.mask), "the model never does");
            let wanted = model.targets(&masked, &corrupted);
            if all_tokens {
                assert_eq!(wanted.positions.len(), 12 + 8);
                assert!(model.copy_gate.is_some());
            } else {
                assert_eq!(wanted.positions.len(), masked.positions.len());
                assert!(model.copy_gate.is_none());
            }
            assert!(wanted
                .positions
                .iter()
                .zip(&wanted.targets)
                .all(|(&p, &t)| batch.input_ids[p as usize] == t));
            let (loss, _, _) = model.model_loss(&masked, &corrupted, &mut Dropout::Off, &device);
            assert!(to_f32(loss)[0].is_finite());
        }
    }
}
