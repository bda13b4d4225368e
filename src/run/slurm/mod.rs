//! The Slurm executor: each stage attempt becomes a batch job that runs
//! `electra-pipe exec-stage <staging>/task.json` on a node (see [`super::staged`]).
//!
//! - The job is submitted with `sbatch --parsable`, named after the stage, with the cache key
//!   in its comment and the stage's `resources` as sbatch options.
//! - Its id is recorded in the sled index before the orchestrator waits on it. An orchestrator
//!   killed while jobs run reattaches to them on its next `run` (same cache key) instead of
//!   submitting them again, and imports their results when they finish.
//! - It is watched with `squeue`, one call per poll for every job of the run ([`poller`]), and
//!   its end confirmed with `sacct` (or `scontrol`). A job no tool knows any more has vanished:
//!   the attempt fails and the stage's `retries` apply.
//! - On Ctrl-C the jobs of this run are cancelled (`scancel`).
//! - Success means state COMPLETED *and* a `result.json` whose manifest matches the files; only
//!   then are the outputs moved to where the scheduler imports them.
//!
//! Jobs are submitted when their inputs are in the store, not chained with `afterok`: a
//! stage's cache key, and so its job, depends on the digests of its inputs, which exist only
//! once the inputs are imported.

pub mod commands;
pub mod poller;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use electra_pipe_api::{Metrics, Params, StageContext, StageError};

use super::executor::Executor;
use super::scheduler::append_log;
use super::staged::{self, StagedResult, StagedTask, RESULT_FILE, TASK_FILE};
use crate::cache::store::remove_any;
use crate::cache::{staging_dir, Cache, Index, JobRecord};
use crate::spec::Instance;
use commands::{JobState, SlurmError};
use poller::{Outcome, Poller};

/// Submits stage attempts as Slurm jobs.
pub struct SlurmExecutor {
    index: Index,
    cache_root: PathBuf,
    program: PathBuf,
    run_id: String,
    poller: Poller,
}

impl SlurmExecutor {
    /// An executor for `cache`, after checking that the Slurm tools are on PATH and the
    /// controller answers, polling Slurm at most every `poll`. Jobs run `program` (this
    /// binary; the nodes must see it at the same path).
    pub fn new(cache: &Cache, run_id: &str, poll: Duration) -> Result<SlurmExecutor, SlurmError> {
        commands::check_available()?;
        let program = std::env::current_exe().map_err(|e| SlurmError::Failed {
            command: "finding the electra-pipe binary".into(),
            message: e.to_string(),
        })?;
        Ok(SlurmExecutor {
            index: cache.index.clone(),
            cache_root: cache.root().to_owned(),
            program,
            run_id: run_id.to_owned(),
            poller: Poller::new(poll),
        })
    }

    /// Writes the task and batch script, submits them and records the job.
    fn submit(
        &self,
        instance: &Instance,
        key: &str,
        params: &Params,
        ctx: &StageContext<'_>,
        staging: &Path,
    ) -> Result<u64, StageError> {
        remove_any(staging)
            .and_then(|()| std::fs::create_dir_all(staging))
            .map_err(|e| StageError::io(format!("preparing {}", staging.display()), e))?;
        let task = StagedTask {
            stage_name: instance.name.clone(),
            kind: instance.kind.name().to_owned(),
            kind_version: instance.kind.version(),
            params: params.clone(),
            outputs: instance.plan.outputs.clone(),
            work_dir: staging.join("scratch"),
            out_dir: staging.join("out"),
            checkpoint_dir: ctx.checkpoint_dir.clone(),
            log_path: ctx.log_path.clone(),
            cpus: instance.resources.cpus,
        };
        let task_path = staging.join(TASK_FILE);
        staged::write_json(&task_path, &task)
            .map_err(|e| StageError::io(format!("writing {}", task_path.display()), e))?;
        let script = staging.join("job.sh");
        let text = format!(
            "#!/bin/sh\n# electra-pipe stage {} (cache key {key})\nexec {} exec-stage {}\n",
            instance.name,
            shell_quote(&self.program.to_string_lossy()),
            shell_quote(&task_path.to_string_lossy())
        );
        std::fs::write(&script, text)
            .map_err(|e| StageError::io(format!("writing {}", script.display()), e))?;
        let options = sbatch_options(instance, key, staging);
        let id =
            commands::sbatch(&options, &script).map_err(|e| StageError::Failed(e.to_string()))?;
        let record = JobRecord {
            job_id: id,
            stage: instance.name.clone(),
            submitted: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            run_id: self.run_id.clone(),
        };
        if let Err(e) = self.index.record_job(key, &record) {
            let _ = commands::scancel(id);
            return Err(StageError::Failed(format!(
                "recording Slurm job {id}: {e} (the job was cancelled)"
            )));
        }
        Ok(id)
    }

    /// Waits until the job ends (the shared [`Poller`] watches every job of the run) or the run
    /// is cancelled (then cancels the job).
    fn wait(&self, id: u64, key: &str, ctx: &StageContext<'_>) -> Result<JobState, StageError> {
        let outcome = self
            .poller
            .wait(id, &|| ctx.cancel.is_cancelled())
            .map_err(|e| StageError::Failed(e.to_string()))?;
        match outcome {
            Outcome::Ended(state) => Ok(state),
            Outcome::Cancelled => {
                let cancelled = commands::scancel(id);
                let _ = self.index.forget_job(key);
                append_log(
                    &ctx.log_path,
                    &format!("== cancelled Slurm job {id} ({cancelled:?})\n"),
                );
                Err(StageError::Cancelled)
            }
        }
    }

