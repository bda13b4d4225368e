//! The `probe` stage kind: what a frozen encoder's layers know about part of speech, measured
//! with linear probes and the controls that keep word identity from passing for knowledge.
//!
//! ```yaml
//! probe:
//!   kind: probe
//!   params:
//!     encoder: "@electra/model.safetensors"   # or snapshots + snapshot, or a transformers dir
//!     # from_scratch: {preset: mini}          # instead: a random-init encoder (init_seed)
//!     tagged: "@brown_tagged/tagged.jsonl"
//!     tokenizer: "@vocab/tokenizer.json"
//! ```
//!
//! Per layer (0: the embeddings): accuracy on every held-out token, on tokens of ambiguous
//! word types and of word types unseen in training; the control task's accuracy and the
//! selectivity (Hewitt & Liang 2019); the online codelength (Voita & Titov 2020). Beside them
//! the majority-tag-per-word baseline. Modules: [`words`] (split, tokens, controls),
//! [`features`] (the forward passes), [`classifier`] (the probe), [`mdl`] (the online code),
//! [`outputs`] (the files).

pub mod classifier;
pub mod features;
pub mod mdl;
pub mod outputs;
pub mod words;

use std::path::Path;

use electra_pipe_api::{
    parse_params, Metrics, ParamError, Params, StageContext, StageError, StageKind, StagePlan,
};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Deserialize;

use self::classifier::{train, Features, ProbeSettings};
use self::features::{Extract, Extracted, Start};
use self::words::{prepare, ProbeData, TypeTags};
use crate::error::{DataError, Result};
use crate::model::config::ModelParams;
use crate::model::export::{check_encoder_params, encoder_file, read_encoder};
use crate::records::encoder::EncoderOrigin;
use crate::tokenizer::BertTokenizer;

/// The output directory: `summary.json`, `predictions.tsv`, `codelength.tsv`.
pub const PROBE_DIR: &str = "probe";

/// How the tagged documents are split (whole documents, stratified over genres).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Split {
    /// Held-out documents per genre: the first ones of each genre, in name order.
    #[serde(default = "default_eval_files")]
    pub eval_files_per_genre: usize,
    /// Training documents per genre, the ones after the held-out ones; `null`: all the rest.
    #[serde(default = "default_train_files")]
    pub train_files_per_genre: Option<usize>,
}

impl Default for Split {
    fn default() -> Self {
        Split {
            eval_files_per_genre: default_eval_files(),
            train_files_per_genre: default_train_files(),
        }
    }
}

fn default_eval_files() -> usize {
    1
}
fn default_train_files() -> Option<usize> {
    Some(2)
}

/// Which tags the probe predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tagset {
    /// The 12 universal tags (Petrov et al. 2012).
    #[default]
    Universal,
    /// Brown's own tags without `fw-` and the title/headline/cited suffixes.
    Brown,
}

/// Params of a `probe` stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeParams {
    /// An exported encoder (a pretrain stage's `model.safetensors` or `snapshots` with
    /// `snapshot`), or a transformers checkpoint directory.
    pub encoder: Option<String>,
    /// With `encoder` naming a `snapshots` directory: the fraction of training.
    pub snapshot: Option<f64>,
    /// Instead of `encoder`: a random-init encoder of this size.
    pub from_scratch: Option<ModelParams>,
    /// The seed of `from_scratch`'s weights.
    #[serde(default)]
    pub init_seed: u64,
    /// A `tagged_corpus` stage's `tagged.jsonl`.
    pub tagged: String,
    /// The tokenizer the encoder reads (its vocabulary size must be the encoder's).
    pub tokenizer: String,
    /// The layers to probe (0: the embeddings); default every one.
    pub layers: Option<Vec<usize>>,
    /// `universal` (default) or `brown`.
    #[serde(default)]
    pub tagset: Tagset,
    /// The split.
    #[serde(default)]
    pub split: Split,
    /// Weight of the probe's `½‖W‖²`.
    #[serde(default = "default_l2")]
    pub l2: f64,
    /// Passes over the training tokens.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// At least this many steps per probe (the online code's small blocks).
    #[serde(default = "default_min_steps")]
    pub min_steps: usize,
    /// Tokens per step.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Adam's learning rate at the first step (decayed linearly to 0).
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Seed of the probe's data order and of the control task's tags.
    #[serde(default)]
    pub seed: u64,
    /// Sentences are cut to this many WordPieces with `[CLS]` and `[SEP]`.
    #[serde(default = "default_max_seq_len")]
    pub max_seq_len: usize,
    /// Sentences per forward pass.
    #[serde(default = "default_eval_batch_size")]
    pub eval_batch_size: usize,
    /// The backend of the forward passes.
    #[serde(default = "crate::backend::default_backend")]
    pub backend: String,
}

fn default_l2() -> f64 {
    1e-4
}
fn default_epochs() -> usize {
    10
}
fn default_min_steps() -> usize {
    500
}
fn default_batch_size() -> usize {
    256
}
fn default_lr() -> f64 {
    1e-2
}
fn default_max_seq_len() -> usize {
    128
}
fn default_eval_batch_size() -> usize {
    64
}

