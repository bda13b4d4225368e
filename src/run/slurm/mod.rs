//! The Slurm executor: each stage attempt becomes a batch job that runs
//! `electra-pipe exec-stage <staging>/task.json` on a node (see [`super::staged`]).
//!
//! - Matrix cells of one stage whose inputs are ready together (and whose `resources` agree)
//!   are submitted as one job array named after the stage ([`arrays`]): one `sbatch
//!   --parsable --array=0-(n-1)%limit`, each cell a task (`123_4`) that runs from its own
//!   staging directory. A stage submitted alone is a plain
//!   job, named after the stage, with the cache key in its comment. The stage's `resources`
//!   are sbatch options.
//! - Its id (job, or array task) is recorded in the sled index before the orchestrator waits on it. An orchestrator
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

pub mod arrays;
pub mod commands;
pub mod poller;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use electra_pipe_api::{Metrics, Params, StageContext, StageError};

use super::executor::Executor;
use super::scheduler::append_log;
use super::staged::{self, StagedResult, StagedTask, RESULT_FILE, TASK_FILE};
use crate::cache::store::remove_any;
use crate::cache::{staging_dir, Cache, Index, JobRecord};
use crate::spec::Instance;
use arrays::{Batcher, Member};
use commands::{JobId, JobState, SlurmError};
use poller::{Outcome, Poller};

/// Submits stage attempts as Slurm jobs.
pub struct SlurmExecutor {
    index: Index,
    cache_root: PathBuf,
    program: PathBuf,
    run_id: String,
    poller: Poller,
    batcher: Batcher,
    /// Most tasks of one array running at once (`--array=...%limit`).
    array_limit: usize,
    /// Array scripts written by this run.
    arrays_written: AtomicUsize,
    /// `sbatch` calls made by this run.
    submissions: AtomicUsize,
    /// Jobs this run saw end, by final state (COMPLETED, FAILED, TIMEOUT, ...).
    ended: Mutex<BTreeMap<String, usize>>,
}

/// How long a batch stays open for stages that become ready together.
const ARRAY_WINDOW: Duration = Duration::from_millis(300);
/// Where array scripts and Slurm's own per-task output go, under `staging/`.
pub const ARRAYS: &str = "arrays";

