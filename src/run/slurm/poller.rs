//! One poll of Slurm for every job a run waits on, however many: the threads waiting on jobs
//! share a [`Poller`], and whichever finds a poll due runs one `squeue` (then one `sacct` for
//! the jobs that left the queue) for all of them, then wakes the rest. Polls come fast after a
//! submission (0.5 s, so short jobs are collected quickly) and slow down by doubling to the
//! configured interval, so the controller sees a call every few seconds per run, not per job.
//! A job that neither `squeue` nor `sacct` knows has usually just left the queue and is not
//! accounted yet (sacct lags by a second or so): only when it stays unknown for [`MISSES`]
//! polls is `scontrol` asked about it (accounting may be off), one call for that job.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::commands::{self, JobId, JobState, SlurmError};

/// The first interval after a job joins the watch (or the configured one, if shorter).
const FIRST: Duration = Duration::from_millis(500);
/// Polls a job may stay unknown to `squeue` and `sacct` before `scontrol` is asked.
pub const MISSES: u32 = 3;
/// How often a waiter checks whether its run was cancelled.
const CANCEL_CHECK: Duration = Duration::from_millis(200);

/// What the waiting threads share.
#[derive(Debug)]
struct Watch {
    /// Every watched job and its last known state.
    jobs: BTreeMap<JobId, Option<JobState>>,
    /// Consecutive polls that did not find each job.
    misses: BTreeMap<JobId, u32>,
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

/// A poll of `ids`, as [`commands::states`] does it ([`JobState::Unknown`] for a job it
/// cannot find).
pub type Query<'a> = dyn Fn(&[JobId]) -> Result<BTreeMap<JobId, JobState>, SlurmError> + Sync + 'a;

impl Poller {
    /// A poller whose polls come at most every `max_interval`.
    pub fn new(max_interval: Duration) -> Self {
        Poller {
            max_interval,
            watch: Mutex::new(Watch {
                jobs: BTreeMap::new(),
                misses: BTreeMap::new(),
                polling: false,
                last: None,
                interval: FIRST.min(max_interval),
            }),
            changed: Condvar::new(),
        }
    }

    /// Waits until job `id` leaves Slurm's queue, or `cancelled` holds; the polls run
    /// [`commands::states`], and [`commands::scontrol_state`] for a job missing too long.
    pub fn wait(&self, id: JobId, cancelled: &dyn Fn() -> bool) -> Result<Outcome, SlurmError> {
        self.wait_with(id, cancelled, &commands::states, &commands::scontrol_state)
    }

