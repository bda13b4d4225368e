//! `plan`'s dry run: every instance's verdict, level by level in topological order and each
//! level in parallel, without running anything; blobs checked for existence only.

use std::collections::{BTreeMap, HashSet};

use rayon::prelude::*;

use super::{abbreviate, evaluate, missing_input, Check, Verdict};
use crate::cache::{Cache, CacheError, ObjectRef};
use crate::spec::Pipeline;

/// An instance's status in a dry run.
pub enum Planned {
    /// Its result is stored; these are its outputs.
    Cached(BTreeMap<String, ObjectRef>),
    /// It will run, for this reason.
    WillRun(String),
    /// It cannot run: a data input is missing, here or upstream.
    Blocked(String),
}

/// A dry-run verdict and, where it can be known without running anything, the key.
pub struct DryRun {
    /// What would happen.
    pub status: Planned,
    /// Its cache key, unless an upstream stage must run first.
    pub key: Option<String>,
}

/// Evaluates every instance without running anything (blobs checked for existence only).
/// Instances are planned level by level (a level's dependencies all lie in earlier levels),
/// each level in parallel.
pub fn dry_run(
    pipeline: &Pipeline,
    cache: &Cache,
    forced: &HashSet<usize>,
) -> Result<Vec<DryRun>, CacheError> {
    let mut planned: Vec<Option<DryRun>> = (0..pipeline.instances.len()).map(|_| None).collect();
    for level in levels(pipeline) {
        let dry: Vec<_> = level
            .par_iter()
            .map(|&i| plan_one(pipeline, cache, forced, &planned, i))
            .collect();
        for (i, dry) in level.into_iter().zip(dry) {
            planned[i] = Some(dry?);
        }
    }
    Ok(planned
        .into_iter()
        .map(|p| p.expect("every instance is planned"))
        .collect())
}

/// The instances grouped by their longest path from a root, each group in topological order.
fn levels(pipeline: &Pipeline) -> Vec<Vec<usize>> {
    let mut depth = vec![0usize; pipeline.instances.len()];
    let mut levels: Vec<Vec<usize>> = Vec::new();
    for &i in &pipeline.dag.order {
        let d = pipeline.instances[i]
            .deps
            .iter()
            .map(|&dep| depth[dep] + 1)
            .max()
            .unwrap_or(0);
        depth[i] = d;
        if levels.len() <= d {
            levels.resize_with(d + 1, Vec::new);
        }
        levels[d].push(i);
    }
    levels
}

/// Instance `i`'s dry-run verdict, given those of its dependencies in `planned`.
fn plan_one(
    pipeline: &Pipeline,
    cache: &Cache,
    forced: &HashSet<usize>,
    planned: &[Option<DryRun>],
    i: usize,
) -> Result<DryRun, CacheError> {
    let instance = &pipeline.instances[i];
    let (mut upstream_runs, mut upstream_blocked) = (Vec::new(), Vec::new());
    for &d in &instance.deps {
        match planned[d].as_ref().map(|p| &p.status) {
            Some(Planned::WillRun(_)) => upstream_runs.push(pipeline.instances[d].name.clone()),
            Some(Planned::Blocked(_)) => upstream_blocked.push(pipeline.instances[d].name.clone()),
            _ => {}
        }
    }
    let missing = instance
        .data_inputs
        .iter()
        .find(|path| !std::path::Path::new(path).exists());
    if !upstream_blocked.is_empty() {
        return Ok(DryRun {
            status: Planned::Blocked(format!(
                "upstream blocked: {}",
                abbreviate(&upstream_blocked)
            )),
            key: None,
        });
    }
    if let Some(path) = missing {
        return Ok(DryRun {
            status: Planned::Blocked(missing_input(path, &pipeline.data_dir)),
            key: None,
        });
    }
    if !upstream_runs.is_empty() {
        let why = if forced.contains(&i) { "forced; " } else { "" };
        return Ok(DryRun {
            status: Planned::WillRun(format!(
                "{why}upstream will run: {}",
                abbreviate(&upstream_runs)
            )),
            key: None,
        });
    }
    let outputs_of = |d: usize| match planned[d].as_ref().map(|p| &p.status) {
        Some(Planned::Cached(o)) => Some(o.clone()),
        _ => None,
    };
    let eval = evaluate(
        pipeline,
        i,
        &outputs_of,
        cache,
        forced.contains(&i),
        Check::Exists,
    )?;
    let status = match eval.verdict {
        Verdict::Cached(record) => Planned::Cached(record.outputs),
        Verdict::Run(reasons) => Planned::WillRun(
            reasons
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Verdict::MissingInput(path) => Planned::Blocked(missing_input(&path, &pipeline.data_dir)),
    };
    Ok(DryRun {
        status,
        key: (!eval.key.is_empty()).then_some(eval.key),
    })
}
