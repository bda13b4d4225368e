//! The model library shared by the stage kinds, as the paper describes the networks: one
//! module each for the sizes ([`config`]), the operations every backend runs ([`ops`]:
//! softmax, `x · W + b`, the split into heads, GELU, LayerNorm, dropout, cross-entropy, as
//! burn composes them; the CPU backend's fused kernels for them live apart, in
//! `crate::cpu_kernels`), the building blocks ([`layers`]), the encoder and
//! the [`encoder::Backbone`] every head reads ([`encoder`]), the heads — masked LM,
//! replaced-token detection, classification — ([`heads`]), their FLOPs ([`flops`]), and the weights on
//! disk: the safetensors format ([`safetensors`]), the one table of names weights have in
//! checkpoints, in electra-pipe's exported files and in Hugging Face transformers
//! ([`weights`]), and the self-describing exported encoder ([`export`]), and Hugging Face
//! transformers checkpoints read as encoders ([`transformers`]) and written from exported
//! networks ([`transformers_export`]).
//!
//! `pretrain` composes these into ELECTRA and BERT, `finetune` into a classifier.

pub mod config;
pub mod encoder;
pub mod export;
pub mod flops;
pub mod heads;
pub mod layers;
pub mod ops;
pub mod safetensors;
pub mod transformers;
pub mod transformers_export;
pub mod weights;
