//! The training parts shared by the pretraining and fine-tuning loops: the optimiser and its
//! learning-rate schedule ([`optimizer`]), resumable checkpoints ([`checkpoint`]) and the
//! per-step JSON-lines log ([`step_log`]).

pub mod checkpoint;
pub mod optimizer;
pub mod step_log;
