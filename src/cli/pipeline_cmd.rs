//! `run`, `plan` and `validate`.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use anyhow::Result;
use electra_pipe_api::CancelToken;

use super::{exit, Global, Invalid, PipelineArgs, SlurmArgs};
use crate::cache::{snapshot, Cache, LockMode};
use crate::evaluate::{dry_run, Planned};
use crate::run::executor::{Executor, LocalExecutor};
use crate::run::journal::Event;
use crate::run::observer::{human_seconds, Observer, Verbosity};
use crate::run::scheduler::{self, RunOptions};
use crate::run::slurm::SlurmExecutor;
use crate::spec::{self, diag::closest, LoadOptions, Pipeline};

/// Loads and checks the pipeline named on the command line. It lives as long as the process
/// (each command loads one): freeing 100,000 expanded instances at exit took 14% of a
/// `validate`.
pub fn load(global: &Global, args: &PipelineArgs) -> Result<&'static Pipeline> {
    let mut overrides = args.set.clone();
    if let Some(backend) = &args.backend {
        overrides.push(("backend".to_owned(), backend.clone()));
    }
    let options = LoadOptions {
        data_dir: global.data.clone(),
        overrides,
        executor: args.executor.clone(),
    };
    let pipeline = spec::load(&args.pipeline, &options, &electra_stages::registry())?;
    Ok(Box::leak(Box::new(pipeline)))
}

/// Instance indices for `--force` names (a stage or one instance); unknown names are invalid.
fn forced(pipeline: &Pipeline, names: &[String]) -> Result<HashSet<usize>> {
    let mut out = HashSet::new();
    for name in names {
        let selected = pipeline.select(name);
        if selected.is_empty() {
            let mut known: Vec<&str> = pipeline
                .instances
                .iter()
                .map(|i| i.stage.as_str())
                .collect();
            known.dedup();
            let hint = closest(name, known.iter().copied())
                .map_or_else(String::new, |c| format!("; did you mean `{c}`?"));
            return Err(Invalid(format!(
                "--force {name}: no stage or instance of that name in {}{hint}",
                pipeline.source.path.display()
            ))
            .into());
        }
        out.extend(selected);
    }
    Ok(out)
}

fn lock_mode(no_wait: bool) -> LockMode {
    if no_wait {
        LockMode::NoWait
    } else {
        LockMode::Wait
    }
}

fn run_id() -> String {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    format!("{}-{}", stamp.replace(['-', ':'], ""), std::process::id())
}

