//! BERT: one encoder with a masked-LM head, trained to predict the masked tokens.

use burn::module::Module;
use burn::tensor::backend::Backend;

use super::masking::MaskedBatch;
use super::objective::{
    collapse, masked_lm_logits, part_of_whole, to_f32, token_log_probs, ExportedNetwork,
    PretrainingModel, Role, StepOutput,
};
use super::prior::OutputPrior;
use super::stats::StepStats;
use crate::model::config::EncoderConfig;
use crate::model::encoder::{Backbone, Embeddings, Encoder};
use crate::model::heads::MaskedLmHead;
use crate::model::layers::{Dropout, Init};
use crate::model::ops::cross_entropy;
use crate::model::weights::Network;
use crate::records::pretrain::ObjectiveName;

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
    fn objective(&self) -> ObjectiveName {
        ObjectiveName::Bert
    }

    /// The masked-LM loss on `batch` (BERT draws nothing but its masks), as its part of the
    /// whole batch's.
    fn step(
        &self,
        batch: &MaskedBatch,
        dropout: &mut Dropout,
        device: &B::Device,
    ) -> StepOutput<B> {
        let (logits, hidden) =
            masked_lm_logits(self.backbone(), &self.head, batch, dropout, device);
        let (loss, mlm_accuracy) = cross_entropy(logits, &batch.targets);
        let share = batch.masked_share();
        let loss = part_of_whole(loss, share);
        let value = f64::from(to_f32(loss.clone().detach())[0]);
        StepOutput {
            loss,
            stats: StepStats {
                mlm_loss: value,
                loss: value,
                mlm_accuracy: mlm_accuracy * share,
                states: collapse(hidden, batch),
                masked: batch.positions.len(),
                tokens: batch.tokens(),
                ..StepStats::default()
            }
            .finished(),
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
