//! `graph`, `status` and `show`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::pipeline_cmd::load;
use super::{Global, GraphFormat, Invalid, PipelineArgs};
use crate::cache::{self, Cache, LockMode};
use crate::run::journal::{self, Event};
use crate::run::observer::human_seconds;

/// `electra-pipe graph`.
pub fn graph(
    global: &Global,
    args: &PipelineArgs,
    format: GraphFormat,
    by_stage: bool,
) -> Result<ExitCode> {
    let pipeline = load(global, args)?;
    let mut nodes: Vec<(String, String)> = Vec::new();
    let mut edges: BTreeSet<(String, String)> = BTreeSet::new();
    let node_of = |i: usize| {
        let instance = &pipeline.instances[i];
        if by_stage {
            instance.stage.clone()
        } else {
            instance.name.clone()
        }
    };
    for (i, instance) in pipeline.instances.iter().enumerate() {
        let node = node_of(i);
        if !nodes.iter().any(|(n, _)| *n == node) {
            let cells = pipeline
                .instances
                .iter()
                .filter(|x| x.stage == instance.stage)
                .count();
            let label = if by_stage && cells > 1 {
                format!("{} ×{cells}", instance.kind.name())
            } else {
                instance.kind.name().to_owned()
            };
            nodes.push((node.clone(), label));
        }
        for &d in &instance.deps {
            edges.insert((node_of(d), node.clone()));
        }
    }
    match format {
        GraphFormat::Dot => {
            println!(
                "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box];",
                pipeline.name
            );
            for (node, label) in &nodes {
                println!(
                    "  {:?} [label=\"{}\\n({label})\"];",
                    node,
                    node.replace('"', "\\\"")
                );
            }
            for (a, b) in &edges {
                println!("  {a:?} -> {b:?};");
            }
            println!("}}");
        }
        GraphFormat::Mermaid => {
            println!("flowchart LR");
            let id: BTreeMap<&str, usize> = nodes
                .iter()
                .enumerate()
                .map(|(i, (n, _))| (n.as_str(), i))
                .collect();
            for (i, (node, label)) in nodes.iter().enumerate() {
                println!("  n{i}[\"{} ({label})\"]", node.replace('"', "#quot;"));
            }
            for (a, b) in &edges {
                println!("  n{} --> n{}", id[a.as_str()], id[b.as_str()]);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn process_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// `electra-pipe status`.
pub fn status(global: &Global) -> Result<ExitCode> {
    let runs = cache::runs_dir(&global.cache);
    let (run_id, entries) = journal::read_latest(&runs).with_context(|| {
        format!(
            "no run journal in {} (has a pipeline run with this --cache?)",
            runs.display()
        )
    })?;
    let mut header = None;
    let mut states: BTreeMap<String, (String, Option<String>, Option<f64>)> = BTreeMap::new();
    let mut progress: BTreeMap<String, (u64, Option<u64>, String, f64)> = BTreeMap::new();
    let mut started: BTreeMap<String, f64> = BTreeMap::new();
    let mut end = None;
    let (first_t, last_t) = (
        entries.first().map_or(0.0, |e| e.t),
        entries.last().map_or(0.0, |e| e.t),
    );
    for entry in &entries {
        match &entry.event {
            Event::RunStart {
                pipeline,
                file,
                pid,
                jobs,
                stages,
                ..
            } => {
                for s in stages {
                    states.insert(s.clone(), ("pending".into(), None, None));
                }
                header = Some((pipeline.clone(), file.clone(), *pid, *jobs, stages.len()));
            }
            Event::Stage {
                name,
                state,
                detail,
                seconds,
                log,
            } => {
                let detail = match (state.as_str(), log) {
                    ("failed", Some(log)) => Some(format!(
                        "{} (log: {})",
                        detail.clone().unwrap_or_default(),
                        log.display()
                    )),
                    _ => detail.clone(),
                };
                if state == "running" {
                    started.insert(name.clone(), entry.t);
                    progress.remove(name);
                }
                states.insert(name.clone(), (state.clone(), detail, *seconds));
            }
            Event::Progress {
                name,
                done,
                total,
                message,
            } => {
                progress.insert(name.clone(), (*done, *total, message.clone(), entry.t));
            }
            Event::RunEnd { ok, interrupted } => end = Some((*ok, *interrupted)),
        }
    }
    let Some((pipeline, file, pid, jobs, total)) = header else {
        return Err(Invalid(format!("the journal of run {run_id} has no start record")).into());
    };
    let condition = match end {
        Some((true, _)) => "finished successfully".to_owned(),
        Some((false, true)) => "interrupted".to_owned(),
        Some((false, false)) => "finished with failures".to_owned(),
        None if process_alive(pid) => format!("running (pid {pid})"),
        None => format!("stopped without finishing (pid {pid} is gone)"),
    };
    let now = if end.is_none() && process_alive(pid) {
        journal::now()
    } else {
        last_t
    };
    println!(
        "run {run_id} of pipeline `{pipeline}` ({file}): {condition}, {} elapsed",
        human_seconds(now - first_t)
    );
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (state, _, _) in states.values() {
        *counts.entry(state.as_str()).or_default() += 1;
    }
    let order = [
        "done",
        "cached",
        "running",
        "retrying",
        "failed",
        "blocked",
        "cancelled",
        "pending",
    ];
    let parts: Vec<String> = order
        .iter()
        .filter_map(|s| counts.get(s).map(|n| format!("{n} {s}")))
        .collect();
    println!("  {total} stages: {}", parts.join(", "));
    let durations: Vec<f64> = states
        .values()
        .filter(|(s, _, _)| s == "done")
        .filter_map(|(_, _, d)| *d)
        .collect();
    let pending = counts.get("pending").copied().unwrap_or(0);
    let mean =
        (!durations.is_empty()).then(|| durations.iter().sum::<f64>() / durations.len() as f64);
    // Each running stage's time left at its own rate so far, where it reports one.
    let running: Vec<Option<f64>> = states
        .iter()
        .filter(|(_, (state, _, _))| state == "running" || state == "retrying")
        .map(|(name, _)| {
            let (done, total, _, at) = progress.get(name)?;
            own_time_left(*done, (*total)?, at - started.get(name)?)
        })
        .collect();
    if end.is_none() {
        if let Some(left) = eta(&running, pending, mean, jobs) {
            println!(
                "  ETA ≈ {} (running stages at their own rates, then {pending} pending × mean stage time {} / {jobs} jobs)",
                human_seconds(left),
                mean.map_or_else(|| "—".to_owned(), human_seconds)
            );
        }
    }
    for (name, (state, detail, _)) in &states {
        match state.as_str() {
            "running" | "retrying" => {
                let p = progress.get(name).map_or_else(String::new, |(d, t, m, _)| {
                    format!(
                        " — {d}{} {m}",
                        t.map_or_else(String::new, |t| format!("/{t}"))
                    )
                });
                println!("  running  {name}{p}");
            }
            "failed" => println!("  FAILED   {name}: {}", detail.clone().unwrap_or_default()),
            _ => {}
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A stage's time left at its rate so far: `done` of `total` units in `elapsed` seconds.
fn own_time_left(done: u64, total: u64, elapsed: f64) -> Option<f64> {
    (done > 0 && elapsed > 0.0).then(|| elapsed * total.saturating_sub(done) as f64 / done as f64)
}

/// The run's time left: the longest running stage (each at its own rate, `None` where it has
/// not reported one, then the mean stage time), then the `pending` stages at the mean stage
/// time spread over `jobs`. `None` when nothing tells.
fn eta(running: &[Option<f64>], pending: usize, mean: Option<f64>, jobs: usize) -> Option<f64> {
    let current = running
        .iter()
        .map(|own| own.or(mean))
        .try_fold(0.0f64, |longest, left| Some(longest.max(left?)))?;
    let queued = match (pending, mean) {
        (0, _) => 0.0,
        (_, Some(mean)) => mean * pending as f64 / jobs.max(1) as f64,
        (_, None) => return None,
    };
    (current + queued > 0.0).then_some(current + queued)
}

/// `electra-pipe show`.
pub fn show(
    global: &Global,
    stage: &str,
    pipeline: Option<&str>,
    log_lines: usize,
) -> Result<ExitCode> {
    let (cache, note) = Cache::open_to_read(&global.cache, LockMode::Wait)?;
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    let matches: Vec<_> = cache
        .index
        .all_latest()?
        .into_iter()
        .filter(|(p, name, _)| {
            pipeline.is_none_or(|want| want == p)
                && (name == stage || name.starts_with(&format!("{stage}[")))
        })
        .collect();
    if matches.is_empty() {
        return Err(Invalid(format!(
            "no results for stage `{stage}` in the cache {}",
            cache.root().display()
        ))
        .into());
    }
    for (pipeline, name, latest) in matches {
        println!("{name}  (pipeline `{pipeline}`)");
        println!("  key       {}", latest.key);
        match cache.index.record(&latest.key)? {
            Some(record) => {
                println!("  kind      {} v{}", record.kind, record.kind_version);
                println!(
                    "  ran       {} → {} ({}) on {} by electra-pipe {}",
                    record.started,
                    record.finished,
                    human_seconds(record.duration_secs),
                    record.host,
                    record.electra_pipe_version
                );
                println!("  run       {}", record.run_id);
                for (k, v) in &record.metrics {
                    println!("  metric    {k} = {v}");
                }
                for (output, object) in &record.outputs {
                    println!(
                        "  output    {output} ({:?}, {} bytes): {}",
                        object.kind,
                        object.bytes,
                        cache.store.output_path(object, output).display()
                    );
                }
                print_log(&record.log, log_lines);
            }
            None => match cache.index.failure(&pipeline, &name)? {
                Some(failure) => {
                    println!("  FAILED    at {}: {}", failure.when, failure.error);
                    print_log(&failure.log, log_lines);
                }
                None => println!("  (no stored result for its current key; `plan` says why)"),
            },
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_log(path: &std::path::Path, lines: usize) {
    println!("  log       {}", path.display());
    if let Ok(text) = std::fs::read_to_string(path) {
        let all: Vec<&str> = text.lines().collect();
        for line in &all[all.len().saturating_sub(lines)..] {
            println!("    | {line}");
        }
    }
}

/// `electra-pipe devices`: each backend's device, or why it has none (exit 1 if any has none).
pub fn devices(backends: &[String]) -> Result<ExitCode> {
    let all: Vec<String> = electra_stages::backend::BACKENDS
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    let mut missing = false;
    for backend in if backends.is_empty() { &all } else { backends } {
        electra_stages::backend::check(backend).map_err(|e| Invalid(e.to_string()))?;
        match electra_stages::backend::device::open(backend) {
            Ok(device) => println!("{backend:<8} {device}"),
            Err(error) => {
                missing = true;
                println!("{backend:<8} no device: {error}");
            }
        }
    }
    Ok(if missing {
        ExitCode::from(super::exit::FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_stage_counts_at_its_own_rate() {
        // 102 of 2000 steps in 60 s: 1116 s left, whatever the short stages before it took.
        let own = own_time_left(102, 2000, 60.0).unwrap();
        assert!((own - 60.0 * 1898.0 / 102.0).abs() < 1e-9);
        assert_eq!(eta(&[Some(own)], 0, Some(5.0), 2), Some(own));
        // Then 10 pending stages of 5 s on 2 jobs.
        assert_eq!(eta(&[Some(own)], 10, Some(5.0), 2), Some(own + 25.0));
        // A running stage without a rate yet counts as a mean stage; without any mean,
        // nothing tells.
        assert_eq!(eta(&[None, Some(3.0)], 0, Some(5.0), 2), Some(5.0));
        assert_eq!(eta(&[None], 4, None, 2), None);
        assert_eq!(own_time_left(0, 10, 5.0), None);
    }
}
