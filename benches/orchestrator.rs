//! Orchestrator overhead on a generated pipeline: one `command` stage with an N-cell matrix
//! (default 10,000; set BENCH_CELLS) of trivial shell commands. Prints a Markdown table:
//! plan time, first run, fully cached rerun, and — as the reference — the same N shell
//! commands spawned directly at the same parallelism, so the difference is what
//! electra-pipe adds per stage (hashing, storing, sled commits, journal, scheduling).
//!
//! Run with `cargo bench --bench orchestrator`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const JOBS: usize = 2;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_electra-pipe"))
}

fn electra_pipe(dir: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = Command::new(binary())
        .current_dir(dir)
        .args(["--cache", "cache", "--data", "data", "-q"])
        .args(args)
        .output()
        .expect("the binary runs");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
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

fn main() {
    let cells: usize = std::env::var("BENCH_CELLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let values: Vec<String> = (0..cells).map(|i| i.to_string()).collect();
    let pipeline = format!(
        "pipeline: bench\nstages:\n  cell:\n    kind: command\n    matrix:\n      i: [{}]\n    params:\n      cmd: echo ${{i}} > out.txt\n      outputs: [out.txt]\n",
        values.join(", ")
    );
    std::fs::write(dir.path().join("bench.yaml"), pipeline).unwrap();

    let validate = electra_pipe(dir.path(), &["validate", "bench.yaml"]);
    let plan = electra_pipe(dir.path(), &["plan", "bench.yaml"]);
    let jobs = JOBS.to_string();
    let first = electra_pipe(dir.path(), &["run", "bench.yaml", "-j", &jobs]);
    let cached = electra_pipe(dir.path(), &["run", "bench.yaml", "-j", &jobs]);
    let cached_plan = electra_pipe(dir.path(), &["plan", "bench.yaml"]);
    let reference = direct_spawn(dir.path(), cells);
    let per_stage = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3 / cells as f64);
    let overhead = first.saturating_sub(reference);

    println!(
        "electra-pipe orchestrator benchmark: {cells} trivial `command` stages, {JOBS} jobs\n"
    );
    println!("| measurement | wall time | per stage |");
    println!("|---|---:|---:|");
    println!(
        "| validate (parse + expand + check) | {} | {} |",
        ms(validate),
        per_stage(validate)
    );
    println!("| plan, empty cache | {} | {} |", ms(plan), per_stage(plan));
    println!("| first run | {} | {} |", ms(first), per_stage(first));
    println!(
        "| reference: same commands spawned directly | {} | {} |",
        ms(reference),
        per_stage(reference)
    );
    println!(
        "| **overhead of electra-pipe** (first run − reference) | {} | **{}** |",
        ms(overhead),
        per_stage(overhead)
    );
    println!(
        "| fully cached rerun (verifies every output) | {} | {} |",
        ms(cached),
        per_stage(cached)
    );
    println!(
        "| plan, everything cached | {} | {} |",
        ms(cached_plan),
        per_stage(cached_plan)
    );
}
