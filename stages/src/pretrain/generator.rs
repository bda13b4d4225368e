//! The generator of the objectives that corrupt their input with samples (ELECTRA, ELECTRA
//! 15%, Replace MLM, All-Tokens MLM): a small masked LM over the shared embeddings, trained
//! by maximum likelihood with the model it feeds, or the corpus's unigram distribution. For
//! every masked position it draws a replacement from its softmax at a temperature, with no
//! gradient through the draw.

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::masking::MaskedBatch;
use super::objective::{
    masked_lm_logits, part_of_whole, sample_tokens, to_f32, ExportedNetwork, Role,
};
use super::unigram::UnigramSampler;
use crate::model::config::EncoderConfig;
use crate::model::encoder::{Backbone, Embeddings, Encoder};
use crate::model::heads::MaskedLmHead;
use crate::model::layers::{Dropout, Init};
use crate::model::ops::cross_entropy;
use crate::model::weights::Network;

/// What a generator is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GeneratorShape {
    /// A small masked LM of this shape, trained with the model it feeds (the paper's).
    MaskedLm(EncoderConfig),
    /// Draws from the corpus's unigram distribution ([`UnigramSampler`]): no network.
    Unigram,
}

impl GeneratorShape {
    /// The masked LM's shape, if there is one.
    pub fn network(&self) -> Option<EncoderConfig> {
        match self {
            GeneratorShape::MaskedLm(config) => Some(*config),
            GeneratorShape::Unigram => None,
        }
    }
}

/// Which weights a generator shares with the model it feeds (the paper's Section 3.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightSharing {
    /// The token, position and segment embeddings (the paper's).
    #[default]
    Embeddings,
    /// Nothing: the generator has embeddings of its own (the official
    /// `untied_generator_embeddings`).
    None,
    /// Every weight of the encoder and its embeddings (the official `untied_generator:
    /// false`); only the heads are the generator's own, and it must be the model's size.
    All,
}

/// A generator's shape and how it is used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeneratorOptions {
    /// What it is.
    pub shape: GeneratorShape,
    /// The temperature its softmax is sampled at (1, the paper's).
    pub temperature: f64,
    /// The weight of its masked-LM loss in the total (1, the official `gen_weight`).
    pub weight: f64,
    /// The weights it shares with the model it feeds.
    pub sharing: WeightSharing,
}

impl GeneratorOptions {
    /// Where the generator's exported network sits in a model whose kept encoder is the
    /// module `kept_encoder` (`discriminator`, or `encoder`).
    pub fn network(&self, kept_encoder: &'static str) -> Network {
        match self.sharing {
            WeightSharing::Embeddings => Network::GENERATOR,
            WeightSharing::None => Network {
                embeddings: "generator.embeddings",
                ..Network::GENERATOR
            },
            WeightSharing::All => Network {
                encoder: kept_encoder,
                ..Network::GENERATOR
            },
        }
    }

    /// A model's exports: its `kept` network, then the generator's if it is a network.
    pub fn exports_after(&self, kept: ExportedNetwork) -> Vec<ExportedNetwork> {
        let generator = self.shape.network().map(|config| ExportedNetwork {
            role: Role::Generator,
            network: self.network(kept.network.encoder),
            config,
        });
        std::iter::once(kept).chain(generator).collect()
    }
}

/// A generator: its transformer and masked-LM head (tied to the word embeddings), or a unigram
/// sampler.
#[derive(Module, Debug)]
pub struct Generator<B: Backend> {
    /// Its own embeddings (with `weight_sharing: none`).
    pub embeddings: Option<Embeddings<B>>,
    /// Its transformer (¼ of the discriminator's width by default; none with `weight_sharing:
    /// all`, when it is the model's).
    pub encoder: Option<Encoder<B>>,
    /// Its masked-LM head.
    pub head: Option<MaskedLmHead<B>>,
    /// A unigram generator's sampler.
    #[module(skip)]
    pub unigram: Option<UnigramSampler>,
    /// Its shape and use.
    #[module(skip)]
    pub options: GeneratorOptions,
}

