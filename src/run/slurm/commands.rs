//! Slurm's command-line tools, run and parsed: `sbatch` to submit, `squeue` then `sacct` (text,
//! `-X -P`: its `--json` misreports exit codes on 22.05) then `scontrol show job` to learn a
//! job's state, `scancel` to stop one, `scontrol ping` to check the controller.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

/// Why a Slurm command did not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SlurmError {
    /// A tool is not on PATH.
    #[error("the Slurm executor needs `{0}` on PATH, and it is not there: install the Slurm client tools (Debian: slurm-client), or run with --executor local")]
    NotInstalled(&'static str),
    /// The controller does not answer.
    #[error("the Slurm controller does not answer ({0}); is slurmctld running? (`scontrol ping`)")]
    ControllerDown(String),
    /// `sbatch` refused the job (bad partition, account, resources).
    #[error("sbatch rejected the job: {0}")]
    Rejected(String),
    /// A tool failed or printed something unexpected.
    #[error("`{command}` failed: {message}")]
    Failed {
        /// The command line.
        command: String,
        /// Its error output or what was wrong with its output.
        message: String,
    },
}

/// A job, or one task of a job array (`123_4`), as Slurm's tools name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId {
    /// The job's id (an array's, for an array task).
    pub job: u64,
    /// The task's index in its array.
    pub task: Option<u32>,
}

impl JobId {
    /// A job that is not part of an array.
    pub fn single(job: u64) -> Self {
        JobId { job, task: None }
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.task {
            Some(task) => write!(f, "{}_{task}", self.job),
            None => write!(f, "{}", self.job),
        }
    }
}

impl std::str::FromStr for JobId {
    type Err = std::num::ParseIntError;

    /// `123` or `123_4`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text.split_once('_') {
            Some((job, task)) => JobId {
                job: job.parse()?,
                task: Some(task.parse()?),
            },
            None => JobId::single(text.parse()?),
        })
    }
}

/// The tools the executor runs.
pub const TOOLS: &[&str] = &["sbatch", "squeue", "sacct", "scontrol", "scancel"];

/// Checks that every tool is on PATH and that the controller answers.
pub fn check_available() -> Result<(), SlurmError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for &tool in TOOLS {
        if !std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()) {
            return Err(SlurmError::NotInstalled(tool));
        }
    }
    let out = run("scontrol", &["ping"])?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && text.contains("is UP") {
        Ok(())
    } else {
        Err(SlurmError::ControllerDown(first_line(&text)))
    }
}

/// Submits `script` with `options` (each a full `--name=value`) and returns the job id (an
/// array's, with `--array`).
pub fn sbatch(options: &[String], script: &Path) -> Result<u64, SlurmError> {
    let mut args: Vec<&str> = vec!["--parsable"];
    args.extend(options.iter().map(String::as_str));
    let script = script.to_string_lossy();
    args.push(&script);
    let out = run("sbatch", &args)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let message = stderr
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("sbatch failed without a message")
            .trim_start_matches("sbatch: error: ")
            .trim_start_matches("Batch job submission failed: ")
            .to_owned();
        return Err(if is_controller_down(&stderr) {
            SlurmError::ControllerDown(message)
        } else {
            SlurmError::Rejected(message)
        });
    }
    // `--parsable` prints `id` or `id;cluster`.
    stdout
        .trim()
        .split(';')
        .next()
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| SlurmError::Failed {
            command: "sbatch --parsable".into(),
            message: format!("expected a job id, got {:?}", stdout.trim()),
        })
}

/// Where a job is, as far as Slurm says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Waiting or running (the state's name: PENDING, RUNNING, COMPLETING, ...).
    Active(String),
    /// Ended successfully.
    Completed,
    /// Ended otherwise: the state and exit code (`FAILED 3:0`, `TIMEOUT`, `CANCELLED by 0`).
    Ended(String),
    /// No tool knows the job (purged, or never there).
    Unknown,
}

/// A job's state from `scontrol show job` (what is left when accounting is off).
pub fn scontrol_state(id: JobId) -> Result<JobState, SlurmError> {
    let id_text = id.to_string();
    let out = run("scontrol", &["show", "job", "-o", &id_text])?;
    if out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| {
            text.split_whitespace()
                .find_map(|f| f.strip_prefix(name))
                .unwrap_or("")
                .to_owned()
        };
        let state = field("JobState=");
        if !state.is_empty() {
            return Ok(classify(&state, &field("ExitCode=")));
        }
    }
    Ok(JobState::Unknown)
}

