//! What a run shows and records: a live display (progress bars with ETA on a terminal,
//! plain lines otherwise) and the run journal, fed by the scheduler and the stages.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::journal::{Event, Journal};

/// The live multi-bar display, when one is on screen; log lines are printed around it.
pub static LIVE: OnceLock<MultiProgress> = OnceLock::new();

/// How chatty the display is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Only failures and the summary.
    Quiet,
    /// A line (or bar) per stage.
    Normal,
}

enum Display {
    Live {
        overall: ProgressBar,
        bars: Mutex<HashMap<String, ProgressBar>>,
    },
    Lines {
        verbosity: Verbosity,
    },
}

/// Receives every state change of a run.
pub struct Observer {
    journal: Journal,
    display: Display,
    total: usize,
    finished: AtomicUsize,
    /// Per stage: when its progress last reached the journal, and the plain-line display.
    throttle: Mutex<HashMap<String, (Instant, Instant)>>,
}

/// How often a stage's progress reaches the journal and plain-line display.
const JOURNAL_EVERY: Duration = Duration::from_secs(2);
const LINE_EVERY: Duration = Duration::from_secs(30);

impl Observer {
    /// An observer writing the journal `runs_dir/<run_id>.jsonl`, with a live display if
    /// stderr is a terminal (and `verbosity` is normal).
    pub fn new(
        runs_dir: &Path,
        run_id: &str,
        total: usize,
        verbosity: Verbosity,
    ) -> std::io::Result<Observer> {
        let journal = Journal::create(runs_dir, run_id)?;
        let display = if verbosity == Verbosity::Normal && std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
            let overall = multi.add(ProgressBar::new(total as u64));
            overall.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} stages · ETA {eta} {msg}",
                )
                .expect("valid template"),
            );
            overall.enable_steady_tick(Duration::from_millis(200));
            let _ = LIVE.set(multi);
            Display::Live {
                overall,
                bars: Mutex::new(HashMap::new()),
            }
        } else {
            Display::Lines { verbosity }
        };
        Ok(Observer {
            journal,
            display,
            total,
            finished: AtomicUsize::new(0),
            throttle: Mutex::new(HashMap::new()),
        })
    }

    /// Records the start of the run.
    pub fn start(&self, event: Event) {
        self.journal.write(event);
    }

    fn counter(&self) -> String {
        let width = self.total.to_string().len();
        format!(
            "[{:>width$}/{}]",
            self.finished.load(Ordering::SeqCst),
            self.total
        )
    }

    fn line(&self, quiet_too: bool, text: String) {
        match &self.display {
            Display::Live { .. } => {
                if let Some(multi) = LIVE.get() {
                    let _ = multi.println(text);
                }
            }
            Display::Lines { verbosity } => {
                if quiet_too || *verbosity == Verbosity::Normal {
                    eprintln!("{text}");
                }
            }
        }
    }

    fn settle(&self, name: &str) {
        self.finished.fetch_add(1, Ordering::SeqCst);
        if let Display::Live { overall, bars } = &self.display {
            overall.inc(1);
            if let Some(bar) = bars.lock().expect("bars lock").remove(name) {
                bar.finish_and_clear();
                if let Some(multi) = LIVE.get() {
                    multi.remove(&bar);
                }
            }
        }
    }

    fn stage(
        &self,
        name: &str,
        state: &str,
        detail: Option<String>,
        seconds: Option<f64>,
        log: Option<&Path>,
    ) {
        self.journal.write(Event::Stage {
            name: name.to_owned(),
            state: state.to_owned(),
            detail,
            seconds,
            log: log.map(Path::to_owned),
        });
    }

    /// A stage's result was found in the cache.
    pub fn cached(&self, name: &str) {
        self.settle(name);
        self.stage(name, "cached", None, None, None);
        self.line(false, format!("{} cached    {name}", self.counter()));
    }

    /// A stage starts running, for `why`.
    pub fn running(&self, name: &str, why: &str, log: &Path) {
        self.stage(name, "running", Some(why.to_owned()), None, Some(log));
        match &self.display {
            Display::Live { bars, .. } => {
                if let Some(multi) = LIVE.get() {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("  {spinner} {prefix} {msg}")
                            .expect("valid template"),
                    );
                    bar.set_prefix(name.to_owned());
                    bar.set_message(format!("({why})"));
                    bar.enable_steady_tick(Duration::from_millis(200));
                    bars.lock().expect("bars lock").insert(name.to_owned(), bar);
                }
            }
            Display::Lines { .. } => self.line(
                false,
                format!("{} running   {name} ({why})", self.counter()),
            ),
        }
    }

    /// A running stage reports its own progress.
    pub fn progress(&self, name: &str, done: u64, total: Option<u64>, message: &str) {
        if let Display::Live { bars, .. } = &self.display {
            if let Some(bar) = bars.lock().expect("bars lock").get(name) {
                if let Some(total) = total {
                    if bar.length() != Some(total) {
                        bar.set_length(total);
                        bar.set_style(
                            ProgressStyle::with_template(
                                "  {prefix} {bar:25} {pos}/{len} · ETA {eta} {msg}",
                            )
                            .expect("valid template"),
                        );
                    }
                }
                bar.set_position(done);
                bar.set_message(message.to_owned());
            }
        }
        let mut throttle = self.throttle.lock().expect("throttle lock");
        let now = Instant::now();
        let (journaled, printed) = throttle
            .entry(name.to_owned())
            .or_insert((now - LINE_EVERY, now - LINE_EVERY));
        if now.duration_since(*journaled) >= JOURNAL_EVERY {
            self.journal.write(Event::Progress {
                name: name.to_owned(),
                done,
                total,
                message: message.to_owned(),
            });
            *journaled = now;
        }
        // Without a terminal, a line per stage every LINE_EVERY: a batch job's log shows where
        // the run is.
        if now.duration_since(*printed) >= LINE_EVERY
            && matches!(self.display, Display::Lines { .. })
        {
            let of = total.map_or_else(String::new, |t| format!("/{t}"));
            self.line(
                false,
                format!("{} progress  {name}: {done}{of} {message}", self.counter()),
            );
            *printed = now;
        }
    }

    /// A stage finished and its result is stored.
    pub fn done(&self, name: &str, seconds: f64) {
        self.settle(name);
        self.stage(name, "done", None, Some(seconds), None);
        self.line(
            false,
            format!(
                "{} done      {name} in {}",
                self.counter(),
                human_seconds(seconds)
            ),
        );
    }

    /// A stage failed for good.
    pub fn failed(&self, name: &str, error: &str, seconds: f64, log: &Path) {
        self.settle(name);
        self.stage(
            name,
            "failed",
            Some(error.to_owned()),
            Some(seconds),
            Some(log),
        );
        self.line(
            true,
            format!(
                "{} FAILED    {name}: {error} (log: {})",
                self.counter(),
                log.display()
            ),
        );
    }

    /// A failed attempt that will be retried.
    pub fn retrying(&self, name: &str, error: &str, attempt: u32, of: u32) {
        self.stage(
            name,
            "retrying",
            Some(format!("attempt {attempt}/{of} failed: {error}")),
            None,
            None,
        );
        self.line(
            true,
            format!(
                "{} retrying  {name}: attempt {attempt}/{of} failed: {error}",
                self.counter()
            ),
        );
    }

    /// A stage cannot run because something upstream failed.
    pub fn blocked(&self, name: &str, because: &str) {
        self.settle(name);
        self.stage(name, "blocked", Some(because.to_owned()), None, None);
        self.line(
            false,
            format!("{} blocked   {name} (by {because})", self.counter()),
        );
    }

    /// A stage was stopped or never started because the run was interrupted.
    pub fn cancelled(&self, name: &str) {
        self.stage(name, "cancelled", None, None, None);
    }

    /// The run ended.
    pub fn finish(&self, ok: bool, interrupted: bool) {
        self.journal.write(Event::RunEnd { ok, interrupted });
        if let Display::Live { overall, .. } = &self.display {
            overall.finish_and_clear();
        }
    }
}

/// `0.42s`, `3.1s`, `2m05s`, `1h02m`.
pub fn human_seconds(seconds: f64) -> String {
    if seconds < 10.0 {
        format!("{seconds:.2}s")
    } else if seconds < 60.0 {
        format!("{seconds:.1}s")
    } else if seconds < 3600.0 {
        format!(
            "{}m{:02}s",
            (seconds / 60.0) as u64,
            (seconds % 60.0) as u64
        )
    } else {
        format!(
            "{}h{:02}m",
            (seconds / 3600.0) as u64,
            ((seconds % 3600.0) / 60.0) as u64
        )
    }
}

/// A stage's [`electra_pipe_api::Progress`] sink, forwarding to the observer.
pub struct StageProgress<'a> {
    /// The observer.
    pub observer: &'a Observer,
    /// The instance name.
    pub name: &'a str,
}

impl electra_pipe_api::Progress for StageProgress<'_> {
    fn update(&self, done: u64, total: Option<u64>, message: &str) {
        self.observer.progress(self.name, done, total, message);
    }
}