/// What a generator produced for one step.
pub struct Samples<B: Backend> {
    /// One replacement per masked position, in the batch's order of positions.
    pub tokens: Vec<u32>,
    /// Its masked-LM loss, weighted, to back-propagate (none for a unigram generator); as
    /// every mean below, the batch's part of the whole batch's (see
    /// [`MaskedBatch::masked_share`]).
    pub loss: Option<Tensor<B, 1>>,
    /// Its masked-LM cross-entropy on the masked positions, for the step log.
    pub mlm_loss: f64,
    /// The share of masked positions its argmax predicts.
    pub mlm_accuracy: f64,
}

impl<B: Backend> Generator<B> {
    /// A fresh generator; a unigram one draws with `unigram`.
    ///
    /// # Panics
    /// If the generator is a unigram one and `unigram` is `None`.
    pub fn new(
        init: &mut Init<'_, B>,
        options: GeneratorOptions,
        unigram: Option<UnigramSampler>,
    ) -> Self {
        match options.shape {
            GeneratorShape::MaskedLm(config) => Generator {
                embeddings: (options.sharing == WeightSharing::None)
                    .then(|| Embeddings::new(init, &config)),
                encoder: (options.sharing != WeightSharing::All)
                    .then(|| Encoder::new(init, &config)),
                head: Some(MaskedLmHead::new(
                    init,
                    config.hidden,
                    config.embedding,
                    config.vocab_size,
                )),
                unigram: None,
                options,
            },
            GeneratorShape::Unigram => Generator {
                embeddings: None,
                encoder: None,
                head: None,
                unigram: Some(unigram.expect("a unigram generator needs the corpus's sampler")),
                options,
            },
        }
    }

    /// The generator with its masked-LM head's bias at `bias` `[V]` (a starting point).
    pub fn with_output_bias(self, bias: Tensor<B, 1>) -> Self {
        Generator {
            head: self.head.map(|head| head.with_bias(bias)),
            ..self
        }
    }

    /// A replacement for every masked position of `batch`: the masked LM reads the masked
    /// input over its own embeddings or the `shared` ones, with its own encoder or, when all
    /// weights are shared, the model's (`shared`'s); each from its position's replacement draw.
    pub fn sample(
        &self,
        shared: Backbone<'_, B>,
        batch: &MaskedBatch,
        dropout: &mut Dropout,
        device: &B::Device,
    ) -> Samples<B> {
        let share = batch.masked_share();
        match (&self.head, &self.unigram) {
            (Some(head), _) => {
                let backbone = Backbone {
                    embeddings: self.embeddings.as_ref().unwrap_or(shared.embeddings),
                    encoder: self.encoder.as_ref().unwrap_or(shared.encoder),
                };
                let (logits, _) = masked_lm_logits(backbone, head, batch, dropout, device);
                let tokens = sample_tokens(
                    logits.clone(),
                    self.options.temperature,
                    &batch.replacement_draws,
                );
                let (loss, mlm_accuracy) = cross_entropy(logits, &batch.targets);
                let loss = part_of_whole(loss, share);
                let mlm_loss = f64::from(to_f32(loss.clone().detach())[0]);
                Samples {
                    tokens,
                    loss: Some(loss * self.options.weight),
                    mlm_loss,
                    mlm_accuracy: mlm_accuracy * share,
                }
            }
            (None, Some(unigram)) => {
                let tokens = batch
                    .replacement_draws
                    .iter()
                    .map(|&u| unigram.sample(u))
                    .collect();
                let (mlm_loss, mlm_accuracy) = unigram.masked_lm_loss(&batch.targets);
                Samples {
                    tokens,
                    loss: None,
                    mlm_loss: mlm_loss * share,
                    mlm_accuracy: mlm_accuracy * share,
                }
            }
            (None, None) => {
                unreachable!("Generator::new gives every generator a network or a sampler")
            }
        }
    }
}

/// `batch`'s original ids with `tokens` at its masked positions.
pub fn corrupt(batch: &MaskedBatch, tokens: &[u32]) -> Vec<u32> {
    let mut corrupted = batch.original.clone();
    for (&p, &token) in batch.positions.iter().zip(tokens) {
        corrupted[p] = token;
    }
    corrupted
}
