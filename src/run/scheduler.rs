//! The scheduler: walks the DAG, reuses verified cached results, runs the rest in parallel
//! (up to `jobs`, within the CPU budget), retries failures, blocks the descendants of what
//! failed while every other branch goes on, and stops cleanly when cancelled.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use electra_pipe_api::{CancelToken, StageContext, StageError};
use serde_json::Value;

use super::executor::Executor;
use super::frontier::Frontier;
use super::observer::{Observer, StageProgress};
use crate::cache::store::remove_any;
use crate::cache::{Cache, CacheError, Failure, KeyMaterial, ObjectRef, Record};
use crate::evaluate::{abbreviate, evaluate_wave, with_references, Check, Reason, Verdict};
use crate::spec::Pipeline;

/// How to run.
pub struct RunOptions {
    /// Most stages running at once.
    pub jobs: usize,
    /// CPUs the running stages may occupy together.
    pub cpus: usize,
    /// Instances to re-run even when cached.
    pub forced: HashSet<usize>,
    /// This run's id (journal name, recorded in results).
    pub run_id: String,
}

/// What happened in a run.
#[derive(Debug, Default)]
pub struct Summary {
    /// Instances that ran and succeeded.
    pub ran: usize,
    /// Instances reused from the cache.
    pub cached: usize,
    /// Instances that failed: name, error, log.
    pub failed: Vec<(String, String, PathBuf)>,
    /// Instances blocked by a failure upstream: name, the failed one.
    pub blocked: Vec<(String, String)>,
    /// Instances not finished because the run was interrupted.
    pub not_finished: usize,
    /// Whether the run was interrupted.
    pub interrupted: bool,
}

/// An instance about to run.
struct Task {
    index: usize,
    key: String,
    material: KeyMaterial,
    why: String,
    /// Its params, each reference slot the path of the output it names.
    params: Value,
}

/// What a finished instance gives its dependents: its outputs by name.
type Outputs = BTreeMap<String, ObjectRef>;

enum Outcome {
    Done(Box<Record>),
    Failed(String, PathBuf),
    Cancelled,
}

/// What workers share.
struct Shared<'a> {
    pipeline: &'a Pipeline,
    cache: &'a Cache,
    executors: &'a HashMap<String, Arc<dyn Executor>>,
    observer: &'a Observer,
    cancel: &'a CancelToken,
    run_id: &'a str,
}

