//! Tokens per second of a full pretraining step (forward, backward, AdamW update) for the
//! ELECTRA and BERT objectives at the `tiny` and `small` presets, on real Wikipedia examples
//! with the BERT vocabulary, on the `flex` CPU backend.
//!
//! ```text
//! cargo bench -p electra-stages --bench pretrain [-- DATA_DIR]
//! BENCH_BATCH=32 BENCH_STEPS=3 BENCH_PRESETS=tiny,small cargo bench -p electra-stages --bench pretrain
//! BENCH_DROPOUT=0 ...   # the same without dropout, to see what the masks cost
//! ```
//! GFLOP/s counts the matrix products a step actually does
//! (`model::flops::matmul_train_flops_per_token`), not the official count's one-hot
//! embeddings. The PyTorch reference (Hugging Face `transformers`, same configuration, same batch, same
//! threads) is `scripts/bench-reference.py`; `scripts/bench-pretrain.sh` runs both.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use electra_pipe_api::StageKind;
use electra_stages::corpus::Corpus;
use electra_stages::model::config::Preset;
use electra_stages::model::flops::{matmul_train_flops_per_token, mlm_output_fraction, Head};
use electra_stages::model::layers::{Dropout, Init};
use electra_stages::pretrain::bert::Bert;
use electra_stages::pretrain::electra::{Electra, ElectraShape};
use electra_stages::pretrain::masking::{mask_batch, MaskingOptions, Replacement};
use electra_stages::pretrain::objective::PretrainingModel;
use electra_stages::pretrain_data::{Cursor, PretrainData, PretrainingData};
use electra_stages::tokenizer::TokenizerKind;
use electra_stages::training::optimizer::{AdamW, AdamWSettings};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

mod common;

use common::{context, data_dir};

type B = Autodiff<Flex>;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Shards of 128-token examples from the first 200 Wikipedia articles, BERT vocabulary.
fn shards(data: &Path, scratch: &Path) -> PathBuf {
    let wiki = data.join("corpus/wikipedia-en-2015/AA");
    Corpus
        .run(
            &json!({"inputs": wiki, "max_docs": 200}),
            &context(&scratch.join("corpus"), "corpus", 2),
        )
        .unwrap();
    TokenizerKind
        .run(
            &json!({"load": data.join("vocab/bert-base-uncased/vocab.txt")}),
            &context(&scratch.join("tok"), "tok", 2),
        )
        .unwrap();
    PretrainData
        .run(
            &json!({
                "corpus": scratch.join("corpus/out/corpus.txt"),
                "tokenizer": scratch.join("tok/out/tokenizer.json"),
            }),
            &context(&scratch.join("examples"), "examples", 2),
        )
        .unwrap();
    scratch.join("examples/out/shards")
}

fn main() {
    let data = data_dir(std::env::args().skip(1).find(|a| a != "--bench"));
    let batch_size: usize = env("BENCH_BATCH", 32);
    let steps: usize = env("BENCH_STEPS", 3);
    let cpus: usize = env("BENCH_CPUS", 2);
    let presets: String = env("BENCH_PRESETS", "tiny,small".to_owned());
    let scratch = tempfile::tempdir().unwrap();
    let data = PretrainingData::open(&shards(&data, scratch.path())).unwrap();
    let index = data.index().clone();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cpus)
        .build()
        .unwrap();
    let masking = MaskingOptions {
        mask_prob: 0.15,
        max_predictions: MaskingOptions::max_predictions_for(0.15, index.max_seq_len),
        replacement: Replacement::Electra,
    };
    println!(
        "batch {batch_size} × seq {}, vocab {}, {cpus} CPUs, flex backend, {steps} timed steps after 1 warm-up",
        index.max_seq_len, index.vocab_size
    );
    println!();
    println!("| preset | objective | s/step | tokens/s | GFLOP/s |");
    println!("|---|---|---:|---:|---:|");
    for preset in presets.split(',') {
        let preset: Preset = serde_json::from_value(json!(preset)).expect("tiny|mini|small|base");
        let mut config = preset.encoder(index.vocab_size);
        config.dropout = env("BENCH_DROPOUT", config.dropout);
        let objectives: String = env("BENCH_OBJECTIVES", "electra,bert".to_owned());
        for objective in objectives.split(',') {
            let device = Default::default();
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let mut init = Init::<B> {
                device: &device,
                rng: &mut rng,
            };
            let timing = Timing {
                data: &data,
                masking: &masking,
                pool: &pool,
                batch_size,
                steps,
                dropout: config.dropout,
            };
            let seq_len = index.max_seq_len;
            let masked_lm = Head::MaskedLm(mlm_output_fraction(masking.mask_prob));
            let (per_step, flops_per_token) = if objective == "electra" {
                let shape = ElectraShape::paper(config);
                let generator = shape
                    .generator
                    .shape
                    .network()
                    .expect("the paper's generator");
                let flops = matmul_train_flops_per_token(&config, seq_len, Head::Binary)
                    + matmul_train_flops_per_token(&generator, seq_len, masked_lm);
                let model = Electra::new(&mut init, shape, None);
                (timing.seconds_per_step(model, &mut rng), flops)
            } else {
                let flops = matmul_train_flops_per_token(&config, seq_len, masked_lm);
                (
                    timing.seconds_per_step(Bert::new(&mut init, &config), &mut rng),
                    flops,
                )
            };
            let tokens = (batch_size * seq_len) as f64 / per_step;
            let gflops = tokens * flops_per_token / 1e9;
            println!("| {preset:?} | {objective} | {per_step:.3} | {tokens:.0} | {gflops:.1} |");
        }
    }
}

/// What a timed run needs besides the model.
struct Timing<'a> {
    data: &'a PretrainingData,
    masking: &'a MaskingOptions,
    pool: &'a rayon::ThreadPool,
    batch_size: usize,
    steps: usize,
    dropout: f64,
}

impl Timing<'_> {
    /// Mean seconds of a full training step of `model` (masking, forward, backward, AdamW),
    /// over `steps` steps after one warm-up step.
    fn seconds_per_step<M: PretrainingModel<B> + AutodiffModule<B>>(
        &self,
        mut model: M,
        rng: &mut ChaCha8Rng,
    ) -> f64 {
        let device = Default::default();
        let index = self.data.index();
        let mut optimizer = AdamW::<B>::new(AdamWSettings::default());
        let mut stream = self.data.stream(0, Cursor::default()).unwrap();
        let mut timed = 0.0;
        for step in 0..=self.steps {
            let batch = stream.next_batch(self.batch_size).unwrap();
            let started = Instant::now();
            model = self.pool.install(|| {
                let masked = mask_batch(&batch, index.special, index.vocab_size, self.masking, rng);
                let mut dropout = Dropout::train(self.dropout, step as u64, 0);
                let out = model.step(&masked, &mut dropout, &device);
                let grads = GradientsParams::from_grads(out.loss.backward(), &model);
                optimizer.step(model, grads, 1e-4).0
            });
            if step > 0 {
                timed += started.elapsed().as_secs_f64();
            }
        }
        timed / self.steps as f64
    }
}
