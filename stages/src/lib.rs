//! The stage kinds of electra-pipe.
//!
//! Each kind implements [`electra_pipe_api::StageKind`]; [`registry`] lists them all for the
//! orchestrator. Kinds: `source` (a file by url + sha256), `command` (a shell command with declared inputs and outputs),
//! `corpus` (pretraining text into a document stream), `tokenizer` (BERT WordPiece), `pretrain_data` (ELECTRA
//! pretraining examples in shards), `glue_task` (one GLUE task as tokenized features),
//! `pretrain` (ELECTRA or BERT with burn), `finetune` (one GLUE task × seed, scored on dev),
//! `tagged_corpus` (a part-of-speech tagged corpus), `probe` (linear probes of a frozen
//! encoder's layers, with controls), `report` (the compute-matched comparison: table, CSV,
//! HTML, plots).
//!
//! Beside the kinds: [`model`] (the networks, their heads and the names of their weights),
//! [`cpu_kernels`] (the CPU training backend's fused kernels, a fast path beside the
//! operations every backend runs), [`backend`] (the burn backends and their devices),
//! [`training`] (optimiser, checkpoints, step logs) and [`records`] (the typed files one kind
//! writes and another reads).

use std::sync::Arc;

use electra_pipe_api::Registry;

pub mod backend;
pub mod command;
pub mod corpus;
pub mod cpu_kernels;
pub mod digest;
pub mod error;
pub mod finetune;
pub mod glue;
pub mod inputs;
pub mod json_file;
pub mod model;
pub mod parallel;
pub mod pretrain;
pub mod pretrain_data;
pub mod probe;
pub mod records;
pub mod report;
pub mod source;
pub mod tagged;
pub mod textfile;
pub mod tokenizer;
pub mod training;

/// Every stage kind this build knows, for the orchestrator.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register(Arc::new(command::Command));
    registry.register(Arc::new(corpus::Corpus));
    registry.register(Arc::new(tokenizer::TokenizerKind));
    registry.register(Arc::new(pretrain_data::PretrainData));
    registry.register(Arc::new(glue::GlueTask));
    registry.register(Arc::new(pretrain::Pretrain));
    registry.register(Arc::new(finetune::Finetune));
    registry.register(Arc::new(tagged::TaggedCorpus));
    registry.register(Arc::new(probe::Probe));
    registry.register(Arc::new(report::Report));
    registry.register(Arc::new(source::Source));
    registry
}
