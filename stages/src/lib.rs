//! The stage kinds of electra-pipe.
//!
//! Each kind implements [`electra_pipe_api::StageKind`]; [`registry`] lists them all for the
//! orchestrator. Kinds: `command` (a shell command with declared inputs and outputs).

use std::sync::Arc;

use electra_pipe_api::Registry;

pub mod command;

/// Every stage kind this build knows, for the orchestrator.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register(Arc::new(command::Command));
    registry
}
