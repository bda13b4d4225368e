//! Runs a `command` stage's shell script as a child process that can be cancelled.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use electra_pipe_api::{process_groups, StageContext, StageError};

use super::CommandParams;

/// How long a cancelled command gets between SIGTERM and SIGKILL.
const TERMINATE_GRACE: Duration = Duration::from_secs(3);
/// How often a running command's stage checks whether the run was cancelled.
const CANCEL_CHECK: Duration = Duration::from_millis(50);

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

/// Waits for the child, checking for cancellation every [`CANCEL_CHECK`] meanwhile: on Linux
/// with `poll` on a pidfd (woken the moment the command exits, no extra thread); elsewhere a
/// watcher thread does the checking while this one blocks in `wait`.
fn wait_or_cancel(mut child: Child, ctx: &StageContext<'_>) -> Result<ExitStatus, StageError> {
    let group = child.id() as libc::pid_t;
    let status = match pidfd(group) {
        Some(fd) => {
            let exited_within = |timeout: Duration| {
                let mut ready = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd; the pidfd is ours until closed below.
                match unsafe { libc::poll(&mut ready, 1, timeout.as_millis() as i32) } {
                    0 => false,
                    // A signal (Ctrl-C) interrupted it: look again, and at the cancel token.
                    n if n < 0 => std::io::Error::last_os_error().kind() != ErrorKind::Interrupted,
                    // Exited; or poll failed, and `wait` blocks instead.
                    _ => true,
                }
            };
            while !exited_within(CANCEL_CHECK) {
                if ctx.cancel.is_cancelled() {
                    terminate(group, exited_within);
                    break;
                }
            }
            // SAFETY: closing the pidfd we opened.
            unsafe { libc::close(fd) };
            child.wait()
        }
        None => wait_with_watcher(&mut child, group, ctx),
    };
    let status = status.map_err(|e| StageError::io("waiting for the command", e))?;
    if ctx.cancel.is_cancelled() && !status.success() {
        return Err(StageError::Cancelled);
    }
    Ok(status)
}

/// A pidfd for `pid` (Linux 5.3 and later), or `None`.
fn pidfd(pid: libc::pid_t) -> Option<libc::c_int> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: pidfd_open(2) with no flags on our own child.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        (fd >= 0).then_some(fd as libc::c_int)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

/// Blocks in `wait` while a watcher thread terminates the process group if the run is
/// cancelled.
fn wait_with_watcher(
    child: &mut Child,
    group: libc::pid_t,
    ctx: &StageContext<'_>,
) -> std::io::Result<ExitStatus> {
    let (done, finished) = mpsc::channel::<()>();
    let cancel = ctx.cancel.clone();
    let watcher = std::thread::spawn(move || {
        while let Err(RecvTimeoutError::Timeout) = finished.recv_timeout(CANCEL_CHECK) {
            if cancel.is_cancelled() {
                terminate(group, |grace| {
                    !matches!(finished.recv_timeout(grace), Err(RecvTimeoutError::Timeout))
                });
                return;
            }
        }
    });
    let status = child.wait();
    drop(done);
    let _ = watcher.join();
    status
}

/// SIGTERM to the group, then SIGKILL unless the command exits within [`TERMINATE_GRACE`]
/// (`exited_within` waits for that).
fn terminate(group: libc::pid_t, exited_within: impl FnOnce(Duration) -> bool) {
    // SAFETY: plain kill(2) on the child's own process group.
    unsafe { libc::kill(-group, libc::SIGTERM) };
    if !exited_within(TERMINATE_GRACE) {
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
