//! Runs a `command` stage's shell script as a child process that can be cancelled.

use std::fs::OpenOptions;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use electra_pipe_api::{process_groups, StageContext, StageError};

use super::CommandParams;

/// How long a cancelled command gets between SIGTERM and SIGKILL.
const TERMINATE_GRACE: Duration = Duration::from_secs(3);

/// Runs the command in `ctx.out_dir`, logging its output, and checks its declared outputs.
pub(super) fn run(params: &CommandParams, ctx: &StageContext<'_>) -> Result<(), StageError> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&ctx.log_path)
        .map_err(|e| StageError::io(format!("opening log {}", ctx.log_path.display()), e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| StageError::io("duplicating the log handle", e))?;

    let mut command = Command::new("/bin/sh");
    command
        .arg("-e")
        .arg("-c")
        .arg(&params.cmd)
        .current_dir(&ctx.out_dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .env("EP_STAGE", ctx.stage_name)
        .env("EP_WORK_DIR", &ctx.work_dir)
        .env("EP_CHECKPOINT_DIR", &ctx.checkpoint_dir)
        .env("EP_CPUS", ctx.cpus.to_string())
        .envs(&params.env)
        .envs(
            params
                .inputs
                .iter()
                .map(|(name, paths)| (name, paths.paths().join("\n"))),
        )
        // Its own process group, so that cancelling reaches the whole pipeline of processes
        // and a Ctrl-C on the terminal reaches the orchestrator first. No pre-exec hook, so
        // the standard library starts it with posix_spawn rather than fork.
        .process_group(0);
    let mut child = command
        .spawn()
        .map_err(|e| StageError::io("starting `/bin/sh`", e))?;
    // Written down so that, if the orchestrator is killed, the next process to open the cache
    // stops the group: no orphan keeps writing into a stage directory.
    if let Err(e) = process_groups::record(&ctx.work_dir, child.id()) {
        // SAFETY: kill(2) on the group we just started.
        unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = child.wait();
        return Err(StageError::io("recording the command's process group", e));
    }
    let status = wait_or_cancel(child, ctx)?;
    if !status.success() {
        return Err(StageError::Failed(describe_failure(status)));
    }
    for output in &params.outputs {
        if !ctx.out_dir.join(output).exists() {
            return Err(StageError::Failed(format!(
                "the command succeeded but did not create its declared output `{output}`"
            )));
        }
    }
    Ok(())
}

/// Waits for the child (blocking, so a short command returns at once) while a watcher
/// thread terminates its process group if the run is cancelled.
fn wait_or_cancel(mut child: Child, ctx: &StageContext<'_>) -> Result<ExitStatus, StageError> {
    let group = child.id() as libc::pid_t;
    let (done, finished) = mpsc::channel::<()>();
    let cancel = ctx.cancel.clone();
    let watcher = std::thread::spawn(move || {
        while let Err(RecvTimeoutError::Timeout) = finished.recv_timeout(Duration::from_millis(50))
        {
            if cancel.is_cancelled() {
                terminate(group, &finished);
                return;
            }
        }
    });
    let status = child.wait();
    drop(done);
    let _ = watcher.join();
    let status = status.map_err(|e| StageError::io("waiting for the command", e))?;
    if ctx.cancel.is_cancelled() && !status.success() {
        return Err(StageError::Cancelled);
    }
    Ok(status)
}

/// SIGTERM to the group, then SIGKILL unless the command exits (`exited` disconnects) in time.
fn terminate(group: libc::pid_t, exited: &mpsc::Receiver<()>) {
    // SAFETY: plain kill(2) on the child's own process group.
    unsafe { libc::kill(-group, libc::SIGTERM) };
    if let Err(RecvTimeoutError::Timeout) = exited.recv_timeout(TERMINATE_GRACE) {
        // SAFETY: as above.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
}

fn describe_failure(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("the command exited with status {code}"),
        (None, Some(signal)) => format!("the command was killed by signal {signal}"),
        _ => "the command failed".to_owned(),
    }
}
