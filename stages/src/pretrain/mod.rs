//! The `pretrain` stage kind: the paper's pretraining, ELECTRA (generator + discriminator,
//! replaced-token detection), the BERT baseline (masked LM) or one of the paper's Table 5
//! objectives between them (ELECTRA 15%, Replace MLM, All-Tokens MLM), trained with burn on
//! the networks of [`crate::model`] with the parts of [`crate::training`].
//!
//! ```yaml
//! electra:
//!   kind: pretrain
//!   params:
//!     objective: electra          # bert, electra_15, replace_mlm, all_tokens_mlm
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
//! the objectives — [`electra`] (ELECTRA and ELECTRA 15%), [`bert`], [`replace_mlm`] (Replace
//! MLM and All-Tokens MLM) — over what they share: [`objective`] (what the loop needs of a
//! model, and the common pieces), [`generator`] (the generator that corrupts the input) and
//! [`unigram`] (the unigram generator); [`prior`] (the heads' starting biases), [`stats`]
//! (what a step measures beside its loss), [`flops`] (the official FLOPs count and compute
//! matching), [`train`] (the loop), [`outputs`] (the files and `config.json`) and [`kind`] (the
//! stage kind).

pub mod bert;
pub mod electra;
pub mod flops;
pub mod generator;
pub mod gradients;
pub mod kind;
pub mod masking;
pub mod memory;
pub mod objective;
pub mod outputs;
pub mod params;
pub mod prior;
pub mod replace_mlm;
pub mod stats;
pub mod train;
pub mod unigram;

pub use kind::Pretrain;
pub use params::PretrainParams;
