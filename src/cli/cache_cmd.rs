//! `cache ls|du|verify|gc`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::pipeline_cmd::load;
use super::{exit, CacheCommand, Global, PipelineArgs};
use crate::cache::store::{remove_any, short};
use crate::cache::{Cache, LockMode, ObjectKind, Record};
use crate::evaluate::dry_run;
use crate::run::slurm::ARRAYS;

/// Runs a `cache` subcommand.
pub fn dispatch(global: &Global, command: CacheCommand) -> Result<ExitCode> {
    if matches!(command, CacheCommand::Ls) {
        let (cache, note) = Cache::open_to_read(&global.cache, LockMode::Wait)?;
        if let Some(note) = note {
            eprintln!("note: {note}");
        }
        return ls(&cache);
    }
    let cache = Cache::open(&global.cache, LockMode::Wait)?;
    match command {
        CacheCommand::Ls => ls(&cache),
        CacheCommand::Du => du(&cache),
        CacheCommand::Verify => verify(&cache),
        CacheCommand::Gc {
            pipelines,
            set,
            dry_run,
        } => gc(global, &cache, &pipelines, &set, dry_run),
    }
}

/// `1.2 MB`-style sizes.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn sorted_records(cache: &Cache) -> Result<Vec<Record>> {
    let mut records = cache.index.records()?;
    records.sort_by(|a, b| a.finished.cmp(&b.finished));
    Ok(records)
}

fn ls(cache: &Cache) -> Result<ExitCode> {
    let records = sorted_records(cache)?;
    println!(
        "{:<24} {:<12} {:>10} {:>9}  {:<16} stage",
        "finished", "key", "size", "took", "pipeline"
    );
    for r in &records {
        let bytes: u64 = r.outputs.values().map(|o| o.bytes).sum();
        println!(
            "{:<24} {:<12} {:>10} {:>9}  {:<16} {}",
            r.finished,
            short(&r.key),
            human_bytes(bytes),
            crate::run::observer::human_seconds(r.duration_secs),
            r.pipeline,
            r.stage
        );
    }
    println!("{} results in {}", records.len(), cache.root().display());
    Ok(ExitCode::SUCCESS)
}

fn dir_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| dir_size(&e.path()))
            .sum()
    })
}

