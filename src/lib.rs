//! electra-pipe's orchestrator: pipeline files, the stage DAG, the content-addressed cache
//! and the scheduler. It knows nothing of machine learning; stage kinds come from a
//! [`electra_pipe_api::Registry`].

pub mod cache;
pub mod cli;
pub mod dag;
pub mod evaluate;
pub mod run;
pub mod spec;