/// Runs `pipeline` to completion (or cancellation).
pub fn run(
    pipeline: &Pipeline,
    cache: &Cache,
    executors: &HashMap<String, Arc<dyn Executor>>,
    options: &RunOptions,
    observer: &Observer,
    cancel: &CancelToken,
) -> Result<Summary, CacheError> {
    let mut frontier: Frontier<'_, Outputs> =
        Frontier::new(&pipeline.dag.order, &pipeline.dag.dependents);
    let mut tasks: HashMap<usize, Task> = HashMap::new();
    let (mut running, mut cpus_used) = (0usize, 0usize);
    let mut summary = Summary::default();
    let shared = Shared {
        pipeline,
        cache,
        executors,
        observer,
        cancel,
        run_id: &options.run_id,
    };
    let (tx, rx) = mpsc::channel::<(usize, Outcome)>();

    std::thread::scope(|scope| -> Result<(), CacheError> {
        loop {
            let stopping = cancel.is_cancelled();
            let mut wave = if stopping {
                Vec::new()
            } else {
                frontier.take_to_evaluate()
            };
            while !wave.is_empty() {
                let outputs_of = |d: usize| frontier.outputs(d).cloned();
                let evaluations = evaluate_wave(
                    pipeline,
                    &wave,
                    &outputs_of,
                    cache,
                    &options.forced,
                    Check::Verify,
                );
                let mut discarded = HashSet::new();
                for (i, eval) in std::mem::take(&mut wave).into_iter().zip(evaluations) {
                    let eval = eval?;
                    let instance = &pipeline.instances[i];
                    if let Some((record, problem)) = &eval.unusable {
                        // Twins in one wave find the same unusable record.
                        if discarded.insert(record.key.clone()) {
                            cache.discard(record, problem)?;
                        }
                    }
                    match eval.verdict {
                        Verdict::Cached(record) => {
                            if cache
                                .index
                                .latest(&pipeline.name, &instance.name)?
                                .is_none_or(|l| l.key != eval.key)
                            {
                                cache.index.set_latest(
                                    &pipeline.name,
                                    &instance.name,
                                    &eval.key,
                                    &eval.material,
                                )?;
                            }
                            summary.cached += 1;
                            observer.cached(&instance.name);
                            frontier.finish(i, record.outputs);
                        }
                        Verdict::MissingInput(path) => {
                            let error = crate::evaluate::missing_input(&path, &pipeline.data_dir);
                            observer.failed(&instance.name, &error, 0.0, &PathBuf::from("-"));
                            summary
                                .failed
                                .push((instance.name.clone(), error, PathBuf::from("-")));
                            block(pipeline, &mut frontier, i, observer, &mut summary);
                        }
                        Verdict::Run(reasons) => {
                            if !frontier.enqueue(i, &eval.key) {
                                continue;
                            }
                            let why = reasons
                                .iter()
                                .map(Reason::to_string)
                                .collect::<Vec<_>>()
                                .join("; ");
                            let params = run_params(pipeline, cache, i, &frontier);
                            tasks.insert(
                                i,
                                Task {
                                    index: i,
                                    key: eval.key,
                                    material: eval.material,
                                    why,
                                    params,
                                },
                            );
                        }
                    }
                }
                wave = frontier.take_to_evaluate();
            }
            while let (false, Some(i)) = (stopping, frontier.peek_ready()) {
                let cpus = local_cpus(&pipeline.instances[i], options.cpus);
                if running >= options.jobs || (running > 0 && cpus_used + cpus > options.cpus) {
                    break;
                }
                frontier.start();
                let task = tasks.remove(&i).expect("queued tasks exist");
                running += 1;
                cpus_used += cpus;
                let tx = tx.clone();
                let shared = &shared;
                scope.spawn(move || {
                    let outcome = attempt(shared, &task);
                    let _ = tx.send((task.index, outcome));
                });
            }
            if running == 0 && (stopping || frontier.is_drained()) {
                break;
            }
            let (i, outcome) = match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(message) => message,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            running -= 1;
            cpus_used -= local_cpus(&pipeline.instances[i], options.cpus);
            let name = &pipeline.instances[i].name;
            match outcome {
                Outcome::Done(record) => {
                    summary.ran += 1;
                    observer.done(name, record.duration_secs);
                    frontier.finish(i, record.outputs);
                }
                Outcome::Failed(error, log) => {
                    summary.failed.push((name.clone(), error, log));
                    block(pipeline, &mut frontier, i, observer, &mut summary);
                }
                Outcome::Cancelled => {
                    frontier.cancel(i);
                    observer.cancelled(name);
                }
            }
        }
        Ok(())
    })?;
    summary.interrupted = cancel.is_cancelled();
    summary.not_finished = frontier.not_finished();
    Ok(summary)
}

/// The CPUs of this machine an instance occupies while it runs (at most all of them); a stage
/// that runs on a cluster occupies none.
fn local_cpus(instance: &crate::spec::Instance, machine: usize) -> usize {
    if instance.executor == "local" {
        instance.resources.cpus.min(machine)
    } else {
        0
    }
}

/// Marks the failed `i` so, and every descendant of it blocked.
fn block(
    pipeline: &Pipeline,
    frontier: &mut Frontier<'_, Outputs>,
    i: usize,
    observer: &Observer,
    summary: &mut Summary,
) {
    let failed = &pipeline.instances[i].name;
    for d in frontier.fail(i) {
        let name = &pipeline.instances[d].name;
        observer.blocked(name, failed);
        summary.blocked.push((name.clone(), failed.clone()));
    }
}

