//! The `pretrain` stage kind: the paper's pretraining, ELECTRA (generator + discriminator,
//! replaced-token detection) or the BERT baseline (masked LM), trained with burn on the
//! networks of [`crate::model`] with the parts of [`crate::training`].
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
//! The modules, one job each: [`params`] (params, defaults, steps and settings), [`masking`],
//! [`objective`] (the ELECTRA and BERT models and losses), [`unigram`] (ELECTRA's
//! unigram generator), [`prior`] (the heads' starting biases), [`stats`] (what a step measures
//! beside its loss), [`flops`] (the official FLOPs count and compute matching), [`train`] (the
//! loop), [`outputs`] (the files and `config.json`) and
//! [`kind`] (the stage kind).

pub mod flops;
pub mod kind;
pub mod masking;
pub mod objective;
pub mod outputs;
pub mod params;
pub mod prior;
pub mod stats;
pub mod train;
pub mod unigram;

pub use kind::Pretrain;
pub use params::PretrainParams;