/// `electra-pipe run`.
pub fn run(
    global: &Global,
    args: &PipelineArgs,
    jobs: usize,
    cpus: Option<usize>,
    force: &[String],
    no_wait: bool,
    slurm: &SlurmArgs,
) -> Result<ExitCode> {
    let slurm_poll = slurm.slurm_poll;
    let pipeline = load(global, args)?;
    let forced = forced(pipeline, force)?;
    if jobs == 0 {
        return Err(Invalid("--jobs must be at least 1".into()).into());
    }
    if !(slurm_poll.is_finite() && slurm_poll > 0.0) {
        return Err(Invalid(format!(
            "--slurm-poll must be a positive number of seconds, found {slurm_poll}"
        ))
        .into());
    }
    if slurm.slurm_array_limit == 0 {
        return Err(Invalid("--slurm-array-limit must be at least 1".into()).into());
    }
    let cache = Cache::open(&global.cache, lock_mode(no_wait))?;
    // `show`, `plan` and `cache ls` read this while the run holds the cache.
    let _snapshot = snapshot::Publisher::start(cache.index.clone(), cache.root());
    let run_id = run_id();
    let mut executors: HashMap<String, Arc<dyn Executor>> = HashMap::new();
    let local: Arc<dyn Executor> = Arc::new(LocalExecutor);
    executors.insert(local.name().to_owned(), local);
    if pipeline.instances.iter().any(|i| i.executor == "slurm") {
        // Checked before anything runs: tools on PATH, controller up.
        executors.insert(
            "slurm".to_owned(),
            Arc::new(SlurmExecutor::new(
                &cache,
                &run_id,
                Duration::from_secs_f64(slurm_poll),
                slurm.slurm_array_limit,
            )?),
        );
    }
    let verbosity = if global.quiet {
        Verbosity::Quiet
    } else {
        Verbosity::Normal
    };
    let observer = Observer::new(
        &cache.runs_dir(),
        &run_id,
        pipeline.instances.len(),
        verbosity,
    )?;
    observer.start(Event::RunStart {
        run_id: run_id.clone(),
        pipeline: pipeline.name.clone(),
        file: pipeline.source.path.display().to_string(),
        pid: std::process::id(),
        jobs,
        stages: pipeline
            .dag
            .order
            .iter()
            .map(|&i| pipeline.instances[i].name.clone())
            .collect(),
    });
    let cancel = CancelToken::new();
    let handler_token = cancel.clone();
    let _ = ctrlc::set_handler(move || {
        if handler_token.is_cancelled() {
            eprintln!("\ninterrupted again: quitting now");
            std::process::exit(i32::from(exit::INTERRUPTED));
        }
        eprintln!("\ninterrupt: stopping running stages; nothing unfinished is recorded (Ctrl-C again to quit at once)");
        handler_token.cancel();
    });
    let options = RunOptions {
        jobs,
        cpus: cpus
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1),
        forced,
        run_id,
    };
    let started = Instant::now();
    let summary = scheduler::run(pipeline, &cache, &executors, &options, &observer, &cancel)?;
    let ok = summary.failed.is_empty() && !summary.interrupted;
    observer.finish(ok, summary.interrupted);
    let elapsed = human_seconds(started.elapsed().as_secs_f64());
    let total = pipeline.instances.len();
    for line in executors.values().filter_map(|e| e.report()) {
        eprintln!("{line}");
    }
    if summary.interrupted {
        eprintln!(
            "interrupted after {elapsed}: {} ran, {} cached, {} not finished (nothing unfinished was recorded; run again to resume)",
            summary.ran, summary.cached, summary.not_finished
        );
        return Ok(ExitCode::from(exit::INTERRUPTED));
    }
    if !summary.failed.is_empty() {
        eprintln!(
            "\n{} of {total} stages failed ({} ran, {} cached, {} blocked) in {elapsed}:",
            summary.failed.len(),
            summary.ran,
            summary.cached,
            summary.blocked.len()
        );
        for (name, error, log) in &summary.failed {
            eprintln!("  ✗ {name}: {error}\n      log: {}", log.display());
        }
        if !summary.blocked.is_empty() {
            eprintln!(
                "  blocked by these failures: {}",
                scheduler::names(&summary.blocked)
            );
        }
        return Ok(ExitCode::from(exit::FAILED));
    }
    if !global.quiet {
        eprintln!(
            "✓ {total} stages ok: {} ran, {} cached, in {elapsed}",
            summary.ran, summary.cached
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `electra-pipe plan`.
pub fn plan(
    global: &Global,
    args: &PipelineArgs,
    force: &[String],
    no_wait: bool,
) -> Result<ExitCode> {
    let pipeline = load(global, args)?;
    let forced = forced(pipeline, force)?;
    let (cache, note) = Cache::open_to_read(&global.cache, lock_mode(no_wait))?;
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    let planned = dry_run(pipeline, &cache, &forced)?;
    let (mut cached, mut runs, mut blocked) = (0, 0, 0);
    let width = pipeline
        .instances
        .iter()
        .map(|i| i.name.chars().count())
        .max()
        .unwrap_or(0)
        .min(48);
    let mut lines = Vec::new();
    for &i in &pipeline.dag.order {
        let name = &pipeline.instances[i].name;
        let line = match &planned[i].status {
            Planned::Cached(_) => {
                cached += 1;
                format!("  cached    {name}")
            }
            Planned::WillRun(why) => {
                runs += 1;
                let on = match pipeline.instances[i].executor.as_str() {
                    "local" => String::new(),
                    executor => format!(" (as a {executor} job)"),
                };
                format!("  will run  {name:<width$}  {why}{on}")
            }
            Planned::Blocked(why) => {
                blocked += 1;
                format!("  blocked   {name:<width$}  {why}")
            }
        };
        lines.push(line);
    }
    println!(
        "plan for {} (pipeline `{}`, {} stages): {cached} cached, {runs} will run, {blocked} blocked",
        pipeline.source.path.display(),
        pipeline.name,
        pipeline.instances.len()
    );
    println!("{}", lines.join("\n"));
    Ok(ExitCode::SUCCESS)
}

/// `electra-pipe validate`.
pub fn validate(global: &Global, args: &PipelineArgs) -> Result<ExitCode> {
    let pipeline = load(global, args)?;
    let mut stages: Vec<&str> = pipeline
        .instances
        .iter()
        .map(|i| i.stage.as_str())
        .collect();
    stages.dedup();
    let missing: Vec<&String> = pipeline
        .instances
        .iter()
        .flat_map(|i| i.data_inputs.iter())
        .filter(|p| !std::path::Path::new(p).exists())
        .collect();
    println!(
        "{} is valid: {} stages, {} instances, {} dependencies",
        pipeline.source.path.display(),
        stages.len(),
        pipeline.instances.len(),
        pipeline
            .instances
            .iter()
            .map(|i| i.deps.len())
            .sum::<usize>()
    );
    for path in missing.iter().collect::<std::collections::BTreeSet<_>>() {
        println!(
            "warning: input {path} does not exist yet (data directory: {})",
            pipeline.data_dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
