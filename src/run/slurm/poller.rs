//! One poll of Slurm for every job a run waits on, however many: the threads waiting on jobs
//! share a [`Poller`], and whichever finds a poll due runs one `squeue` (then one `sacct` for
//! the jobs that left the queue) for all of them, then wakes the rest. Polls come fast after a
//! submission (0.5 s, so short jobs are collected quickly) and slow down by doubling to the
//! configured interval, so the controller sees a call every few seconds per run, not per job.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::commands::{self, JobState, SlurmError};

/// The first interval after a job joins the watch (or the configured one, if shorter).
const FIRST: Duration = Duration::from_millis(500);
/// How often a waiter checks whether its run was cancelled.
const CANCEL_CHECK: Duration = Duration::from_millis(200);

/// What the waiting threads share.
#[derive(Debug)]
struct Watch {
    /// Every watched job and its last known state.
    jobs: BTreeMap<u64, Option<JobState>>,
    /// A poll is running (its caller has released the lock).
    polling: bool,
    /// When the last poll ended.
    last: Option<Instant>,
    /// The wait before the next poll.
    interval: Duration,
}

/// Watches a run's Slurm jobs with one query per interval for all of them.
#[derive(Debug)]
pub struct Poller {
    max_interval: Duration,
    watch: Mutex<Watch>,
    changed: Condvar,
}

/// How a watched job ended, or that its run was cancelled first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The job left the queue in this state.
    Ended(JobState),
    /// The run was cancelled while the job was active.
    Cancelled,
}

/// A poll of `ids`, as [`commands::states`] does it.
pub type Query<'a> = dyn Fn(&[u64]) -> Result<BTreeMap<u64, JobState>, SlurmError> + Sync + 'a;

impl Poller {
    /// A poller whose polls come at most every `max_interval`.
    pub fn new(max_interval: Duration) -> Self {
        Poller {
            max_interval,
            watch: Mutex::new(Watch {
                jobs: BTreeMap::new(),
                polling: false,
                last: None,
                interval: FIRST.min(max_interval),
            }),
            changed: Condvar::new(),
        }
    }

    /// Waits until job `id` leaves Slurm's queue, or `cancelled` holds; the polls run
    /// [`commands::states`].
    pub fn wait(&self, id: u64, cancelled: &dyn Fn() -> bool) -> Result<Outcome, SlurmError> {
        self.wait_with(id, cancelled, &commands::states)
    }

    /// [`Poller::wait`] with the query `states` (a test's stand-in for Slurm).
    pub fn wait_with(
        &self,
        id: u64,
        cancelled: &dyn Fn() -> bool,
        states: &Query<'_>,
    ) -> Result<Outcome, SlurmError> {
        let mut watch = self.watch.lock().expect("poller lock");
        watch.jobs.insert(id, None);
        watch.interval = FIRST.min(self.max_interval);
        loop {
            if cancelled() {
                watch.jobs.remove(&id);
                return Ok(Outcome::Cancelled);
            }
            if let Some(Some(state)) = watch.jobs.get(&id) {
                if !matches!(state, JobState::Active(_)) {
                    let state = state.clone();
                    watch.jobs.remove(&id);
                    return Ok(Outcome::Ended(state));
                }
            }
            let due = watch.last.is_none_or(|t| t.elapsed() >= watch.interval);
            if due && !watch.polling {
                watch.polling = true;
                let ids: Vec<u64> = watch.jobs.keys().copied().collect();
                drop(watch);
                let polled = states(&ids);
                watch = self.watch.lock().expect("poller lock");
                watch.polling = false;
                watch.last = Some(Instant::now());
                watch.interval = (watch.interval * 2).min(self.max_interval);
                self.changed.notify_all();
                let polled = match polled {
                    Ok(polled) => polled,
                    Err(e) => {
                        watch.jobs.remove(&id);
                        return Err(e);
                    }
                };
                for (job, state) in polled {
                    if let Some(slot) = watch.jobs.get_mut(&job) {
                        *slot = Some(state);
                    }
                }
            } else {
                let until_due = watch.last.map_or(Duration::ZERO, |t| {
                    watch.interval.saturating_sub(t.elapsed())
                });
                let nap = if watch.polling {
                    CANCEL_CHECK
                } else {
                    until_due.min(CANCEL_CHECK)
                };
                watch = self
                    .changed
                    .wait_timeout(watch, nap)
                    .expect("poller lock")
                    .0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn many_waiting_jobs_share_one_query_per_poll() {
        // 20 jobs, each ending after its own number of polls; every poll asks for all of them.
        let poller = Arc::new(Poller::new(Duration::from_millis(40)));
        let polls = Arc::new(AtomicUsize::new(0));
        let largest = Arc::new(AtomicUsize::new(0));
        let query = {
            let (polls, largest) = (polls.clone(), largest.clone());
            move |ids: &[u64]| -> Result<BTreeMap<u64, JobState>, SlurmError> {
                let n = polls.fetch_add(1, Ordering::SeqCst) as u64 + 1;
                largest.fetch_max(ids.len(), Ordering::SeqCst);
                Ok(ids
                    .iter()
                    .map(|&id| {
                        let state = if n > id % 5 + 1 {
                            JobState::Completed
                        } else {
                            JobState::Active("RUNNING".into())
                        };
                        (id, state)
                    })
                    .collect())
            }
        };
        let query = Arc::new(query);
        let waiters: Vec<_> = (0..20u64)
            .map(|id| {
                let (poller, query) = (poller.clone(), query.clone());
                std::thread::spawn(move || poller.wait_with(id, &|| false, &*query).unwrap())
            })
            .collect();
        for waiter in waiters {
            assert_eq!(waiter.join().unwrap(), Outcome::Ended(JobState::Completed));
        }
        let polls = polls.load(Ordering::SeqCst);
        assert!(polls <= 10, "{polls} queries for 20 jobs");
        assert!(
            largest.load(Ordering::SeqCst) > 1,
            "one query covers several jobs"
        );
    }

    #[test]
    fn a_cancelled_run_stops_waiting_and_a_failed_query_is_an_error() {
        let poller = Poller::new(Duration::from_millis(20));
        let active = |ids: &[u64]| -> Result<BTreeMap<u64, JobState>, SlurmError> {
            Ok(ids
                .iter()
                .map(|&id| (id, JobState::Active("PENDING".into())))
                .collect())
        };
        let started = Instant::now();
        let stop = || started.elapsed() > Duration::from_millis(150);
        assert_eq!(
            poller.wait_with(7, &stop, &active).unwrap(),
            Outcome::Cancelled
        );
        let down = |_: &[u64]| -> Result<BTreeMap<u64, JobState>, SlurmError> {
            Err(SlurmError::ControllerDown("connection refused".into()))
        };
        assert!(poller.wait_with(8, &|| false, &down).is_err());
    }
}
