//! Fine-tuning examples per second (forward, backward, AdamW with layer-wise decay) of the
//! `finetune` stage itself on SST-2 at the `tiny` and `small` presets, on the `flex` CPU
//! backend, batch 32 with its sentences packed side by side into rows as long as the longest
//! (the stage's own batches). GFLOP/s counts the encoder's matrix products on the positions a
//! step actually computes, the rows' leftover padding included
//! (`model::flops::encoder_matmul_train_flops_per_token`), not the official count.
//!
//! ```text
//! cargo bench -p electra-stages --bench finetune [-- DATA_DIR]
//! BENCH_EXAMPLES=640 BENCH_PRESETS=tiny,small BENCH_CPUS=2 cargo bench -p electra-stages --bench finetune
//! ```
//! It leaves SST-2's features in `target/bench-finetune/` for the PyTorch reference
//! (`scripts/bench-finetune-reference.py`, Hugging Face `ElectraForSequenceClassification` on
//! an equally large random subset of the same features); `scripts/bench-finetune.sh` runs both.

use std::path::Path;

use electra_pipe_api::StageKind;
use electra_stages::finetune::Finetune;
use electra_stages::glue::GlueTask;
use electra_stages::tokenizer::TokenizerKind;
use serde_json::json;

mod common;

use common::{context, data_dir};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let data = data_dir(std::env::args().skip(1).find(|a| a != "--bench"));
    let examples: usize = env("BENCH_EXAMPLES", 640);
    let cpus: usize = env("BENCH_CPUS", 2);
    let presets: String = env("BENCH_PRESETS", "tiny,small".to_owned());
    let scratch = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-finetune");
    let _ = std::fs::remove_dir_all(&scratch);
    TokenizerKind
        .run(
            &json!({"load": data.join("vocab/bert-base-uncased/vocab.txt")}),
            &context(&scratch.join("tok"), "tok", cpus),
        )
        .unwrap();
    GlueTask
        .run(
            &json!({
                "task": "sst2",
                "glue_dir": data.join("glue"),
                "splits": ["train", "dev"],
                "tokenizer": scratch.join("tok/out/tokenizer.json"),
            }),
            &context(&scratch.join("sst2"), "sst2", cpus),
        )
        .unwrap();
    let features = scratch.join("sst2/out/features");
    println!(
        "SST-2, {examples} training examples (seed 1), batch 32, {cpus} CPUs, flex backend, one epoch"
    );
    println!("features: {}", features.display());
    println!();
    println!("| preset | s/step | examples/s | GFLOP/s |");
    println!("|---|---:|---:|---:|");
    for preset in presets.split(',') {
        let metrics = Finetune
            .run(
                &json!({
                    "task": features,
                    "from_scratch": {"preset": preset},
                    "seed": 1,
                    "epochs": 1,
                    "max_train_examples": examples,
                }),
                &context(&scratch.join(format!("ft-{preset}")), "finetune", cpus),
            )
            .unwrap();
        let rate = metrics["examples_per_second"].as_f64().unwrap();
        let gflops = metrics["matmul_gflops_per_second"].as_f64().unwrap();
        println!(
            "| {preset} | {:.3} | {rate:.0} | {gflops:.1} |",
            32.0 / rate
        );
    }
}
