//! `electra-pipe exec-stage TASK`: runs one staged stage (what a Slurm job runs on its node)
//! and writes its `result.json` next to the task file. SIGTERM (scancel) stops it early.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use electra_pipe_api::CancelToken;

use super::exit;
use crate::run::staged::{self, StagedResult, StagedTask, RESULT_FILE};

/// Runs the task at `task_path`; exit 0 on success, 1 on failure, 130 when cancelled.
pub fn run(task_path: &Path) -> Result<ExitCode> {
    let task: StagedTask = staged::read_json(task_path).map_err(anyhow::Error::msg)?;
    let cancel = CancelToken::new();
    let handler_token = cancel.clone();
    let _ = ctrlc::set_handler(move || handler_token.cancel());
    let result = staged::run_task(&task, &electra_stages::registry(), cancel);
    let result_path = task_path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(RESULT_FILE);
    staged::write_json(&result_path, &result)
        .with_context(|| format!("writing {}", result_path.display()))?;
    Ok(match result {
        StagedResult::Succeeded { .. } => ExitCode::SUCCESS,
        StagedResult::Failed { error, .. } => {
            eprintln!("error: {}: {error}", task.stage_name);
            ExitCode::from(exit::FAILED)
        }
        StagedResult::Cancelled => ExitCode::from(exit::INTERRUPTED),
    })
}
