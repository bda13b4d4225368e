//! The paper-scale pipelines fit their devices: every pretraining stage's micro-batch, on the
//! devices it names, fits three quarters of an 80 GB GPU by `pretrain::memory::estimate`.

use std::path::Path;

use electra_pipe::spec::{self, LoadOptions};
use electra_stages::pretrain::memory;
use electra_stages::pretrain::params::PretrainParams;

/// The BERT uncased vocabulary the paper pipelines load.
const VOCAB: usize = 30522;
/// What a step may take of an 80 GB device: the estimate leaves out the backend's own pools.
const USABLE: f64 = 0.75 * 80e9;

#[test]
fn paper_pipelines_name_micro_batches_that_fit_an_80_gb_device() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    for (file, seq_len) in [
        ("electra_small_paper.yaml", 128),
        ("electra_base_paper.yaml", 512),
        ("electra_table5_paper.yaml", 512),
    ] {
        let options = LoadOptions {
            data_dir: "/data".into(),
            // Planned with the CPU backend every build has (they name `cuda`).
            overrides: vec![("backend".to_owned(), "flex".to_owned())],
            executor: None,
        };
        let pipeline = spec::load(&dir.join(file), &options, &electra_stages::registry())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut pretraining = 0;
        for instance in pipeline
            .instances
            .iter()
            .filter(|i| i.kind.name() == "pretrain")
        {
            pretraining += 1;
            let params = PretrainParams::parse(&instance.params).unwrap();
            let micro_batch = params.examples_per_pass();
            let estimate = memory::estimate(&params, VOCAB, seq_len);
            let bytes = estimate.bytes(micro_batch);
            eprintln!(
                "{file} {}: {} devices, micro-batch {micro_batch}: {:.1} GB ({:.2} GB state, {:.3} GB per example; largest {})",
                instance.name,
                params.devices,
                bytes / 1e9,
                estimate.state_bytes / 1e9,
                estimate.activation_bytes_per_example / 1e9,
                estimate.largest_micro_batch(USABLE),
            );
            assert!(
                bytes <= USABLE,
                "{file} {}: micro-batch {micro_batch} takes {:.1} GB",
                instance.name,
                bytes / 1e9
            );
        }
        assert!(pretraining > 0, "{file} pretrains");
    }
}