    /// [`Poller::wait`] with the query `states` and the last resort `ask` for a job that stays
    /// unknown (a test's stand-ins for Slurm).
    pub fn wait_with(
        &self,
        id: JobId,
        cancelled: &dyn Fn() -> bool,
        states: &Query<'_>,
        ask: &dyn Fn(JobId) -> Result<JobState, SlurmError>,
    ) -> Result<Outcome, SlurmError> {
        let mut watch = self.watch.lock().expect("poller lock");
        watch.jobs.insert(id, None);
        watch.interval = FIRST.min(self.max_interval);
        loop {
            if cancelled() {
                watch.jobs.remove(&id);
                watch.misses.remove(&id);
                return Ok(Outcome::Cancelled);
            }
            if let Some(Some(state)) = watch.jobs.get(&id) {
                if !matches!(state, JobState::Active(_)) {
                    let state = state.clone();
                    watch.jobs.remove(&id);
                    watch.misses.remove(&id);
                    return Ok(Outcome::Ended(state));
                }
            }
            let due = watch.last.is_none_or(|t| t.elapsed() >= watch.interval);
            if due && !watch.polling {
                watch.polling = true;
                let ids: Vec<JobId> = watch.jobs.keys().copied().collect();
                let last_chance: Vec<JobId> = ids
                    .iter()
                    .filter(|id| watch.misses.get(id).copied().unwrap_or(0) + 1 >= MISSES)
                    .copied()
                    .collect();
                drop(watch);
                let polled = poll(&ids, &last_chance, states, ask);
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
                    if state == JobState::Unknown && !last_chance.contains(&job) {
                        *watch.misses.entry(job).or_default() += 1;
                        continue;
                    }
                    watch.misses.remove(&job);
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

/// One poll: `states` for every job, then `ask` for those in `last_chance` it did not find.
fn poll(
    ids: &[JobId],
    last_chance: &[JobId],
    states: &Query<'_>,
    ask: &dyn Fn(JobId) -> Result<JobState, SlurmError>,
) -> Result<BTreeMap<JobId, JobState>, SlurmError> {
    let mut found = states(ids)?;
    for &id in last_chance {
        let state = found.entry(id).or_insert(JobState::Unknown);
        if *state == JobState::Unknown {
            *state = ask(id)?;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn never_asked(id: JobId) -> Result<JobState, SlurmError> {
        panic!("scontrol asked about {id}")
    }

    #[test]
    fn a_job_not_accounted_yet_is_polled_again_before_scontrol_is_asked() {
        let poller = Poller::new(Duration::from_millis(5));
        // Job 1 is unaccounted for two polls, then sacct knows it; job 2 is never found.
        let polls = AtomicUsize::new(0);
        let states = |ids: &[JobId]| -> Result<BTreeMap<JobId, JobState>, SlurmError> {
            let n = polls.fetch_add(1, Ordering::SeqCst);
            Ok(ids
                .iter()
                .map(|&id| {
                    let known = id.job == 1 && n >= 2;
                    (
                        id,
                        if known {
                            JobState::Completed
                        } else {
                            JobState::Unknown
                        },
                    )
                })
                .collect())
        };
        assert_eq!(
            poller
                .wait_with(JobId::single(1), &|| false, &states, &never_asked)
                .unwrap(),
            Outcome::Ended(JobState::Completed)
        );
        let asked = AtomicUsize::new(0);
        let ask = |_: JobId| -> Result<JobState, SlurmError> {
            asked.fetch_add(1, Ordering::SeqCst);
            Ok(JobState::Ended("FAILED (exit code 1:0)".into()))
        };
        polls.store(0, Ordering::SeqCst);
        assert_eq!(
            poller
                .wait_with(JobId::single(2), &|| false, &states, &ask)
                .unwrap(),
            Outcome::Ended(JobState::Ended("FAILED (exit code 1:0)".into()))
        );
        assert_eq!(asked.load(Ordering::SeqCst), 1, "scontrol once, at the end");
        assert_eq!(polls.load(Ordering::SeqCst), MISSES as usize);
    }

    #[test]
    fn many_waiting_jobs_share_one_query_per_poll() {
        // 20 jobs, each ending after its own number of polls; every poll asks for all of them.
        let poller = Arc::new(Poller::new(Duration::from_millis(40)));
        let polls = Arc::new(AtomicUsize::new(0));
        let largest = Arc::new(AtomicUsize::new(0));
        let query = {
            let (polls, largest) = (polls.clone(), largest.clone());
            move |ids: &[JobId]| -> Result<BTreeMap<JobId, JobState>, SlurmError> {
                let n = polls.fetch_add(1, Ordering::SeqCst) as u64 + 1;
                largest.fetch_max(ids.len(), Ordering::SeqCst);
                Ok(ids
                    .iter()
                    .map(|&id| {
                        let state = if n > id.job % 5 + 1 {
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
                std::thread::spawn(move || {
                    poller
                        .wait_with(JobId::single(id), &|| false, &*query, &never_asked)
                        .unwrap()
                })
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
        let active = |ids: &[JobId]| -> Result<BTreeMap<JobId, JobState>, SlurmError> {
            Ok(ids
                .iter()
                .map(|&id| (id, JobState::Active("PENDING".into())))
                .collect())
        };
        let started = Instant::now();
        let stop = || started.elapsed() > Duration::from_millis(150);
        assert_eq!(
            poller
                .wait_with(JobId::single(7), &stop, &active, &never_asked)
                .unwrap(),
            Outcome::Cancelled
        );
        let down = |_: &[JobId]| -> Result<BTreeMap<JobId, JobState>, SlurmError> {
            Err(SlurmError::ControllerDown("connection refused".into()))
        };
        assert!(poller
            .wait_with(JobId::single(8), &|| false, &down, &never_asked)
            .is_err());
    }
}
