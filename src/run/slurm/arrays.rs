//! Stages that become ready together go to Slurm as one job array: the first stage to submit
//! opens a batch and waits a short window; every stage of the same group (the executor's: the
//! same matrix stage and sbatch resources) that submits meanwhile joins it; then one `sbatch
//! --array=0-(n-1)%limit` submits them all, and each stage gets its own task id (`123_4`),
//! which it records, watches, cancels and retries like a job of its own. A batch of one is
//! submitted as a plain job.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::commands::{JobId, SlurmError};

/// One stage waiting in a batch: what the array's task runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The stage instance's name.
    pub stage: String,
    /// Its cache key.
    pub key: String,
    /// Its staging directory (task file, job.out/job.err).
    pub staging: PathBuf,
}

/// How a batch is submitted: its members in task order; returns the job id (an array's when
/// there are several).
pub type Submit<'a> = dyn Fn(&[Member]) -> Result<u64, SlurmError> + 'a;

#[derive(Debug, Default)]
struct Batch {
    members: Vec<Member>,
    /// Set once the leader has submitted.
    result: Option<Result<u64, SlurmError>>,
}

#[derive(Debug, Default)]
struct Shared {
    batch: Mutex<Batch>,
    submitted: Condvar,
}

/// Gathers concurrent submissions of one group into job arrays.
#[derive(Debug)]
pub struct Batcher {
    window: Duration,
    /// The batch still open for each group.
    open: Mutex<HashMap<Vec<String>, Arc<Shared>>>,
}

impl Batcher {
    /// A batcher that keeps each batch open for `window` after its first member.
    pub fn new(window: Duration) -> Self {
        Batcher {
            window,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Submits `member` of `group` (what must be equal within an array), together with the
    /// members of its group that join it within the window; returns its job id.
    pub fn submit(
        &self,
        group: &[String],
        member: Member,
        submit: &Submit<'_>,
    ) -> Result<JobId, SlurmError> {
        let mut open = self.open.lock().expect("batcher lock");
        if let Some(shared) = open.get(group).cloned() {
            let mut batch = shared.batch.lock().expect("batch lock");
            drop(open);
            let task = batch.members.len() as u32;
            batch.members.push(member);
            while batch.result.is_none() {
                batch = shared.submitted.wait(batch).expect("batch lock");
            }
            let job = batch.result.clone().expect("submitted")?;
            return Ok(JobId {
                job,
                task: Some(task),
            });
        }
        let shared = Arc::new(Shared::default());
        shared
            .batch
            .lock()
            .expect("batch lock")
            .members
            .push(member);
        open.insert(group.to_vec(), shared.clone());
        drop(open);
        std::thread::sleep(self.window);
        // Closed: later submissions open a batch of their own.
        self.open.lock().expect("batcher lock").remove(group);
        let members = shared.batch.lock().expect("batch lock").members.clone();
        let result = submit(&members);
        let mut batch = shared.batch.lock().expect("batch lock");
        batch.result = Some(result.clone());
        shared.submitted.notify_all();
        let job = result?;
        Ok(JobId {
            job,
            task: (members.len() > 1).then_some(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn member(i: usize) -> Member {
        Member {
            stage: format!("cell[{i}]"),
            key: format!("k{i}"),
            staging: PathBuf::from(format!("/staging/{i}")),
        }
    }

    #[test]
    fn submissions_within_the_window_become_one_array_per_group() {
        let batcher = Batcher::new(Duration::from_millis(200));
        let calls = Mutex::new(Vec::<Vec<Member>>::new());
        let next = AtomicU64::new(100);
        let submit = |members: &[Member]| -> Result<u64, SlurmError> {
            calls.lock().unwrap().push(members.to_vec());
            Ok(next.fetch_add(1, Ordering::SeqCst))
        };
        let ids: Vec<(usize, JobId)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..12)
                .map(|i| {
                    let (batcher, submit) = (&batcher, &submit);
                    scope.spawn(move || {
                        // Two groups: even cells want 1 CPU, odd ones 4.
                        let group = vec![format!("--cpus-per-task={}", 1 + 3 * (i % 2))];
                        (i, batcher.submit(&group, member(i), submit).unwrap())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let calls = calls.into_inner().unwrap();
        assert_eq!(calls.len(), 2, "one sbatch per group: {calls:?}");
        for (i, id) in ids {
            let call = if calls[0].contains(&member(i)) { 0 } else { 1 };
            let task = calls[call].iter().position(|m| *m == member(i)).unwrap();
            assert_eq!(id.job, 100 + call as u64);
            assert_eq!(id.task, Some(task as u32), "cell {i} knows its own task");
        }
    }

    #[test]
    fn a_lone_submission_is_a_plain_job_and_errors_reach_every_member() {
        let batcher = Batcher::new(Duration::from_millis(10));
        let ok = |_: &[Member]| -> Result<u64, SlurmError> { Ok(7) };
        assert_eq!(
            batcher.submit(&[], member(0), &ok).unwrap(),
            JobId::single(7)
        );
        let batcher = Batcher::new(Duration::from_millis(200));
        let refused = |_: &[Member]| -> Result<u64, SlurmError> {
            Err(SlurmError::Rejected("invalid partition".into()))
        };
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..3)
                .map(|i| {
                    let (batcher, refused) = (&batcher, &refused);
                    scope.spawn(move || batcher.submit(&[], member(i), refused))
                })
                .collect();
            for handle in handles {
                assert!(matches!(
                    handle.join().unwrap(),
                    Err(SlurmError::Rejected(_))
                ));
            }
        });
    }
}
