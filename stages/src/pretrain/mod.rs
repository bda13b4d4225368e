//! The `pretrain` stage kind: ELECTRA (generator + discriminator, replaced-token detection)
//! or the BERT baseline (masked LM), trained with burn.
//!
//! ```yaml
//! electra:
//!   kind: pretrain
//!   params:
//!     objective: electra          # or bert
//!     data: "@examples/shards"
//!     model: {preset: small}      # tiny | mini | small | base; any field can be overridden
//!     generator_size: 0.25        # ELECTRA: generator width relative to the discriminator
//!     steps: 1000000
//!     batch_size: 128
//!     lr: 5e-4
//!     warmup_steps: 10000
//!     seed: 0
//! ```
//!
//! The modules, one job each: [`config`] (sizes, presets, the generator's shape), [`layers`]
//! (dense, LayerNorm, dropout, initialisation), [`encoder`] (embeddings and transformer),
//! [`heads`] (masked-LM and replaced-token heads), [`masking`], [`objective`] (the ELECTRA
//! and BERT losses), [`optimizer`] (AdamW and the schedule), [`flops`] (the official FLOPs
//! count), [`train`] (the loop), [`checkpoint`] and [`tensor_file`] (safetensors weights), and
//! [`export`] (the self-describing format of the trained encoders).

pub mod checkpoint;
pub mod config;
pub mod encoder;
pub mod export;
pub mod flops;
pub mod heads;
pub mod kind;
pub mod layers;
pub mod masking;
pub mod objective;
pub mod optimizer;
pub mod tensor_file;
pub mod train;

pub use kind::{Pretrain, PretrainParams};
