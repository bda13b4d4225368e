//! The model library shared by the stage kinds, as the paper describes the networks: one
//! module each for the sizes ([`config`]), the building blocks ([`layers`]), the encoder and
//! the [`encoder::Backbone`] every head reads ([`encoder`]), the heads — masked LM,
//! replaced-token detection, classification — ([`heads`]), the fused kernels of the CPU
//! training backend ([`fused`]: softmax, LayerNorm, GELU, cross-entropy; [`linear`]: the
//! dense layers' `x · W + b`; [`head_split`]: attention's per-head layout) with their vector
//! reductions and CPU dispatch ([`simd`]), and the weights on
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
pub mod fused;
pub mod head_split;
pub mod heads;
pub mod layers;
pub mod linear;
pub mod safetensors;
pub mod simd;
pub mod transformers;
pub mod transformers_export;
pub mod weights;
