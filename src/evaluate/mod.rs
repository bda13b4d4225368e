//! Decides, for one instance whose dependencies are finished, its cache key and whether its
//! cached result can be used, and if not, why it must run. Shared by `plan` and `run`; it
//! reads the cache and never changes it. [`key`] computes key material, [`reasons`] says why
//! an instance runs, [`dry_run`] is `plan`'s walk over the whole DAG.

use std::collections::{BTreeMap, HashSet};

use rayon::prelude::*;
use serde_json::Value;

use crate::cache::{Cache, CacheError, KeyMaterial, ObjectRef, Problem, Record};
use crate::spec::Pipeline;

mod dry_run;
mod key;
mod reasons;

pub use dry_run::{dry_run, DryRun, Planned};
pub use key::{key_material, missing_input, with_references};
pub use reasons::{abbreviate, Reason};

/// The outcome of evaluating one instance.
pub enum Verdict {
    /// A verified cached result.
    Cached(Box<Record>),
    /// It must run, for these reasons.
    Run(Vec<Reason>),
    /// A data input does not exist.
    MissingInput(String),
}

/// The key material and verdict of an instance.
pub struct Evaluation {
    /// Its key material.
    pub material: KeyMaterial,
    /// Its cache key.
    pub key: String,
    /// What to do.
    pub verdict: Verdict,
    /// A stored result under `key` whose outputs failed the check, and what was wrong.
    pub unusable: Option<(Record, Problem)>,
}

/// How thoroughly to check a cached result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Re-hash every blob (before using a result).
    Verify,
    /// Only check the blobs exist (for a dry-run plan).
    Exists,
}

/// Evaluates an instance whose dependencies all have outputs. Changes nothing in the cache: a
/// stored result that fails its check comes back in [`Evaluation::unusable`] for the caller
/// to discard.
pub fn evaluate(
    pipeline: &Pipeline,
    index: usize,
    outputs_of: &dyn Fn(usize) -> Option<BTreeMap<String, ObjectRef>>,
    cache: &Cache,
    forced: bool,
    check: Check,
) -> Result<Evaluation, CacheError> {
    let instance = &pipeline.instances[index];
    let material = match key::key_material(pipeline, instance, outputs_of, cache)? {
        Ok(material) => material,
        Err(missing) => {
            return Ok(Evaluation {
                material: KeyMaterial {
                    kind: String::new(),
                    kind_version: 0,
                    params: Value::Null,
                    inputs: BTreeMap::new(),
                },
                key: String::new(),
                verdict: Verdict::MissingInput(missing),
                unusable: None,
            });
        }
    };
    let key = material.key();
    if forced {
        return Ok(Evaluation {
            material,
            key,
            verdict: Verdict::Run(vec![Reason::Forced]),
            unusable: None,
        });
    }
    if let Some(record) = cache.index.record(&key)? {
        match check_outputs(cache, &record, check) {
            Ok(()) => {
                return Ok(Evaluation {
                    material,
                    key,
                    verdict: Verdict::Cached(Box::new(record)),
                    unusable: None,
                });
            }
            Err(problem) => {
                return Ok(Evaluation {
                    material,
                    key,
                    verdict: Verdict::Run(vec![Reason::OutputsBad(problem.to_string())]),
                    unusable: Some((record, problem)),
                });
            }
        }
    }
    let reasons = reasons::explain(pipeline, instance, &material, &key, cache)?;
    Ok(Evaluation {
        material,
        key,
        verdict: Verdict::Run(reasons),
        unusable: None,
    })
}

/// [`evaluate`] for a wave of instances whose dependencies all have outputs (none depending on
/// another), in parallel; the evaluations in `indices`' order. Keys are hashed and blobs
/// verified on every core, which is most of a cached rerun's time.
pub fn evaluate_wave(
    pipeline: &Pipeline,
    indices: &[usize],
    outputs_of: &(dyn Fn(usize) -> Option<BTreeMap<String, ObjectRef>> + Sync),
    cache: &Cache,
    forced: &HashSet<usize>,
    check: Check,
) -> Vec<Result<Evaluation, CacheError>> {
    indices
        .par_iter()
        .map(|&i| evaluate(pipeline, i, outputs_of, cache, forced.contains(&i), check))
        .collect()
}

fn check_outputs(cache: &Cache, record: &Record, check: Check) -> Result<(), Problem> {
    for (name, object) in &record.outputs {
        match check {
            Check::Verify => {
                cache.store.verify(object)?;
                cache
                    .store
                    .materialize(object, name)
                    .map_err(|_| Problem::Missing {
                        digest: object.digest.clone(),
                    })?;
            }
            Check::Exists => {
                if !cache.store.blob_path(&object.digest).exists() {
                    return Err(Problem::Missing {
                        digest: object.digest.clone(),
                    });
                }
            }
        }
    }
    Ok(())
}
