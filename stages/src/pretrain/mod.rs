//! Pretraining ELECTRA (generator + discriminator, replaced-token detection) and the
//! compute-matched BERT baseline (masked LM).
//!
//! - [`config`]: encoder sizes and presets, the generator's shape;
//! - [`flops`]: train FLOPs counted as the official ELECTRA code does.

pub mod config;
pub mod flops;
