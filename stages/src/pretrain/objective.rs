//! The two pretraining objectives, each a model and its loss:
//!
//! - **ELECTRA**: a small generator (masked LM) fills the masked positions with tokens sampled
//!   from its softmax; the discriminator reads the corrupted sequence and predicts, for every
//!   real token, whether it was replaced. A sampled token equal to the original counts as
//!   real. Loss = w · MLM loss + λ · binary cross-entropy (w = 1, λ = 50); no gradient flows
//!   through the sample, which is drawn at a temperature (1, as the paper's; the official
//!   code's option). Generator and discriminator share the token, position and segment
//!   embeddings.
//! - **BERT**: the same encoder with a masked-LM head.
//!
//! Both implement [`PretrainingModel`], all the training loop knows of them.

use burn::module::Module;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::masking::MaskedBatch;
use super::prior::OutputPrior;
use super::stats::{discriminator_stats, mean_pairwise_cosine, StepStats};
use super::unigram::UnigramSampler;
use crate::model::config::EncoderConfig;
use crate::model::encoder::{Backbone, Embeddings, Encoder, EncoderInput};
use crate::model::heads::{MaskedLmHead, ReplacedTokenHead};
use crate::model::layers::{Dropout, Init};
use crate::model::weights::Network;
use crate::records::pretrain::ObjectiveName;

/// ELECTRA: generator and discriminator over shared embeddings.
#[derive(Module, Debug)]
pub struct Electra<B: Backend> {
    /// Shared token, position and segment embeddings.
    pub embeddings: Embeddings<B>,
    /// The generator's transformer (¼ width by default); none for a unigram generator.
    pub generator: Option<Encoder<B>>,
    /// The generator's masked-LM head (tied to the shared word embeddings).
    pub generator_head: Option<MaskedLmHead<B>>,
    /// The discriminator's transformer: the model that is kept and fine-tuned.
    pub discriminator: Encoder<B>,
    /// The replaced-token-detection head.
    pub discriminator_head: ReplacedTokenHead<B>,
    /// The two networks' shapes and the weight λ of the discriminator's loss.
    #[module(skip)]
    pub shape: ElectraShape,
    /// A unigram generator's sampler.
    #[module(skip)]
    pub unigram: Option<UnigramSampler>,
}

/// What fills ELECTRA's masked positions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Generator {
    /// A small masked LM of this shape, trained with the discriminator (the paper's).
    MaskedLm(EncoderConfig),
    /// Draws from the corpus's unigram distribution ([`UnigramSampler`]): no network.
    Unigram,
}

impl Generator {
    /// The masked LM's shape, if there is one.
    pub fn network(&self) -> Option<EncoderConfig> {
        match self {
            Generator::MaskedLm(config) => Some(*config),
            Generator::Unigram => None,
        }
    }
}

/// ELECTRA's shapes and loss weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ElectraShape {
    /// The discriminator's shape.
    pub discriminator: EncoderConfig,
    /// The generator.
    pub generator: Generator,
    /// Weight λ of the discriminator's loss.
    pub lambda: f64,
    /// The temperature the generator's softmax is sampled at.
    pub temperature: f64,
    /// Weight of the generator's masked-LM loss (1).
    pub generator_weight: f64,
}

/// BERT: one encoder with a masked-LM head.
#[derive(Module, Debug)]
pub struct Bert<B: Backend> {
    /// Token, position and segment embeddings.
    pub embeddings: Embeddings<B>,
    /// The transformer.
    pub encoder: Encoder<B>,
    /// The masked-LM head (tied to the word embeddings).
    pub head: MaskedLmHead<B>,
    /// Its shape.
    #[module(skip)]
    pub config: EncoderConfig,
}

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
    /// The objective's name in exported files.
    const OBJECTIVE: ObjectiveName;

    /// One forward pass of the objective on `batch`: the loss to back-propagate and the
    /// step's measurements. `rng` supplies the objective's own draws (ELECTRA's samples).
    fn step(
        &self,
        batch: &MaskedBatch,
        dropout: &mut Dropout<'_>,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> StepOutput<B>;

    /// The networks it exports, the kept one first.
    fn exports(&self) -> Vec<ExportedNetwork>;

    /// The model with its output heads' biases at `prior` (`output_bias: prior`).
    fn with_output_prior(self, prior: &OutputPrior, device: &B::Device) -> Self;
}

/// The masked-LM bias of `prior` as a tensor.
fn token_log_probs<B: Backend>(prior: &OutputPrior, device: &B::Device) -> Tensor<B, 1> {
    Tensor::from_floats(prior.token_log_probs.as_slice(), device)
}

/// A step's loss (to back-propagate) and its measurements.
pub struct StepOutput<B: Backend> {
    /// Scalar loss.
    pub loss: Tensor<B, 1>,
    /// Measurements.
    pub stats: StepStats,
}