/// An instance's params for running it: each reference slot is the path of the output it
/// names, in the store.
fn run_params(
    pipeline: &Pipeline,
    cache: &Cache,
    i: usize,
    frontier: &Frontier<'_, Outputs>,
) -> Value {
    let outputs_of = |d: usize| frontier.outputs(d).cloned();
    with_references(&pipeline.instances[i], &outputs_of, &|object, slot| {
        let mut path = cache.store.output_path(object, &slot.output);
        if let Some(sub) = &slot.subpath {
            path = path.join(sub);
        }
        path.to_string_lossy().into_owned()
    })
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Runs a task's attempts (1 + retries) and stores its outputs; returns what happened.
fn attempt(shared: &Shared<'_>, task: &Task) -> Outcome {
    let instance = &shared.pipeline.instances[task.index];
    let cache = shared.cache;
    let log = cache.log_path(&shared.pipeline.name, &instance.name, &task.key);
    if let Some(dir) = log.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let params = &task.params;
    let Some(executor) = shared.executors.get(&instance.executor) else {
        return Outcome::Failed(
            format!("executor `{}` is not available", instance.executor),
            log,
        );
    };
    shared.observer.running(&instance.name, &task.why, &log);
    let attempts = instance.retries + 1;
    let mut last_error = String::new();
    let started_all = Instant::now();
    for n in 1..=attempts {
        if shared.cancel.is_cancelled() {
            return Outcome::Cancelled;
        }
        let started = SystemTime::now();
        let clock = Instant::now();
        append_log(
            &log,
            &format!(
                "== electra-pipe: {} attempt {n}/{attempts} at {} (key {}, run {})\n== why: {}\n",
                instance.name,
                rfc3339(started),
                task.key,
                shared.run_id,
                task.why
            ),
        );
        match run_once(shared, task, executor.as_ref(), params, &log) {
            Ok((outputs, metrics)) => {
                let duration = clock.elapsed().as_secs_f64();
                let record = Record {
                    key: task.key.clone(),
                    pipeline: shared.pipeline.name.clone(),
                    stage: instance.name.clone(),
                    kind: instance.kind.name().to_owned(),
                    kind_version: instance.kind.version(),
                    outputs,
                    metrics,
                    started: rfc3339(started),
                    finished: rfc3339(SystemTime::now()),
                    duration_secs: duration,
                    host: gethostname::gethostname().to_string_lossy().into_owned(),
                    electra_pipe_version: env!("CARGO_PKG_VERSION").to_owned(),
                    log: log.clone(),
                    run_id: shared.run_id.to_owned(),
                };
                if let Err(e) = cache.publish(&record, &task.material) {
                    return Outcome::Failed(format!("storing the result: {e}"), log);
                }
                append_log(
                    &log,
                    &format!("== done in {duration:.3}s; outputs stored\n"),
                );
                return Outcome::Done(Box::new(record));
            }
            Err(StageError::Cancelled) => {
                append_log(
                    &log,
                    "== cancelled: the run was interrupted; nothing recorded\n",
                );
                let _ = remove_any(&cache.work_dir(&task.key));
                return Outcome::Cancelled;
            }
            Err(error) => {
                last_error = error.to_string();
                append_log(&log, &format!("== failed: {last_error}\n"));
                if shared.cancel.is_cancelled() {
                    return Outcome::Cancelled;
                }
                if n < attempts {
                    shared
                        .observer
                        .retrying(&instance.name, &last_error, n, attempts);
                }
            }
        }
    }
    let failure = Failure {
        key: task.key.clone(),
        when: rfc3339(SystemTime::now()),
        error: last_error.clone(),
        log: log.clone(),
    };
    let _ = cache
        .index
        .set_failure(&shared.pipeline.name, &instance.name, &failure);
    shared.observer.failed(
        &instance.name,
        &last_error,
        started_all.elapsed().as_secs_f64(),
        &log,
    );
    Outcome::Failed(last_error, log)
}

type Stored = (BTreeMap<String, ObjectRef>, BTreeMap<String, Value>);

/// One attempt: a fresh work dir, the executor, then the outputs into the store.
fn run_once(
    shared: &Shared<'_>,
    task: &Task,
    executor: &dyn Executor,
    params: &Value,
    log: &std::path::Path,
) -> Result<Stored, StageError> {
    let instance = &shared.pipeline.instances[task.index];
    let cache = shared.cache;
    let work = cache.work_dir(&task.key);
    let (scratch, out, checkpoints) = (
        cache.scratch_dir(&task.key),
        work.join("out"),
        cache.checkpoint_dir(&task.key),
    );
    remove_any(&work).map_err(|e| StageError::io(format!("clearing {}", work.display()), e))?;
    for dir in [&scratch, &out, &checkpoints] {
        std::fs::create_dir_all(dir)
            .map_err(|e| StageError::io(format!("creating {}", dir.display()), e))?;
    }
    let progress = StageProgress {
        observer: shared.observer,
        name: &instance.name,
    };
    let ctx = StageContext {
        stage_name: &instance.name,
        work_dir: scratch,
        out_dir: out.clone(),
        checkpoint_dir: checkpoints,
        tuning_dir: cache.tuning_dir(),
        log_path: log.to_owned(),
        cpus: instance.resources.cpus,
        progress: &progress,
        cancel: shared.cancel.clone(),
    };
    let metrics = executor.execute(instance, &task.key, params, &ctx)?;
    let mut outputs = BTreeMap::new();
    for name in &instance.plan.outputs {
        let path = out.join(name);
        if std::fs::symlink_metadata(&path).is_err() {
            return Err(StageError::Failed(format!(
                "the stage did not create its declared output `{name}`"
            )));
        }
        let object = cache
            .store
            .import(&path, name)
            .map_err(|e| StageError::Failed(format!("storing output `{name}`: {e}")))?;
        outputs.insert(name.clone(), object);
    }
    Ok((outputs, metrics))
}

/// Appends `text` to a stage log (best effort: a log that cannot be written loses the line).
pub(super) fn append_log(path: &std::path::Path, text: &str) {
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = file.write_all(text.as_bytes());
    }
}

/// Names for the summary: up to three, then a count.
pub fn names(items: &[(String, String)]) -> String {
    abbreviate(&items.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>())
}
