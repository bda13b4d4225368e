//! `plan`'s dry run: every instance's verdict in topological order without running anything,
//! blobs checked for existence only.

use super::{abbreviate, evaluate, missing_input, Check, Verdict};
use crate::cache::{Cache, CacheError, ObjectRef};
use crate::spec::Pipeline;
use std::collections::BTreeMap;

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
pub fn dry_run(
    pipeline: &Pipeline,
    cache: &Cache,
    forced: &std::collections::HashSet<usize>,
) -> Result<Vec<DryRun>, CacheError> {
    let mut planned: Vec<Option<DryRun>> = (0..pipeline.instances.len()).map(|_| None).collect();
    for &i in &pipeline.dag.order {
        let instance = &pipeline.instances[i];
        let (mut upstream_runs, mut upstream_blocked) = (Vec::new(), Vec::new());
        for &d in &instance.deps {
            match planned[d].as_ref().map(|p| &p.status) {
                Some(Planned::WillRun(_)) => upstream_runs.push(pipeline.instances[d].name.clone()),
                Some(Planned::Blocked(_)) => {
                    upstream_blocked.push(pipeline.instances[d].name.clone())
                }
                _ => {}
            }
        }
        let missing = instance
            .data_inputs
            .iter()
            .find(|path| !std::path::Path::new(path).exists());
        let dry = if !upstream_blocked.is_empty() {
            DryRun {
                status: Planned::Blocked(format!(
                    "upstream blocked: {}",
                    abbreviate(&upstream_blocked)
                )),
                key: None,
            }
        } else if let Some(path) = missing {
            DryRun {
                status: Planned::Blocked(missing_input(path, &pipeline.data_dir)),
                key: None,
            }
        } else if !upstream_runs.is_empty() {
            let why = if forced.contains(&i) { "forced; " } else { "" };
            DryRun {
                status: Planned::WillRun(format!(
                    "{why}upstream will run: {}",
                    abbreviate(&upstream_runs)
                )),
                key: None,
            }
        } else {
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
                Verdict::MissingInput(path) => {
                    Planned::Blocked(missing_input(&path, &pipeline.data_dir))
                }
            };
            DryRun {
                status,
                key: (!eval.key.is_empty()).then_some(eval.key),
            }
        };
        planned[i] = Some(dry);
    }
    Ok(planned
        .into_iter()
        .map(|p| p.expect("every instance is planned"))
        .collect())
}
