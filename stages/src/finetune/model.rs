//! The fine-tuning model: a pretrained (or freshly initialised) encoder with a task head on
//! the `[CLS]` token, and the layer-wise learning-rate decay over its parameters.
//!
//! Shapes: `b` batch, `s` longest sequence of the batch, `h` hidden, `k` outputs (classes, or
//! 1 for STS-B's regression).

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};
use crate::model::config::EncoderConfig;
use crate::model::encoder::{Backbone, Embeddings, Encoder, EncoderInput};
use crate::model::export::ExportedEncoder;
use crate::model::heads::{ClassificationHead, HeadLayers, HeadShape, Pooling};
use crate::model::layers::{Dropout, Init};
use crate::model::transformers;
use crate::model::weights::load_named;

/// Encoder + task head: the pooled hidden state → the head's layers → `k` outputs.
#[derive(Module, Debug)]
pub struct Classifier<B: Backend> {
    /// Token, position and segment embeddings.
    pub embeddings: Embeddings<B>,
    /// The transformer.
    pub encoder: Encoder<B>,
    /// The task head `h → k`.
    pub head: ClassificationHead<B>,
}

impl<B: Backend> Classifier<B> {
    /// A fresh model of `config`'s shape with `outputs` outputs.
    pub fn new(
        init: &mut Init<'_, B>,
        config: &EncoderConfig,
        outputs: usize,
        head: HeadShape,
    ) -> Self {
        Classifier {
            embeddings: Embeddings::new(init, config),
            encoder: Encoder::new(init, config),
            head: ClassificationHead::new(init, config.hidden, outputs, head),
        }
    }

    /// The pretrained `exported` encoder under a fresh head from `init`.
    pub fn pretrained(
        init: &mut Init<'_, B>,
        exported: &ExportedEncoder,
        outputs: usize,
        head: HeadShape,
        source: &Path,
    ) -> Result<Self> {
        let fresh = Classifier::new(init, &exported.config, outputs, head);
        let (embeddings, encoder) =
            exported.load_into(fresh.embeddings, fresh.encoder, init.device, source)?;
        Ok(Classifier {
            embeddings,
            encoder,
            head: fresh.head,
        })
    }

    /// The fine-tuned classifier in a transformers `ElectraForSequenceClassification`
    /// checkpoint directory (what a finetune stage with `head: dense_gelu` writes to `hf/`):
    /// transformers' head on `[CLS]`, as many outputs as its `classifier.out_proj` has.
    pub fn from_transformers(dir: &Path, device: &B::Device) -> Result<Self> {
        let network = transformers::read_network(dir)?;
        let outputs = network
            .tensors
            .get("head.output.bias")
            .filter(|_| {
                network
                    .objective
                    .ends_with("ElectraForSequenceClassification")
            })
            .map(|bias| bias.values.len())
            .ok_or_else(|| {
                DataError::invalid(
                    dir,
                    format!(
                        "expected an ElectraForSequenceClassification checkpoint, found a {}",
                        network.objective
                    ),
                )
            })?;
        let head = HeadShape {
            pooling: Pooling::Cls,
            layers: HeadLayers::DenseGelu,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut init = Init {
            device,
            rng: &mut rng,
        };
        let fresh = Classifier::new(&mut init, &network.config, outputs, head);
        load_named(fresh, &network.tensors, device, dir)
    }

    /// The encoder over its embeddings.
    pub fn backbone(&self) -> Backbone<'_, B> {
        Backbone {
            embeddings: &self.embeddings,
            encoder: &self.encoder,
        }
    }

    /// Outputs `[b, k]` for the `b` sequences of `batch` (padded or packed), in their order;
    /// `dropout` applies inside the encoder, `head_dropout` in the head.
    pub fn forward(
        &self,
        batch: &EncoderInput<B>,
        dropout: &mut Dropout,
        head_dropout: &mut Dropout,
    ) -> Tensor<B, 2> {
        let (hidden, attention) = self.backbone().sequences(batch, dropout); // [b, t, h]
        self.head.forward(hidden, attention, head_dropout)
    }
}

/// The learning-rate factor of the parameter at `path` under layer-wise decay `decay` in an
/// encoder of `layers` blocks:
///
/// | parameters | factor |
/// |---|---|
/// | the task head (`head.*`) | 1 |
/// | the top block (`encoder.blocks.{L−1}.*`) | 1 |
/// | block `i` (0-based, `encoder.blocks.{i}.*`) | decay^(L−1−i) |
/// | the embeddings and the `e → h` projection | decay^L (the lowest) |
///
/// So with 12 blocks and decay 0.8 the bottom block trains at 0.8¹¹ ≈ 0.086 of the peak rate
/// and the embeddings at 0.8¹² ≈ 0.069. (The official ELECTRA code counts the head as two
/// levels above the top block, giving the top block 0.8² and the embeddings 0.8^(L+2); this
/// follows the rule as the issue states it: the top layer gets the full rate.)
pub fn layer_lr_factor(path: &str, layers: usize, decay: f64) -> f64 {
    let depth_below_top = if path.starts_with("head.") {
        0
    } else if let Some(rest) = path.strip_prefix("encoder.blocks.") {
        let block: usize = rest
            .split('.')
            .next()
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        layers.saturating_sub(1 + block)
    } else {
        layers
    };
    decay.powi(depth_below_top as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_block_gets_the_full_rate_and_the_embeddings_the_lowest() {
        let f = |path| layer_lr_factor(path, 12, 0.8);
        assert_eq!(f("head.weight"), 1.0);
        assert_eq!(f("encoder.blocks.11.attention.query.weight"), 1.0);
        assert!((f("encoder.blocks.10.output.bias") - 0.8).abs() < 1e-12);
        assert!((f("encoder.blocks.0.norm.gamma") - 0.8f64.powi(11)).abs() < 1e-12);
        assert!((f("encoder.projection.weight") - 0.8f64.powi(12)).abs() < 1e-12);
        assert!((f("embeddings.word") - 0.8f64.powi(12)).abs() < 1e-12);
        assert_eq!(layer_lr_factor("embeddings.word", 12, 1.0), 1.0);
    }
}
