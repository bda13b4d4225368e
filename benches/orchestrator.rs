//! Orchestrator overhead on a generated pipeline: one `command` stage with an N-cell matrix
//! of trivial shell commands, for N = 10,000 and 100,000 (set BENCH_CELLS, e.g. `1000` or
//! `10000,100000`). Prints a Markdown table: plan time, first run, fully cached rerun, and — as
//! the reference — the same N shell commands spawned directly at the same parallelism, so the
//! difference is what electra-pipe adds per stage (hashing, storing, sled commits, journal,
//! scheduling); the peak memory of each command; and, per row, how the cost per stage changes
//! from the smallest N to the largest (1.00 = linear in the stage count).
//!
//! Run with `cargo bench --bench orchestrator`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const JOBS: usize = 2;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_electra-pipe"))
}

/// One measured command: its wall time and peak resident memory.
#[derive(Clone, Copy)]
struct Measured {
    wall: Duration,
    peak_kib: i64,
}

// The child is reaped by wait4, which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn electra_pipe(dir: &Path, args: &[&str]) -> Measured {
    let start = Instant::now();
    let log = dir.join("last-command.log");
    let child = Command::new(binary())
        .current_dir(dir)
        .args(["--cache", "cache", "--data", "data", "-q"])
        .args(args)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("last-command.err")).unwrap())
        .spawn()
        .expect("the binary runs");
    // wait4 rather than Child::wait: it also gives the child's peak memory.
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for the child we spawned.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, once; `child` is not waited on again.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert!(
        pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{args:?} failed: {}",
        std::fs::read_to_string(dir.join("last-command.err")).unwrap_or_default()
    );
    Measured {
        wall,
        peak_kib: usage.ru_maxrss,
    }
}

/// The reference: the same commands, spawned directly by `JOBS` threads, each in its own
/// fresh directory, without any bookkeeping.
fn direct_spawn(dir: &Path, cells: usize) -> Duration {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for worker in 0..JOBS {
            scope.spawn(move || {
                for i in (worker..cells).step_by(JOBS) {
                    let cwd = dir.join(format!("direct/{i}"));
                    std::fs::create_dir_all(&cwd).unwrap();
                    let status = Command::new("sh")
                        .args(["-e", "-c", &format!("echo {i} > out.txt")])
                        .current_dir(&cwd)
                        .status()
                        .unwrap();
                    assert!(status.success());
                }
            });
        }
    });
    start.elapsed()
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

/// Every measurement of one size.
struct Row {
    cells: usize,
    validate: Measured,
    plan: Measured,
    first: Measured,
    reference: Duration,
    cached: Measured,
    cached_plan: Measured,
}

fn measure(cells: usize) -> Row {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let values: Vec<String> = (0..cells).map(|i| i.to_string()).collect();
    let pipeline = format!(
        "pipeline: bench\nstages:\n  cell:\n    kind: command\n    matrix:\n      i: [{}]\n    params:\n      cmd: echo ${{i}} > out.txt\n      outputs: [out.txt]\n",
        values.join(", ")
    );
    std::fs::write(dir.path().join("bench.yaml"), pipeline).unwrap();
    let jobs = JOBS.to_string();
    Row {
        cells,
        validate: electra_pipe(dir.path(), &["validate", "bench.yaml"]),
        plan: electra_pipe(dir.path(), &["plan", "bench.yaml"]),
        first: electra_pipe(dir.path(), &["run", "bench.yaml", "-j", &jobs]),
        cached: electra_pipe(dir.path(), &["run", "bench.yaml", "-j", &jobs]),
        cached_plan: electra_pipe(dir.path(), &["plan", "bench.yaml"]),
        reference: direct_spawn(dir.path(), cells),
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_CELLS")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("BENCH_CELLS: numbers separated by commas")
        })
        .collect();
    let rows: Vec<Row> = sizes.iter().map(|&n| measure(n)).collect();
    println!("electra-pipe orchestrator benchmark: trivial `command` stages, {JOBS} jobs\n");
    let mut header = "| measurement |".to_owned();
    let mut rule = "|---|".to_owned();
    for row in &rows {
        header.push_str(&format!(" {} stages | per stage |", row.cells));
        rule.push_str("---:|---:|");
    }
    if rows.len() > 1 {
        header.push_str(" per-stage ratio, largest / smallest |");
        rule.push_str("---:|");
    }
    println!("{header}\n{rule}");
    type Pick = fn(&Row) -> Duration;
    let lines: [(&str, Pick); 7] = [
        ("validate (parse + expand + check)", |r| r.validate.wall),
        ("plan, empty cache", |r| r.plan.wall),
        ("first run", |r| r.first.wall),
        ("reference: same commands spawned directly", |r| r.reference),
        (
            "**overhead of electra-pipe** (first run − reference)",
            |r| r.first.wall.saturating_sub(r.reference),
        ),
        ("fully cached rerun (verifies every output)", |r| {
            r.cached.wall
        }),
        ("plan, everything cached", |r| r.cached_plan.wall),
    ];
    for (label, pick) in lines {
        let per = |r: &Row| pick(r).as_secs_f64() * 1e3 / r.cells as f64;
        let mut line = format!("| {label} |");
        for row in &rows {
            line.push_str(&format!(" {} | {:.3} ms |", ms(pick(row)), per(row)));
        }
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            if rows.len() > 1 {
                line.push_str(&format!(" {:.2} |", per(last) / per(first)));
            }
        }
        println!("{line}");
    }
    let mut memory = "| peak memory: plan / first run / cached rerun |".to_owned();
    for row in &rows {
        memory.push_str(&format!(
            " {} / {} / {} MiB | |",
            row.plan.peak_kib / 1024,
            row.first.peak_kib / 1024,
            row.cached.peak_kib / 1024
        ));
    }
    if rows.len() > 1 {
        memory.push_str(" |");
    }
    println!("{memory}");
}