fn du(cache: &Cache) -> Result<ExitCode> {
    println!("{:<14} {:>10}", "area", "size");
    for area in [
        "objects",
        "index",
        "logs",
        "work",
        "checkpoints",
        "runs",
        "quarantine",
        "tuning",
    ] {
        println!(
            "{area:<14} {:>10}",
            human_bytes(dir_size(&cache.root().join(area)))
        );
    }
    let mut by_stage: BTreeMap<(String, String), (usize, u64)> = BTreeMap::new();
    for r in cache.index.records()? {
        let stage = r.stage.split('[').next().unwrap_or(&r.stage).to_owned();
        let entry = by_stage.entry((r.pipeline.clone(), stage)).or_default();
        entry.0 += 1;
        entry.1 += r.outputs.values().map(|o| o.bytes).sum::<u64>();
    }
    println!(
        "\n{:<16} {:<24} {:>8} {:>10}",
        "pipeline", "stage", "results", "outputs"
    );
    for ((pipeline, stage), (n, bytes)) in by_stage {
        println!(
            "{pipeline:<16} {stage:<24} {n:>8} {:>10}",
            human_bytes(bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(cache: &Cache) -> Result<ExitCode> {
    let records = cache.index.records()?;
    let mut problems = 0;
    let mut referenced: HashSet<String> = HashSet::new();
    for r in &records {
        for (name, object) in &r.outputs {
            referenced.insert(object.digest.clone());
            if object.kind == ObjectKind::Tree {
                if let Ok(manifest) = cache.store.manifest(&object.digest) {
                    referenced.extend(manifest.files.into_iter().map(|f| f.digest));
                }
            }
            if let Err(problem) = cache.store.verify(object) {
                problems += 1;
                println!(
                    "BAD  {problem}: output `{name}` of {} (pipeline `{}`, key {})",
                    r.stage,
                    r.pipeline,
                    short(&r.key)
                );
            }
        }
    }
    let blobs = cache.store.all_blobs()?;
    for digest in blobs.iter().filter(|d| !referenced.contains(*d)) {
        if let Err(problem) = cache.store.verify_blob(digest) {
            problems += 1;
            println!("BAD  {problem} (not referenced by any result)");
        }
    }
    println!(
        "checked {} results and {} objects: {}",
        records.len(),
        blobs.len(),
        if problems == 0 {
            "all intact".to_owned()
        } else {
            format!("{problems} problems")
        }
    );
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILED)
    })
}

fn gc(
    global: &Global,
    cache: &Cache,
    pipelines: &[std::path::PathBuf],
    set: &[(String, String)],
    dry: bool,
) -> Result<ExitCode> {
    let mut keep: HashSet<String> = HashSet::new();
    for path in pipelines {
        let pipeline = load(
            global,
            &PipelineArgs {
                pipeline: path.clone(),
                set: set.to_vec(),
                backend: None,
                executor: None,
            },
        )?;
        keep.extend(
            dry_run(pipeline, cache, &HashSet::new())?
                .into_iter()
                .filter_map(|d| d.key),
        );
    }
    let records = cache.index.records()?;
    let (kept, dropped): (Vec<&Record>, Vec<&Record>) =
        records.iter().partition(|r| keep.contains(&r.key));
    let mut live: HashSet<String> = HashSet::new();
    let mut live_logs: HashSet<std::path::PathBuf> = kept.iter().map(|r| r.log.clone()).collect();
    for r in &kept {
        for object in r.outputs.values() {
            live.insert(object.digest.clone());
            if object.kind == ObjectKind::Tree {
                live.extend(
                    cache
                        .store
                        .manifest(&object.digest)?
                        .files
                        .into_iter()
                        .map(|f| f.digest),
                );
            }
        }
    }
    for (p, name, _) in cache.index.all_latest()? {
        if let Some(f) = cache.index.failure(&p, &name)? {
            live_logs.insert(f.log);
        }
    }
    let dead: Vec<String> = cache
        .store
        .all_blobs()?
        .into_iter()
        .filter(|d| !live.contains(d))
        .collect();
    let verb = if dry { "would remove" } else { "removed" };
    let mut freed = 0;
    for digest in &dead {
        freed += if dry {
            std::fs::metadata(cache.store.blob_path(digest)).map_or(0, |m| m.len())
        } else {
            cache.store.remove(digest)?
        };
    }
    // Cluster jobs of keys no pipeline uses are forgotten (not cancelled), with their staging.
    let (kept_jobs, dropped_jobs): (Vec<_>, Vec<_>) = cache
        .index
        .jobs()?
        .into_iter()
        .partition(|(key, _)| keep.contains(key));
    let array_files_kept = |name: &str| {
        kept_jobs.iter().any(|(_, job)| {
            name.starts_with(&format!("{}_", job.job_id)) || name.starts_with(&job.run_id)
        })
    };
    let mut stale_dirs = 0;
    for area in ["work", "checkpoints", "outputs", "staging"] {
        for entry in std::fs::read_dir(cache.root().join(area))?.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if area == "staging" && name == ARRAYS {
                for file in std::fs::read_dir(entry.path())?.filter_map(Result::ok) {
                    let file_name = file.file_name().to_string_lossy().into_owned();
                    if !array_files_kept(&file_name) {
                        freed += dir_size(&file.path());
                        if !dry {
                            remove_any(&file.path())?;
                        }
                    }
                }
                continue;
            }
            let stale = match area {
                "work" => true,
                "checkpoints" | "staging" => !keep.contains(&name),
                _ => !live.contains(&name),
            };
            if stale {
                stale_dirs += 1;
                freed += dir_size(&entry.path());
                if !dry {
                    remove_any(&entry.path())?;
                }
            }
        }
    }
    let mut logs = 0;
    let mut stack = vec![cache.root().join("logs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)?.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if !live_logs.contains(&path) {
                logs += 1;
                freed += dir_size(&path);
                if !dry {
                    std::fs::remove_file(&path)?;
                }
            }
        }
    }
    if !dry {
        for r in &dropped {
            cache.index.remove_record(&r.key)?;
        }
        cache.index.retain_latest(&|key| keep.contains(key))?;
        for (key, _) in &dropped_jobs {
            cache.index.forget_job(key)?;
        }
        remove_any(&cache.root().join("quarantine"))?;
    }
    println!(
        "{verb} {} results, {} objects, {stale_dirs} work/checkpoint/output/staging dirs, {} cluster job records and {logs} logs ({}); kept {} results",
        dropped.len(),
        dead.len(),
        dropped_jobs.len(),
        human_bytes(freed),
        kept.len()
    );
    Ok(ExitCode::SUCCESS)
}