impl ProbeParams {
    /// Parses and validates params.
    pub fn parse(params: &Params) -> Result<Self, ParamError> {
        let parsed: ProbeParams = parse_params(params)?;
        crate::backend::check(&parsed.backend)?;
        check_encoder_params(
            parsed.encoder.as_deref(),
            parsed.snapshot,
            parsed.from_scratch.as_ref(),
        )?;
        if parsed.layers.as_ref().is_some_and(Vec::is_empty) {
            return Err(ParamError::new(
                "layers",
                "expected at least one layer (0: the embeddings), or no `layers` for every one",
            ));
        }
        let at_least = |field: &str, value: usize, least: usize| {
            if value >= least {
                Ok(())
            } else {
                Err(ParamError::new(
                    field,
                    format!("expected at least {least}, found {value}"),
                ))
            }
        };
        at_least("epochs", parsed.epochs, 1)?;
        at_least("batch_size", parsed.batch_size, 1)?;
        at_least("eval_batch_size", parsed.eval_batch_size, 1)?;
        at_least("max_seq_len", parsed.max_seq_len, 3)?;
        at_least(
            "split.eval_files_per_genre",
            parsed.split.eval_files_per_genre,
            1,
        )?;
        if parsed.split.train_files_per_genre == Some(0) {
            return Err(ParamError::new(
                "split.train_files_per_genre",
                "expected at least 1, or null for every document not held out",
            ));
        }
        if parsed.lr.is_nan() || parsed.lr <= 0.0 {
            return Err(ParamError::new(
                "lr",
                format!("expected a positive rate, found {}", parsed.lr),
            ));
        }
        if parsed.l2.is_nan() || parsed.l2 < 0.0 {
            return Err(ParamError::new(
                "l2",
                format!("expected a weight ≥ 0, found {}", parsed.l2),
            ));
        }
        Ok(parsed)
    }

    /// The probe's training settings.
    pub fn settings(&self) -> ProbeSettings {
        ProbeSettings {
            l2: self.l2,
            epochs: self.epochs,
            min_steps: self.min_steps,
            batch_size: self.batch_size,
            lr: self.lr,
        }
    }
}

/// The `probe` stage kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct Probe;

impl StageKind for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }

    fn version(&self) -> u32 {
        1
    }

    fn summary(&self) -> &'static str {
        "linear part-of-speech probes of a frozen encoder's layers, with controls and MDL"
    }

    fn plan(&self, params: &Params) -> Result<StagePlan, ParamError> {
        let params = ProbeParams::parse(params)?;
        let mut inputs = vec![params.tagged.clone(), params.tokenizer.clone()];
        inputs.extend(params.encoder.clone());
        Ok(StagePlan {
            inputs,
            outputs: vec![PROBE_DIR.to_owned()],
            ..StagePlan::default()
        })
    }

    fn run(&self, params: &Params, ctx: &StageContext<'_>) -> Result<Metrics, StageError> {
        let params = ProbeParams::parse(params)?;
        Ok(run(&params, ctx)?)
    }
}

/// One layer's probes: predictions on the held-out tokens (task and control), and the
/// training tokens' online codelengths (block, bits) in the order sent.
pub struct LayerProbes {
    /// The layer.
    pub layer: usize,
    /// Predicted tag per held-out token.
    pub predicted: Vec<u8>,
    /// Predicted control tag per held-out token.
    pub control_predicted: Vec<u8>,
    /// Per training token in the order sent: (block, bits).
    pub codelength: Vec<(usize, f64)>,
}

/// The seed of the control-task probe, apart from the task probe's.
const CONTROL_STREAM: u64 = 0x636f_6e74_726f_6c00;
/// The seed of the online code's probes.
const MDL_STREAM: u64 = 0x6d64_6c00;