    /// Reads the job's result and, when it succeeded, moves the verified outputs into
    /// `ctx.out_dir` for the scheduler to import.
    fn collect(
        &self,
        instance: &Instance,
        id: u64,
        state: &JobState,
        staging: &Path,
        ctx: &StageContext<'_>,
    ) -> Result<Metrics, StageError> {
        let result = staged::read_json::<StagedResult>(&staging.join(RESULT_FILE));
        let stderr = || tail("stderr", &staging.join("job.err"), 5);
        match (state, result) {
            (
                JobState::Completed | JobState::Unknown,
                Ok(StagedResult::Succeeded {
                    metrics,
                    files,
                    host,
                }),
            ) => {
                let out = staging.join("out");
                staged::verify(&out, &instance.plan.outputs, &files).map_err(StageError::Failed)?;
                for name in &instance.plan.outputs {
                    let to = ctx.out_dir.join(name);
                    if let Some(parent) = to.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| {
                            StageError::io(format!("creating {}", parent.display()), e)
                        })?;
                    }
                    std::fs::rename(out.join(name), &to)
                        .map_err(|e| StageError::io(format!("moving output `{name}`"), e))?;
                }
                append_log(
                    &ctx.log_path,
                    &format!("== Slurm job {id} completed on {host}\n"),
                );
                Ok(metrics)
            }
            // Cancelled by hand while running: the command may die of the SIGTERM before the
            // job's runner sees its own, so the result says "killed"; the cause is Slurm's.
            (JobState::Ended(ended), Ok(StagedResult::Failed { error, host }))
                if ended.starts_with("CANCELLED") =>
            {
                Err(StageError::Failed(format!(
                    "Slurm job {id} ended {ended} on {host}: {error}{}",
                    stderr()
                )))
            }
            (_, Ok(StagedResult::Failed { error, host })) => Err(StageError::Failed(format!(
                "{error} (Slurm job {id} on {host}){}",
                tail("log", &ctx.log_path, 3)
            ))),
            (_, Ok(StagedResult::Cancelled)) => Err(StageError::Failed(format!(
                "Slurm job {id} was cancelled outside this run{}",
                stderr()
            ))),
            (JobState::Unknown, Err(_)) => Err(StageError::Failed(format!(
                "Slurm job {id} vanished: no squeue, sacct or scontrol record and no result{}",
                stderr()
            ))),
            // Also a job whose stage succeeded but that Slurm then failed (a time limit hit
            // while exiting): its outputs are not trusted.
            (state, _) => Err(StageError::Failed(format!(
                "Slurm job {id} ended {} without a usable result{}",
                describe(state),
                stderr()
            ))),
        }
    }
}

impl Executor for SlurmExecutor {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn execute(
        &self,
        instance: &Instance,
        key: &str,
        params: &Params,
        ctx: &StageContext<'_>,
    ) -> Result<Metrics, StageError> {
        let staging = staging_dir(&self.cache_root, key);
        let recorded = self
            .index
            .job(key)
            .map_err(|e| StageError::Failed(e.to_string()))?;
        let id = match recorded {
            Some(job) => {
                append_log(
                    &ctx.log_path,
                    &format!(
                        "== reattached to Slurm job {} (submitted {} by run {})\n",
                        job.job_id, job.submitted, job.run_id
                    ),
                );
                tracing::info!(stage = %instance.name, job = job.job_id, "reattached to Slurm job");
                job.job_id
            }
            None => {
                let id = self.submit(instance, key, params, ctx, &staging)?;
                append_log(&ctx.log_path, &format!("== submitted Slurm job {id}\n"));
                id
            }
        };
        let state = self.wait(id, key, ctx)?;
        let outcome = self.collect(instance, id, &state, &staging, ctx);
        self.index
            .forget_job(key)
            .map_err(|e| StageError::Failed(e.to_string()))?;
        if outcome.is_ok() {
            let _ = remove_any(&staging);
        }
        outcome
    }
}

/// The sbatch options for one stage: name, key, log files, then its resources.
fn sbatch_options(instance: &Instance, key: &str, staging: &Path) -> Vec<String> {
    let r = &instance.resources;
    let mut options = vec![
        format!("--job-name={}", instance.name),
        format!("--comment=electra-pipe:{key}"),
        format!("--cpus-per-task={}", r.cpus),
        format!("--output={}", staging.join("job.out").display()),
        format!("--error={}", staging.join("job.err").display()),
        format!("--chdir={}", staging.display()),
    ];
    let optional = [
        ("--mem", r.memory.clone()),
        ("--gpus", r.gpus.map(|g| g.to_string())),
        ("--time", r.time.clone()),
        ("--partition", r.partition.clone()),
        ("--account", r.account.clone()),
    ];
    for (flag, value) in optional {
        if let Some(value) = value {
            options.push(format!("{flag}={value}"));
        }
    }
    options.extend(r.sbatch_args.iter().cloned());
    options
}

fn describe(state: &JobState) -> String {
    match state {
        JobState::Active(s) | JobState::Ended(s) => s.clone(),
        JobState::Completed => "COMPLETED".into(),
        JobState::Unknown => "unknown".into(),
    }
}

/// The last `n` lines of a job's stderr or of the stage log (without electra-pipe's own `==`
/// lines), as `; <label>: ...`, or nothing: what the failure summary shows.
fn tail(label: &str, path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("== "))
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "; {label}: {}",
        lines[lines.len().saturating_sub(n)..].join(" | ")
    )
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
