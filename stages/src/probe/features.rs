//! The frozen encoder's features: every probed word's hidden state at each requested layer,
//! read at its first WordPiece, from forward passes without dropout on the stage's backend.

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use std::path::Path;

use super::words::{ProbeData, ProbeSentence};
use crate::error::{DataError, Result};
use crate::finetune::batches::pad;
use crate::glue::Feature;
use crate::model::config::EncoderConfig;
use crate::model::encoder::{Backbone, Embeddings, Encoder};
use crate::model::export::ExportedEncoder;
use crate::model::flops::encoder_matmul_train_flops_per_token;
use crate::model::layers::Init;

/// The encoder probed: embeddings and transformer, no head.
#[derive(Module, Debug)]
pub struct FrozenEncoder<B: Backend> {
    /// Token, position and segment embeddings.
    pub embeddings: Embeddings<B>,
    /// The transformer.
    pub encoder: Encoder<B>,
}

impl<B: Backend> FrozenEncoder<B> {
    fn backbone(&self) -> Backbone<'_, B> {
        Backbone {
            embeddings: &self.embeddings,
            encoder: &self.encoder,
        }
    }
}

/// The encoder to probe.
pub enum Start<'a> {
    /// Exported weights (and their file, for errors).
    Pretrained(&'a ExportedEncoder, &'a Path),
    /// A random initialisation of this shape from this seed (the control).
    Scratch(EncoderConfig, u64),
}

/// One layer's features: `rows × hidden`, training words then held-out words.
pub struct LayerFeatures {
    /// The training split's words, in [`super::words::Side::words`] order.
    pub train: Vec<f32>,
    /// The held-out words, likewise.
    pub eval: Vec<f32>,
}

/// Every requested layer's features.
pub struct Extracted {
    /// Per requested layer, in the order asked.
    pub layers: Vec<LayerFeatures>,
    /// Width of the features.
    pub hidden: usize,
    /// Matrix-product FLOPs of the forward passes (padded positions counted).
    pub forward_flops: f64,
}

/// The forward passes, as work for [`crate::backend::run_on`].
pub struct Extract<'a> {
    /// The encoder.
    pub start: &'a Start<'a>,
    /// The sentences.
    pub data: &'a ProbeData,
    /// The layers to read (each at most the encoder's number of blocks).
    pub layers: &'a [usize],
    /// Sentences per forward pass.
    pub batch_size: usize,
    /// Reports sentences done.
    pub progress: &'a dyn electra_pipe_api::Progress,
}

impl crate::backend::OnBackend for Extract<'_> {
    type Output = Result<Extracted>;
    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Self::Output {
        let mut rng = ChaCha8Rng::seed_from_u64(match self.start {
            Start::Scratch(_, seed) => *seed,
            Start::Pretrained(..) => 0,
        });
        let mut init = Init::<B> {
            device,
            rng: &mut rng,
        };
        let (config, model) = match self.start {
            Start::Pretrained(exported, source) => {
                let (embeddings, encoder) = exported.load_into(
                    Embeddings::new(&mut init, &exported.config),
                    Encoder::new(&mut init, &exported.config),
                    device,
                    source,
                )?;
                (
                    exported.config,
                    FrozenEncoder {
                        embeddings,
                        encoder,
                    },
                )
            }
            Start::Scratch(config, _) => (
                *config,
                FrozenEncoder {
                    embeddings: Embeddings::new(&mut init, config),
                    encoder: Encoder::new(&mut init, config),
                },
            ),
        };
        extract(&model.valid(), config, &self, device)
    }
}

/// Runs every sentence through `model` and keeps the probed words' states.
fn extract<B: Backend>(
    model: &FrozenEncoder<B>,
    config: EncoderConfig,
    work: &Extract<'_>,
    device: &B::Device,
) -> Result<Extracted> {
    let h = config.hidden;
    if let Some(&layer) = work.layers.iter().find(|&&l| l > config.layers) {
        return Err(DataError::Config(format!(
            "layers: layer {layer} asked of an encoder of {} blocks: expected 0 (the embeddings) to {}",
            config.layers, config.layers
        )));
    }
    let total = (work.data.train.sentences.len() + work.data.eval.sentences.len()) as u64;
    let mut done = 0u64;
    let mut forward_flops = 0.0;
    let mut sides = Vec::new();
    for side in [&work.data.train, &work.data.eval] {
        let mut out: Vec<Vec<f32>> = vec![vec![0.0; side.len() * h]; work.layers.len()];
        let rows = side.rows();
        let mut by_length: Vec<usize> = (0..side.sentences.len()).collect();
        by_length.sort_by_key(|&i| (side.sentences[i].feature.input_ids.len(), i));
        for chunk in by_length.chunks(work.batch_size.max(1)) {
            let batch: Vec<&Feature> = chunk.iter().map(|&i| &side.sentences[i].feature).collect();
            let longest = batch.iter().map(|f| f.input_ids.len()).max().unwrap_or(0);
            forward_flops += (batch.len() * longest) as f64
                * encoder_matmul_train_flops_per_token(&config, longest)
                / 3.0;
            let hidden = model.backbone().every_layer(&pad(&batch, device));
            for (slot, &layer) in work.layers.iter().enumerate() {
                let values: Vec<f32> = hidden[layer].clone().into_data().iter::<f32>().collect();
                for (row, &i) in chunk.iter().enumerate() {
                    let sentence: &ProbeSentence = &side.sentences[i];
                    for (k, word) in sentence.words.iter().enumerate() {
                        let from = (row * longest + word.position) * h;
                        let to = (rows[i].start + k) * h;
                        out[slot][to..to + h].copy_from_slice(&values[from..from + h]);
                    }
                }
            }
            done += chunk.len() as u64;
            work.progress
                .update(done, Some(total), "forward passes of the frozen encoder");
        }
        sides.push(out);
    }
    let eval = sides.pop().expect("two sides");
    let train = sides.pop().expect("two sides");
    Ok(Extracted {
        layers: train
            .into_iter()
            .zip(eval)
            .map(|(train, eval)| LayerFeatures { train, eval })
            .collect(),
        hidden: h,
        forward_flops,
    })
}
