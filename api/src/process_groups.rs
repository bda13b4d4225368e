//! The process groups a stage started, written down in its scratch directory so that no stage
//! outlives its run: if the orchestrator dies (kill -9) with a stage's processes still running,
//! the next electra-pipe process to open the cache kills them before anything else (see
//! [`reap`]). This replaces a pre-exec hook in every child (`PR_SET_PDEATHSIG`), which forced
//! `fork` instead of `posix_spawn` and reached only the group's first process anyway.
//!
//! A recorded group is killed only if it is still the same group: its leader still runs with
//! the start time recorded, or the leader is gone but members of the group remain (Linux does
//! not reuse a process group's id while the group has members). Elsewhere than on Linux
//! (no `/proc`), nothing is recorded or reaped.

use std::io::{self, Write};
use std::path::Path;

/// The file, inside a stage's scratch directory, listing `pgid start-time` lines.
pub const FILE: &str = ".electra-pipe-process-groups";

/// Records that the process group `pgid` (its leader just started by this process) belongs to
/// the stage whose scratch directory is `work_dir`.
pub fn record(work_dir: &Path, pgid: u32) -> io::Result<()> {
    let Some(started) = start_time(pgid) else {
        // Gone already (or no /proc): nothing can outlive the run.
        return Ok(());
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(work_dir.join(FILE))?;
    writeln!(file, "{pgid} {started}")
}

/// Kills (SIGKILL) every process group recorded in `work_dir` that still runs; returns the
/// groups killed. Call it only while holding the cache, so the recording run is known dead.
pub fn reap(work_dir: &Path) -> Vec<u32> {
    let Ok(text) = std::fs::read_to_string(work_dir.join(FILE)) else {
        return Vec::new();
    };
    let mut killed = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(pgid)), Some(Ok(started))) = (fields.next(), fields.next()) else {
            continue;
        };
        // Groups 0 and 1 would make kill(2) mean "my own group" and "everyone".
        let Ok(pgid @ 2..) = u32::try_from(pgid) else {
            continue;
        };
        // SAFETY: getpgrp(2) has no preconditions.
        let own = unsafe { libc::getpgrp() } as u32;
        if pgid != own && still_ours(pgid, started) {
            // SAFETY: kill(2) on a process group this cache's earlier run started.
            if unsafe { libc::kill(-(pgid as libc::pid_t), libc::SIGKILL) } == 0 {
                killed.push(pgid);
            }
        }
    }
    killed
}

/// Whether the group `pgid` recorded with leader start time `started` still has live members.
fn still_ours(pgid: u32, started: u64) -> bool {
    let same_leader = match start_time(pgid) {
        Some(now) => now == started && process_group(pgid) == Some(pgid),
        None => true,
    };
    same_leader && has_live_members(pgid)
}

/// Some process's `/proc/<pid>/stat` fields after the command name (state is the first).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    Some(after_name.split_whitespace().map(str::to_owned).collect())
}

/// A process's start time (clock ticks since boot), `None` if it does not run.
fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// A process's process group.
fn process_group(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(2)?.parse().ok()
}

/// Whether any process in group `pgid` runs (zombies, already dead, do not count).
fn has_live_members(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat_fields)
        .any(|f| f[0] != "Z" && f.get(2).and_then(|g| g.parse().ok()) == Some(pgid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;
    use std::time::{Duration, Instant};

    fn alive(pid: u32) -> bool {
        // A zombie (our unreaped child) counts as gone.
        stat_fields(pid).is_some_and(|f| f[0] != "Z")
    }

    fn wait_gone(pid: u32) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if !alive(pid) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn a_recorded_group_is_killed_with_its_grandchildren() {
        let dir = tempfile::tempdir().unwrap();
        // The shell's own child (sleep) is in the group too; it writes its pid first.
        let pid_file = dir.path().join("grandchild");
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(format!("sleep 60 & echo $! > {}; wait", pid_file.display()))
            .process_group(0)
            .spawn()
            .unwrap();
        record(dir.path(), shell.id()).unwrap();
        let start = Instant::now();
        let grandchild = loop {
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
            {
                break pid;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "sleep never started"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!(reap(dir.path()), [shell.id()]);
        shell.wait().unwrap();
        assert!(
            wait_gone(grandchild),
            "the group's other members are killed too"
        );
        assert!(
            reap(dir.path()).is_empty(),
            "a group that is gone is left alone"
        );
    }

    #[test]
    fn a_group_whose_leader_changed_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut sleeper = Command::new("sleep")
            .arg("60")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = sleeper.id();
        let started = start_time(pid).unwrap();
        // As if the recorded process had ended and its pid been reused by this one.
        std::fs::write(dir.path().join(FILE), format!("{pid} {}\n", started + 1)).unwrap();
        assert!(reap(dir.path()).is_empty());
        assert!(alive(pid));
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
    }

    #[test]
    fn garbage_and_missing_files_reap_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(reap(dir.path()).is_empty());
        std::fs::write(
            dir.path().join(FILE),
            "not numbers\n1\n99999999999 5\n1 0\n0 0\n",
        )
        .unwrap();
        assert!(reap(dir.path()).is_empty());
    }
}
