//! The `pretrain` stage kind: its plan (inputs and outputs) and its run (data → steps →
//! training → outputs).

use std::path::Path;

use burn::tensor::backend::{AutodiffBackend, DeviceOps};
use electra_pipe_api::{
    Metrics, ParamError, Params, StageContext, StageError, StageKind, StagePlan,
};

use super::memory;
use super::outputs::{
    write_outputs, Run, CONFIG_FILE, GENERATOR_FILE, METRICS_FILE, MODEL_FILE, SNAPSHOTS_DIR,
    TRANSFORMERS_DIR, TRANSFORMERS_GENERATOR_DIR,
};
use super::params::PretrainParams;
use super::prior::{OutputBias, OutputPrior};
use super::stats::unigram_entropy;
use super::train::{train, TrainSettings, Trained};
use super::unigram::UnigramSampler;
use crate::error::{DataError, Result};
use crate::model::transformers_export;
use crate::pretrain_data::{shards_tokenizer, PretrainingData};

/// The `pretrain` stage kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pretrain;

impl StageKind for Pretrain {
    fn name(&self) -> &'static str {
        "pretrain"
    }

    fn version(&self) -> u32 {
        // v5: transformers checkpoint directories (`hf/`, `hf-generator/`).
        // v6: the fused kernels' row sums in 16 lanes (`cpu_kernels::simd`): other rounding.
        // v7: the dense layers' bias added inside the product (`cpu_kernels::linear`), the bias
        // gradient's column sums: other rounding.
        // v8: dropout masks keyed by row and replacements drawn with the masks, so that
        // micro-batches and replicas draw what one pass does: other draws.
        8
    }

    fn summary(&self) -> &'static str {
        "pretrains ELECTRA (generator + discriminator) or the BERT baseline with burn"
    }

    fn plan(&self, params: &Params) -> Result<StagePlan, ParamError> {
        let params = PretrainParams::parse(params)?;
        let mut outputs = vec![
            MODEL_FILE.to_owned(),
            CONFIG_FILE.to_owned(),
            METRICS_FILE.to_owned(),
            SNAPSHOTS_DIR.to_owned(),
        ];
        let exported_generator = params.objective.has_generator() && !params.unigram_generator();
        if exported_generator {
            outputs.push(GENERATOR_FILE.to_owned());
        }
        if transformers_export::unsupported(&params.encoder(1)).is_none() {
            outputs.push(TRANSFORMERS_DIR.to_owned());
            if exported_generator {
                outputs.push(TRANSFORMERS_GENERATOR_DIR.to_owned());
            }
        }
        Ok(StagePlan {
            inputs: vec![params.data.clone()],
            outputs,
            stage_params: params
                .match_compute
                .iter()
                .map(|_| "match_compute".to_owned())
                .collect(),
        })
    }

    fn run(&self, params: &Params, ctx: &StageContext<'_>) -> Result<Metrics, StageError> {
        let params = PretrainParams::parse(params)?;
        Ok(pretrain(&params, ctx)?)
    }
}

fn pretrain(params: &PretrainParams, ctx: &StageContext<'_>) -> Result<Metrics> {
    let data = PretrainingData::open(Path::new(&params.data))?;
    let tokenizer = shards_tokenizer(Path::new(&params.data))?;
    let index = data.index().clone();
    let budget = params.resolve_steps(index.vocab_size, index.max_seq_len)?;
    let steps = budget.steps;
    let settings = params.settings(index.vocab_size, index.max_seq_len, steps);
    let counts = data.token_counts()?;
    let unigram_entropy = unigram_entropy(&counts, index.special);
    let prior = (params.output_bias == OutputBias::Prior)
        .then(|| OutputPrior::new(&counts, index.special, params.mask_prob));
    let unigram = params
        .unigram_generator()
        .then(|| UnigramSampler::new(&counts, index.special, params.temperature));
    tracing::info!(
        unigram_entropy,
        "the masked-LM loss of a model that ignores context (nats)"
    );
    if let Some(matched) = &budget.matched {
        tracing::info!(
            steps,
            target_flops = matched.train_flops,
            stage = %matched.stage,
            "steps derived to match the compute of another stage"
        );
    }
    let micro_batch = params.examples_per_pass();
    let memory = memory::estimate(params, index.vocab_size, index.max_seq_len);
    tracing::info!(
        devices = params.devices,
        micro_batch,
        gigabytes_per_device = format!("{:.2}", memory.bytes(micro_batch) / 1e9),
        state_gigabytes = format!("{:.2}", memory.state_bytes / 1e9),
        activation_gigabytes_per_example =
            format!("{:.3}", memory.activation_bytes_per_example / 1e9),
        "device memory a step takes, estimated (pretrain::memory)"
    );
    let pool = crate::parallel::worker_pool(ctx.cpus)?;
    tracing::info!(backend = %params.backend, steps, "training");
    let trained = pool.install(|| {
        crate::backend::run_on(
            &params.backend,
            &ctx.tuning_dir,
            Training {
                backend: &params.backend,
                settings: &settings,
                data: &data,
                prior: prior.as_ref(),
                unigram: unigram.as_ref(),
                ctx,
            },
        )
    })??;
    write_outputs(
        &Run {
            params,
            settings: &settings,
            index: &index,
            budget: &budget,
            unigram_entropy,
            trained: &trained,
            tokenizer: &tokenizer,
        },
        ctx,
    )
}

/// [`train`] as work for [`crate::backend::run_on`].
struct Training<'a> {
    backend: &'a str,
    settings: &'a TrainSettings,
    data: &'a PretrainingData,
    prior: Option<&'a OutputPrior>,
    unigram: Option<&'a UnigramSampler>,
    ctx: &'a StageContext<'a>,
}

impl crate::backend::OnBackend for Training<'_> {
    type Output = Result<Trained>;
    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Self::Output {
        let replicas = self.settings.replicas;
        let available = B::device_count(device.id().type_id);
        if crate::backend::is_gpu(self.backend) && replicas > available {
            return Err(DataError::Device {
                backend: self.backend.to_owned(),
                message: format!(
                    "`devices: {replicas}` asks for a replica on each of {replicas} devices, and this machine has {available}"
                ),
            });
        }
        if replicas > rayon::current_num_threads() {
            tracing::warn!(
                replicas,
                threads = rayon::current_num_threads(),
                "fewer threads than replicas: some replicas wait for others (give the stage `resources: {{cpus: N}}` with N at least `devices`)"
            );
        }
        train::<B>(
            self.settings,
            self.data,
            self.prior,
            self.unigram,
            self.ctx,
            device,
        )
    }
}