fn ints<B: Backend, const D: usize>(
    values: &[u32],
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D, Int> {
    let data: Vec<i64> = values.iter().map(|&v| i64::from(v)).collect();
    Tensor::from_data(TensorData::new(data, shape), device)
}

fn floats<B: Backend, const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn to_f32<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor.into_data().iter::<f32>().collect()
}

fn to_u32<B: Backend, const D: usize>(tensor: Tensor<B, D, Int>) -> Vec<u32> {
    tensor.into_data().iter::<i64>().map(|v| v as u32).collect()
}

/// `ids` (the batch's masked or corrupted token ids) with the batch's segments and padding,
/// on the device.
fn input<B: Backend>(batch: &MaskedBatch, ids: &[u32], device: &B::Device) -> EncoderInput<B> {
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
fn masked_lm_logits<B: Backend>(
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
fn collapse<B: Backend>(hidden: Tensor<B, 3>, batch: &MaskedBatch) -> f64 {
    let h = hidden.dims()[2];
    mean_pairwise_cosine(&to_f32(hidden.detach()), h, &batch.attention)
}

/// Mean cross-entropy of `logits` `[n, V]` against `targets`; also the argmax accuracy.
fn masked_lm_loss<B: Backend>(
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
fn sample_tokens<B: Backend>(
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
        let embeddings = Embeddings::new(init, discriminator);
        let (generator, generator_head, unigram) = match shape.generator {
            Generator::MaskedLm(config) => (
                Some(Encoder::new(init, &config)),
                Some(MaskedLmHead::new(
                    init,
                    config.hidden,
                    config.embedding,
                    config.vocab_size,
                )),
                None,
            ),
            Generator::Unigram => (
                None,
                None,
                Some(unigram.expect("a unigram generator needs the corpus's sampler")),
            ),
        };
        Electra {
            embeddings,
            generator,
            generator_head,
            discriminator: Encoder::new(init, discriminator),
            discriminator_head: ReplacedTokenHead::new(init, discriminator.hidden),
            shape,
            unigram,
        }
    }

    /// The generator: its encoder over the shared embeddings, with its head (none for a
    /// unigram generator).
    pub fn generator_backbone(&self) -> Option<(Backbone<'_, B>, &MaskedLmHead<B>)> {
        let encoder = self.generator.as_ref()?;
        let head = self.generator_head.as_ref()?;
        Some((
            Backbone {
                embeddings: &self.embeddings,
                encoder,
            },
            head,
        ))
    }

    /// The discriminator: its encoder over the shared embeddings.
    pub fn discriminator_backbone(&self) -> Backbone<'_, B> {
        Backbone {
            embeddings: &self.embeddings,
            encoder: &self.discriminator,
        }
    }
}

impl<B: Backend> PretrainingModel<B> for Electra<B> {
    const OBJECTIVE: ObjectiveName = ObjectiveName::Electra;

    /// The generator's masked LM, its samples in the masked positions, and the discriminator's
    /// loss on the result, weighted by λ. `rng` supplies the samples.
    fn step(
        &self,
        batch: &MaskedBatch,
        dropout: &mut Dropout<'_>,
        rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> StepOutput<B> {
        // Generator: a masked LM on the masked input, or the corpus's unigram distribution;
        // a sample for every masked position.
        let (sampled, generator_loss, mlm_loss, mlm_accuracy) =
            match (self.generator_backbone(), &self.unigram) {
                (Some((backbone, head)), _) => {
                    let (logits, _) = masked_lm_logits(backbone, head, batch, dropout, device);
                    let sampled = sample_tokens(logits.clone(), self.shape.temperature, rng);
                    let (loss, accuracy) = masked_lm_loss(logits, &batch.targets, device);
                    let value = f64::from(to_f32(loss.clone().detach())[0]);
                    (sampled, Some(loss), value, accuracy)
                }
                (None, Some(unigram)) => {
                    let sampled = batch
                        .positions
                        .iter()
                        .map(|_| unigram.sample(rng))
                        .collect();
                    let (value, accuracy) = unigram.masked_lm_loss(&batch.targets);
                    (sampled, None, value, accuracy)
                }
                (None, None) => unreachable!("Electra::new gives every model a generator"),
            };

        // Discriminator: which tokens of the corrupted input were replaced?
        let mut corrupted = batch.original.clone();
        for (&p, &token) in batch.positions.iter().zip(&sampled) {
            corrupted[p] = token;
        }
        let (bce, mut stats) = self.discriminator_loss(batch, &corrupted, dropout, device);
        let weighted = bce * self.shape.lambda;
        let loss = match generator_loss {
            Some(mlm) => mlm * self.shape.generator_weight + weighted,
            None => weighted,
        };
        stats.mlm_accuracy = mlm_accuracy;
        stats.masked = batch.positions.len();
        stats.mlm_loss = mlm_loss;
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
            .network()
            .map(|config| ExportedNetwork {
                role: Role::Generator,
                network: Network::GENERATOR,
                config,
            });
        std::iter::once(kept).chain(generator).collect()
    }

    fn with_output_prior(self, prior: &OutputPrior, device: &B::Device) -> Self {
        Electra {
            generator_head: self
                .generator_head
                .map(|head| head.with_bias(token_log_probs(prior, device))),
            discriminator_head: self.discriminator_head.with_bias(prior.replaced_logit),
            ..self
        }
    }
}

impl<B: Backend> Electra<B> {
    /// The discriminator's loss on `corrupted` (the batch's original ids with some replaced):
    /// binary cross-entropy of "was this token replaced?" over the real tokens, with its
    /// accuracy, the all-original baseline, precision and recall in the stats.
    pub fn discriminator_loss(
        &self,
        batch: &MaskedBatch,
        corrupted: &[u32],
        dropout: &mut Dropout<'_>,
        device: &B::Device,
    ) -> (Tensor<B, 1>, StepStats) {
        let (b, s) = (batch.batch_size, batch.seq_len);
        let labels: Vec<f32> = corrupted
            .iter()
            .zip(&batch.original)
            .map(|(c, o)| f32::from(u8::from(c != o)))
            .collect();
        let input = input(batch, corrupted, device);
        let hidden = self.discriminator_backbone().forward(&input, dropout);
        let hidden_cosine = collapse(hidden.clone(), batch);
        let attention = input.attention;
        let logits = self.discriminator_head.forward(hidden); // [b, s]
        let y = floats::<B, 2>(labels.clone(), [b, s], device);
        // Binary cross-entropy with logits, stable form: max(x, 0) − x·y + log(1 + e^−|x|).
        let x = logits.clone();
        let per_token =
            x.clone().clamp_min(0.0) - x.clone() * y + (x.abs().neg().exp() + 1.0).log();
        let real = batch.attention.iter().filter(|&&a| a > 0.0).count();
        let bce = (per_token * attention).sum() / real.max(1) as f64;
        let mut stats = StepStats {
            tokens: real,
            hidden_cosine,
            ..StepStats::default()
        };
        discriminator_stats(
            &mut stats,
            &to_f32(logits.detach()),
            &labels,
            &batch.attention,
        );
        stats.bce_loss = f64::from(to_f32(bce.clone().detach())[0]);
        (bce, stats)
    }
}

impl<B: Backend> Bert<B> {
    /// A fresh model of `config`'s shape.
    pub fn new(init: &mut Init<'_, B>, config: &EncoderConfig) -> Self {
        Bert {
            embeddings: Embeddings::new(init, config),
            encoder: Encoder::new(init, config),
            head: MaskedLmHead::new(init, config.hidden, config.embedding, config.vocab_size),
            config: *config,
        }
    }

    /// The encoder over its embeddings.
    pub fn backbone(&self) -> Backbone<'_, B> {
        Backbone {
            embeddings: &self.embeddings,
            encoder: &self.encoder,
        }
    }
}

impl<B: Backend> PretrainingModel<B> for Bert<B> {
    const OBJECTIVE: ObjectiveName = ObjectiveName::Bert;

    /// The masked-LM loss on `batch` (BERT draws nothing but its masks).
    fn step(
        &self,
        batch: &MaskedBatch,
        dropout: &mut Dropout<'_>,
        _rng: &mut ChaCha8Rng,
        device: &B::Device,
    ) -> StepOutput<B> {
        let (logits, hidden) =
            masked_lm_logits(self.backbone(), &self.head, batch, dropout, device);
        let (loss, mlm_accuracy) = masked_lm_loss(logits, &batch.targets, device);
        let value = f64::from(to_f32(loss.clone().detach())[0]);
        StepOutput {
            loss,
            stats: StepStats {
                mlm_loss: value,
                loss: value,
                mlm_accuracy,
                hidden_cosine: collapse(hidden, batch),
                masked: batch.positions.len(),
                tokens: batch.attention.iter().filter(|&&a| a > 0.0).count(),
                ..StepStats::default()
            },
        }
    }

    fn exports(&self) -> Vec<ExportedNetwork> {
        vec![ExportedNetwork {
            role: Role::Kept,
            network: Network::BERT,
            config: self.config,
        }]
    }

    fn with_output_prior(self, prior: &OutputPrior, device: &B::Device) -> Self {
        Bert {
            head: self.head.with_bias(token_log_probs(prior, device)),
            ..self
        }
    }
}