fn run(params: &ProbeParams, ctx: &StageContext<'_>) -> Result<Metrics> {
    let started = std::time::Instant::now();
    let tagged_path = Path::new(&params.tagged);
    let sentences = crate::tagged::read_sentences(tagged_path)?;
    let tokenizer_path = Path::new(&params.tokenizer);
    let tokenizer = BertTokenizer::load(tokenizer_path)?;
    let vocab_size = tokenizer.vocab_size();
    let exported = params
        .encoder
        .as_deref()
        .map(|encoder| encoder_file(encoder, params.snapshot).and_then(|f| read_encoder(&f)))
        .transpose()?;
    let (config, origin) = match (&exported, &params.from_scratch) {
        (Some((exported, file)), _) => {
            if exported.config.vocab_size != vocab_size {
                return Err(DataError::invalid(
                    file,
                    format!(
                        "the encoder reads a vocabulary of {} tokens, the tokenizer ({}) has {}: expected the tokenizer the encoder was pretrained with",
                        exported.config.vocab_size,
                        tokenizer_path.display(),
                        vocab_size
                    ),
                ));
            }
            (exported.config, EncoderOrigin::pretrained(exported, file)?)
        }
        (None, Some(model)) => {
            let config = model.encoder(vocab_size);
            (config, EncoderOrigin::scratch(config))
        }
        (None, None) => unreachable!("parse requires `encoder` or `from_scratch`"),
    };
    if params.max_seq_len > config.max_positions {
        return Err(DataError::Config(format!(
            "max_seq_len: {} WordPieces asked of an encoder of {} positions: expected at most {}",
            params.max_seq_len, config.max_positions, config.max_positions
        )));
    }
    let data = prepare(
        &sentences,
        tagged_path,
        &tokenizer,
        &params.split,
        params.tagset == Tagset::Brown,
        params.max_seq_len,
    )?;
    let layers: Vec<usize> = params
        .layers
        .clone()
        .unwrap_or_else(|| (0..=config.layers).collect());
    tracing::info!(
        train_tokens = data.train.len(),
        eval_tokens = data.eval.len(),
        train_docs = data.train.docs.len(),
        eval_docs = data.eval.docs.len(),
        layers = layers.len(),
        "probing"
    );
    let start = match &exported {
        Some((exported, file)) => Start::Pretrained(exported, file),
        None => Start::Scratch(config, params.init_seed),
    };
    let pool = crate::parallel::worker_pool(ctx.cpus)?;
    let forward_started = std::time::Instant::now();
    let extracted = pool.install(|| {
        crate::backend::run_on(
            &params.backend,
            &ctx.tuning_dir,
            Extract {
                start: &start,
                data: &data,
                layers: &layers,
                batch_size: params.eval_batch_size,
                progress: ctx.progress,
            },
        )
    })??;
    let forward_seconds = forward_started.elapsed().as_secs_f64();
    tracing::info!(
        seconds = forward_seconds,
        matmul_gflops_per_second = extracted.forward_flops / forward_seconds / 1e9,
        "forward passes done"
    );
    if ctx.cancel.is_cancelled() {
        return Err(DataError::Cancelled);
    }
    let types = TypeTags::count(&data.train, data.tags.len());
    let order = sending_order(&data, params.seed);
    let probes =
        pool.install(|| probe_layers(params, &data, &types, &extracted, &layers, &order, ctx))?;
    let seconds = started.elapsed().as_secs_f64();
    outputs::write(
        &ctx.out_dir.join(PROBE_DIR),
        &outputs::Written {
            params,
            origin,
            data: &data,
            types: &types,
            order: &order,
            probes: &probes,
            forward_flops: extracted.forward_flops,
            seconds,
        },
    )
}

/// The training tokens in the order the online code sends them: sentences shuffled by
/// `seed`, each sentence's tokens in order.
fn sending_order(data: &ProbeData, seed: u64) -> Vec<usize> {
    let mut rows = data.train.rows();
    rows.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ MDL_STREAM));
    rows.into_iter().flatten().collect()
}

/// Trains every layer's task, control and online-code probes, layers in parallel (each
/// probe is one thread's and seeded alone, so the numbers do not depend on the threads).
fn probe_layers(
    params: &ProbeParams,
    data: &ProbeData,
    types: &TypeTags,
    extracted: &Extracted,
    layers: &[usize],
    order: &[usize],
    ctx: &StageContext<'_>,
) -> Result<Vec<LayerProbes>> {
    let settings = params.settings();
    let classes = data.tags.len();
    let train_words: Vec<&words::ProbeWord> = data.train.words().map(|(_, w)| w).collect();
    let eval_words: Vec<&words::ProbeWord> = data.eval.words().map(|(_, w)| w).collect();
    let gold: Vec<u8> = train_words.iter().map(|w| w.gold).collect();
    let control: Vec<u8> = train_words
        .iter()
        .map(|w| types.control(&w.word, params.seed))
        .collect();
    let rows: Vec<usize> = (0..train_words.len()).collect();
    let done = std::sync::atomic::AtomicU64::new(0);
    layers
        .par_iter()
        .zip(&extracted.layers)
        .map(|(&layer, features)| {
            if ctx.cancel.is_cancelled() {
                return Err(DataError::Cancelled);
            }
            let train_features = Features {
                values: &features.train,
                dim: extracted.hidden,
            };
            let eval_features = Features {
                values: &features.eval,
                dim: extracted.hidden,
            };
            let task = train(
                train_features,
                &rows,
                &gold,
                classes,
                &settings,
                params.seed,
            );
            let control_probe = train(
                train_features,
                &rows,
                &control,
                classes,
                &settings,
                params.seed ^ CONTROL_STREAM,
            );
            let codelength = mdl::online_codelength(
                train_features,
                order,
                &gold,
                classes,
                &settings,
                params.seed ^ MDL_STREAM,
            );
            let predict = |probe: &classifier::Probe| -> Vec<u8> {
                (0..eval_words.len())
                    .map(|i| probe.predict(eval_features.row(i)))
                    .collect()
            };
            let finished = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            ctx.progress.update(
                finished,
                Some(layers.len() as u64),
                &format!("layer {layer} probed"),
            );
            Ok(LayerProbes {
                layer,
                predicted: predict(&task),
                control_predicted: predict(&control_probe),
                codelength,
            })
        })
        .collect()
}