/// The states of `ids`, with one `squeue` call for all of them (`-r`: one line per array
/// task), then one `sacct` call for those that left the queue; a job neither knows is
/// [`JobState::Unknown`] (not accounted yet, or accounting is off: [`scontrol_state`]).
pub fn states(ids: &[JobId]) -> Result<BTreeMap<JobId, JobState>, SlurmError> {
    let mut found = BTreeMap::new();
    if ids.is_empty() {
        return Ok(found);
    }
    let list = |ids: &mut dyn Iterator<Item = &JobId>| {
        ids.map(JobId::to_string).collect::<Vec<_>>().join(",")
    };
    // squeue exits non-zero when it knows none of the ids; that is not an error here.
    let out = run(
        "squeue",
        &["-h", "-r", "-j", &list(&mut ids.iter()), "-o", "%i %T"],
    )?;
    for (id, state) in parse_pairs(&String::from_utf8_lossy(&out.stdout), ' ') {
        let state = classify(&state, "");
        if matches!(state, JobState::Active(_)) && ids.contains(&id) {
            found.insert(id, state);
        }
    }
    let left = list(&mut ids.iter().filter(|id| !found.contains_key(id)));
    if !left.is_empty() {
        let out = run(
            "sacct",
            &["-X", "-P", "-n", "-j", &left, "-o", "JobID,State,ExitCode"],
        )?;
        if out.status.success() {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let fields: Vec<&str> = line.split('|').collect();
                if let [id, state, exit] = fields[..] {
                    if let Ok(id) = id.parse::<JobId>() {
                        found.entry(id).or_insert_with(|| classify(state, exit));
                    }
                }
            }
        }
    }
    for &id in ids {
        found.entry(id).or_insert(JobState::Unknown);
    }
    Ok(found)
}

/// `id<sep>rest` lines as `(id, rest)`, skipping lines that do not start with a job id.
fn parse_pairs(text: &str, sep: char) -> Vec<(JobId, String)> {
    text.lines()
        .filter_map(|line| {
            let (id, rest) = line.trim().split_once(sep)?;
            Some((id.parse().ok()?, rest.trim().to_owned()))
        })
        .collect()
}

/// A state name (and exit code) as Slurm prints it, classified.
pub fn classify(state: &str, exit_code: &str) -> JobState {
    let name = state.split_whitespace().next().unwrap_or("");
    match name {
        "COMPLETED" => JobState::Completed,
        "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "REQUEUED"
        | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESIZING" | "SIGNALING" | "STAGE_OUT" | "STOPPED"
        | "RESV_DEL_HOLD" => JobState::Active(name.to_owned()),
        _ if exit_code.is_empty() => JobState::Ended(state.trim().to_owned()),
        _ => JobState::Ended(format!("{} (exit code {exit_code})", state.trim())),
    }
}

/// Asks Slurm to stop a job or array task (SIGTERM to the stage, then SIGKILL after KillWait).
pub fn scancel(id: JobId) -> Result<(), SlurmError> {
    let out = run("scancel", &[&id.to_string()])?;
    if out.status.success() {
        Ok(())
    } else {
        Err(SlurmError::Failed {
            command: format!("scancel {id}"),
            message: first_line(&String::from_utf8_lossy(&out.stderr)),
        })
    }
}

fn run(tool: &'static str, args: &[&str]) -> Result<Output, SlurmError> {
    Command::new(tool).args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            SlurmError::NotInstalled(tool)
        } else {
            SlurmError::Failed {
                command: format!("{tool} {}", args.join(" ")),
                message: e.to_string(),
            }
        }
    })
}

fn is_controller_down(stderr: &str) -> bool {
    [
        "Unable to contact slurm controller",
        "Connection refused",
        "connect failure",
    ]
    .iter()
    .any(|needle| stderr.contains(needle))
}

fn first_line(text: &str) -> String {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_squeue_listing_gives_every_job_its_state() {
        let listing =
            "101 RUNNING\n102 PENDING\nsqueue: error: something\n 103 COMPLETING \n389_12 PENDING\n";
        assert_eq!(
            parse_pairs(listing, ' '),
            [
                (JobId::single(101), "RUNNING".to_owned()),
                (JobId::single(102), "PENDING".to_owned()),
                (JobId::single(103), "COMPLETING".to_owned()),
                (
                    JobId {
                        job: 389,
                        task: Some(12)
                    },
                    "PENDING".to_owned()
                )
            ]
        );
    }

    #[test]
    fn array_task_ids_read_and_print_as_slurm_writes_them() {
        for text in ["389_12", "7", "389_0"] {
            assert_eq!(text.parse::<JobId>().unwrap().to_string(), text);
        }
        assert!("389_".parse::<JobId>().is_err());
        assert!(
            "389_[1-4]".parse::<JobId>().is_err(),
            "a range is not one task"
        );
    }

    #[test]
    fn states_are_classified_as_slurm_prints_them() {
        assert_eq!(classify("COMPLETED", "0:0"), JobState::Completed);
        assert_eq!(
            classify("RUNNING", ""),
            JobState::Active("RUNNING".to_owned())
        );
        assert_eq!(
            classify("FAILED", "3:0"),
            JobState::Ended("FAILED (exit code 3:0)".to_owned())
        );
        assert_eq!(
            classify("CANCELLED by 0", "0:15"),
            JobState::Ended("CANCELLED by 0 (exit code 0:15)".to_owned())
        );
        assert_eq!(
            classify("TIMEOUT", ""),
            JobState::Ended("TIMEOUT".to_owned())
        );
    }

    #[test]
    fn a_refused_connection_means_the_controller_is_down() {
        assert!(is_controller_down(
            "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)"
        ));
        assert!(!is_controller_down(
            "sbatch: error: Batch job submission failed: Invalid partition name specified"
        ));
    }
}