impl SlurmExecutor {
    /// An executor for `cache`, after checking that the Slurm tools are on PATH and the
    /// controller answers, polling Slurm at most every `poll`, running at most `array_limit`
    /// tasks of one array at once. Jobs run `program` (this binary; the nodes must see it at
    /// the same path).
    pub fn new(
        cache: &Cache,
        run_id: &str,
        poll: Duration,
        array_limit: usize,
    ) -> Result<SlurmExecutor, SlurmError> {
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
            batcher: Batcher::new(ARRAY_WINDOW),
            array_limit: array_limit.max(1),
            arrays_written: AtomicUsize::new(0),
            submissions: AtomicUsize::new(0),
            ended: Mutex::new(BTreeMap::new()),
        })
    }

    /// Writes the task, submits it (alone or in an array with the stages submitted at the same
    /// time) and records the job.
    fn submit(
        &self,
        instance: &Instance,
        key: &str,
        params: &Params,
        ctx: &StageContext<'_>,
        staging: &Path,
    ) -> Result<JobId, StageError> {
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
            tuning_dir: ctx.tuning_dir.clone(),
            log_path: ctx.log_path.clone(),
            cpus: instance.resources.cpus,
        };
        let task_path = staging.join(TASK_FILE);
        staged::write_json(&task_path, &task)
            .map_err(|e| StageError::io(format!("writing {}", task_path.display()), e))?;
        let member = Member {
            stage: instance.name.clone(),
            key: key.to_owned(),
            staging: staging.to_owned(),
        };
        let id = self
            .batcher
            .submit(&array_group(instance), member, &|members| {
                self.submit_batch(instance, members)
            })
            .map_err(|e| StageError::Failed(e.to_string()))?;
        let record = JobRecord {
            job_id: id.job,
            array_task: id.task,
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

    /// Submits a batch (stages with `instance`'s resources): one member as a plain job, more
    /// as a job array whose task `i` runs member `i` in its staging directory.
    fn submit_batch(&self, instance: &Instance, members: &[Member]) -> Result<u64, SlurmError> {
        self.submissions.fetch_add(1, Ordering::SeqCst);
        let program = shell_quote(&self.program.to_string_lossy());
        let written = |path: &Path, text: String| {
            std::fs::write(path, text).map_err(|e| SlurmError::Failed {
                command: format!("writing {}", path.display()),
                message: e.to_string(),
            })
        };
        if let [one] = members {
            let script = one.staging.join("job.sh");
            let task = shell_quote(&one.staging.join(TASK_FILE).to_string_lossy());
            written(
                &script,
                format!(
                    "#!/bin/sh\n# electra-pipe stage {} (cache key {})\nexec {program} exec-stage {task}\n",
                    one.stage, one.key
                ),
            )?;
            let mut options = vec![
                format!("--job-name={}", one.stage),
                format!("--comment=electra-pipe:{}", one.key),
                format!("--output={}", one.staging.join("job.out").display()),
                format!("--error={}", one.staging.join("job.err").display()),
                format!("--chdir={}", one.staging.display()),
            ];
            options.extend(resource_options(instance));
            return commands::sbatch(&options, &script);
        }
        let dir = arrays_dir(&self.cache_root);
        std::fs::create_dir_all(&dir).map_err(|e| SlurmError::Failed {
            command: format!("creating {}", dir.display()),
            message: e.to_string(),
        })?;
        let n = self.arrays_written.fetch_add(1, Ordering::SeqCst);
        let script = dir.join(format!("{}-{n}.sh", self.run_id));
        let mut text = format!(
            "#!/bin/sh\n# electra-pipe: {} stages as one job array; task i runs stage i from its staging directory\ncase \"$SLURM_ARRAY_TASK_ID\" in\n",
            members.len()
        );
        for (i, member) in members.iter().enumerate() {
            text.push_str(&format!(
                "{i}) dir={} ;; # {} (cache key {})\n",
                shell_quote(&member.staging.to_string_lossy()),
                member.stage,
                member.key
            ));
        }
        text.push_str(&format!(
            "*) echo \"electra-pipe: no stage for array task $SLURM_ARRAY_TASK_ID\" >&2; exit 2 ;;\nesac\ncd \"$dir\" || exit 2\nexec {program} exec-stage \"$dir/{TASK_FILE}\" >>\"$dir/job.out\" 2>>\"$dir/job.err\"\n"
        ));
        written(&script, text)?;
        let mut options = vec![
            format!("--job-name={}", instance.stage),
            format!("--comment=electra-pipe:array of {} stages", members.len()),
            format!("--output={}", dir.join("%A_%a.out").display()),
            format!("--error={}", dir.join("%A_%a.err").display()),
            format!("--chdir={}", dir.display()),
            format!("--array=0-{}%{}", members.len() - 1, self.array_limit),
        ];
        options.extend(resource_options(instance));
        commands::sbatch(&options, &script)
    }

    /// Waits until the job ends (the shared [`Poller`] watches every job of the run) or the run
    /// is cancelled (then cancels the job).
    fn wait(&self, id: JobId, key: &str, ctx: &StageContext<'_>) -> Result<JobState, StageError> {
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
        id: JobId,
        state: &JobState,
        staging: &Path,
        ctx: &StageContext<'_>,
    ) -> Result<Metrics, StageError> {
        let result = staged::read_json::<StagedResult>(&staging.join(RESULT_FILE));
        let stderr = || {
            // An array task's own stderr, then what Slurm wrote for it (a cancellation).
            let slurm = id
                .task
                .map(|task| arrays_dir(&self.cache_root).join(format!("{}_{task}.err", id.job)));
            let mut text = tail("stderr", &staging.join("job.err"), 5);
            if let Some(path) = slurm {
                text.push_str(&tail("Slurm", &path, 2));
            }
            text
        };
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

    fn report(&self) -> Option<String> {
        let ended = self.ended.lock().expect("job counts lock");
        let submissions = self.submissions.load(Ordering::SeqCst);
        if ended.is_empty() && submissions == 0 {
            return None;
        }
        let states: Vec<String> = ended.iter().map(|(s, n)| format!("{n} {s}")).collect();
        Some(format!(
            "Slurm: {submissions} sbatch call(s); jobs ended: {}",
            if states.is_empty() {
                "none".to_owned()
            } else {
                states.join(", ")
            }
        ))
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
                        JobId {
                            job: job.job_id,
                            task: job.array_task
                        },
                        job.submitted,
                        job.run_id
                    ),
                );
                let id = JobId {
                    job: job.job_id,
                    task: job.array_task,
                };
                tracing::info!(stage = %instance.name, job = %id, "reattached to Slurm job");
                id
            }
            None => {
                let id = self.submit(instance, key, params, ctx, &staging)?;
                append_log(&ctx.log_path, &format!("== submitted Slurm job {id}\n"));
                id
            }
        };
        let state = self.wait(id, key, ctx)?;
        let name = describe(&state);
        let name = name
            .split_whitespace()
            .next()
            .unwrap_or("unknown")
            .to_owned();
        *self
            .ended
            .lock()
            .expect("job counts lock")
            .entry(name)
            .or_default() += 1;
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

/// A stage's `resources` as sbatch options: what the stages of one array must share.
fn resource_options(instance: &Instance) -> Vec<String> {
    let r = &instance.resources;
    let mut options = vec![format!("--cpus-per-task={}", r.cpus)];
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

/// What the stages of one array share: the stage (its matrix cells become the array's tasks,
/// named after it) and the resources.
fn array_group(instance: &Instance) -> Vec<String> {
    let mut group = vec![instance.stage.clone()];
    group.extend(resource_options(instance));
    group
}

/// Where array scripts and Slurm's own output of array tasks go.
fn arrays_dir(cache_root: &Path) -> PathBuf {
    cache_root.join("staging").join(ARRAYS)
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
