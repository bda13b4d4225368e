//! Crashes, interrupts, corruption and concurrent use, with the real binary, real processes
//! and a real sled cache.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{text, Workspace, DIAMOND};

/// `slow` marks its checkpoint, then works for ~30 s; resumed from a checkpoint it finishes
/// at once. `first` is quick; `after` uses `slow`'s output.
const SLOW: &str = r#"
pipeline: crash-test
stages:
  first:
    kind: command
    params: { cmd: echo first > first.txt, outputs: [first.txt] }
  slow:
    kind: command
    params:
      cmd: |
        cat "$first" > result.txt
        if [ -e "$EP_CHECKPOINT_DIR/started" ]; then echo resumed >> result.txt; exit 0; fi
        touch "$EP_CHECKPOINT_DIR/started"
        echo $$ > "$EP_CHECKPOINT_DIR/shell.pid"
        echo partial >> result.txt
        for i in $(seq 300); do sleep 0.1; done
        echo finished >> result.txt
      inputs: { first: "@first/first.txt" }
      outputs: [result.txt]
  after:
    kind: command
    params: { cmd: cat "$r" > after.txt, inputs: { r: "@slow/result.txt" }, outputs: [after.txt] }
"#;

fn spawn_run(ws: &Workspace, pipeline: &std::path::Path, extra: &[&str]) -> Child {
    let mut args = vec!["run", pipeline.to_str().unwrap()];
    args.extend_from_slice(extra);
    ws.command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the latest journal says `stage` is running.
fn wait_running(ws: &Workspace, stage: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let running = ws.cache().join("runs/latest").exists()
            && ws
                .journal()
                .iter()
                .any(|e| e["name"] == stage && e["state"] == "running");
        if running
            && ws
                .cache()
                .join("work")
                .read_dir()
                .map(|mut d| d.next().is_some())
                .unwrap_or(false)
        {
            std::thread::sleep(Duration::from_millis(300));
            return;
        }
        assert!(Instant::now() < deadline, "{stage} never started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The pid of the `slow` stage's shell, once it has written it.
fn stage_shell(ws: &Workspace) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    let checkpoints = ws.cache().join("checkpoints");
    loop {
        let pid = std::fs::read_dir(&checkpoints).ok().and_then(|dirs| {
            dirs.flatten().find_map(|d| {
                std::fs::read_to_string(d.path().join("shell.pid"))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            })
        });
        if let Some(pid) = pid {
            return pid;
        }
        assert!(Instant::now() < deadline, "slow never wrote its pid");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` runs (a zombie has finished).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

fn results(ws: &Workspace) -> String {
    let out = ws.run(&["cache", "ls"]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_verify_passes(ws: &Workspace) {
    let out = ws.run(&["cache", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("all intact"),
        "{}",
        text(&out)
    );
}

#[test]
fn kill_9_mid_stage_then_rerun_resumes_from_the_checkpoint() {
    let ws = Workspace::new();
    let pipeline = ws.write("slow.yaml", SLOW);
    let mut child = spawn_run(&ws, &pipeline, &[]);
    wait_running(&ws, "slow");
    let shell = stage_shell(&ws);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        alive(shell),
        "the stage outlives the orchestrator until the cache is opened"
    );

    let ls = ws.run(&["cache", "ls"]);
    let said = String::from_utf8_lossy(&ls.stderr);
    assert!(
        said.contains("taking over the cache lock left by a process that died"),
        "{}",
        text(&ls)
    );
    assert!(said.contains("stopped 1 process group(s)"), "{}", text(&ls));
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(shell) {
        assert!(
            Instant::now() < deadline,
            "the orphaned stage {shell} still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let listed = results(&ws);
    assert!(listed.lines().any(|l| l.ends_with(" first")), "{listed}");
    assert!(
        !listed.lines().any(|l| l.ends_with(" slow")),
        "an interrupted stage must leave no record:\n{listed}"
    );
    assert_verify_passes(&ws);

    let out = ws.run(&["run", pipeline.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        ws.ran_in_last_run(),
        ["after", "slow"],
        "`first` is reused, `slow` re-runs"
    );
    let result = std::fs::read_to_string(ws.output_path("slow", "result.txt")).unwrap();
    assert_eq!(
        result, "first\nresumed\n",
        "the re-run resumed from its checkpoint"
    );
    let checkpoints = std::fs::read_dir(ws.cache().join("checkpoints"))
        .unwrap()
        .count();
    assert_eq!(
        checkpoints, 0,
        "checkpoints are cleared once a stage completes"
    );
    assert_verify_passes(&ws);
}

#[test]
fn show_plan_and_cache_ls_read_the_cache_while_a_run_holds_it() {
    let ws = Workspace::new();
    let pipeline = ws.write("slow.yaml", SLOW);
    let mut child = spawn_run(&ws, &pipeline, &[]);
    wait_running(&ws, "slow");
    // The run publishes its index within a few seconds of `first` finishing.
    let deadline = Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let out = ws.run(&["cache", "ls"]);
        assert!(out.status.success(), "{}", text(&out));
        let listed = String::from_utf8_lossy(&out.stdout).into_owned();
        if listed.lines().any(|l| l.ends_with(" first")) {
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("the cache is in use"),
                "{}",
                text(&out)
            );
            break listed;
        }
        assert!(
            Instant::now() < deadline,
            "never listed `first`: {}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!listed.lines().any(|l| l.ends_with(" slow")), "{listed}");
    let show = ws.run(&["show", "first"]);
    assert!(show.status.success(), "{}", text(&show));
    assert!(text(&show).contains("first"), "{}", text(&show));
    let plan = ws.run(&["plan", pipeline.to_str().unwrap(), "--no-wait"]);
    assert!(plan.status.success(), "{}", text(&plan));
    let plan = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(
        plan.contains("cached") && plan.contains("will run"),
        "{plan}"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run went on meanwhile"
    );
    // SAFETY: sending SIGINT to the child we spawned.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    child.wait().unwrap();
    assert!(
        !ws.cache().join("index-snapshot.jsonl").exists(),
        "the snapshot goes with the run"
    );
}

#[test]
fn ctrl_c_stops_running_stages_and_records_nothing_half_done() {
    let ws = Workspace::new();
    let pipeline = ws.write("slow.yaml", SLOW);
    let child = spawn_run(&ws, &pipeline, &[]);
    wait_running(&ws, "slow");
    let started = Instant::now();
    // SAFETY: sending SIGINT to the child we spawned.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopping took {:?}",
        started.elapsed()
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("interrupted"),
        "{}",
        text(&out)
    );
    let journal = ws.journal();
    assert!(journal
        .iter()
        .any(|e| e["name"] == "slow" && e["state"] == "cancelled"));
    assert!(journal
        .iter()
        .any(|e| e["event"] == "run_end" && e["interrupted"] == true));
    let listed = results(&ws);
    assert!(listed.lines().any(|l| l.ends_with(" first")), "{listed}");
    assert!(!listed.lines().any(|l| l.ends_with(" slow")), "{listed}");
    let status = ws.run(&["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("interrupted"),
        "{}",
        text(&status)
    );
    assert_verify_passes(&ws);
}

#[test]
fn a_flipped_byte_is_reported_by_verify_and_recomputed_by_the_next_run() {
    let ws = Workspace::new();
    ws.write("data/input.txt", "hello world\n");
    let pipeline = ws.write("diamond.yaml", DIAMOND);
    ws.run_ok(&pipeline, &[]);
    let stored = ws.output_path("source", "upper.txt");
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(&stored, &bytes).unwrap(); // the same inode as the blob: the blob changes too

    let out = ws.run(&["cache", "verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("corrupt") && report.contains("output `upper.txt` of source"),
        "{report}"
    );

    let out = ws.run(&["run", pipeline.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("corrupt"),
        "the run says why it recomputes:\n{}",
        text(&out)
    );
    assert_eq!(
        ws.ran_in_last_run(),
        ["source"],
        "recomputed; its identical output keeps the rest cached"
    );
    assert_eq!(
        std::fs::read_to_string(ws.output_path("source", "upper.txt")).unwrap(),
        "HELLO WORLD\n"
    );
    assert_verify_passes(&ws);
}

#[test]
fn a_second_process_waits_for_the_cache_or_refuses_with_no_wait() {
    let ws = Workspace::new();
    let pipeline = ws.write(
        "p.yaml",
        "stages:\n  s:\n    kind: command\n    params: { cmd: 'sleep 2; echo x > x.txt', outputs: [x.txt] }\n  t:\n    kind: command\n    params: { cmd: cat \"$x\" > t.txt, inputs: { x: '@s/x.txt' }, outputs: [t.txt] }\n",
    );
    let first = spawn_run(&ws, &pipeline, &[]);
    wait_running(&ws, "s");
    let refused = ws.run(&["run", pipeline.to_str().unwrap(), "--no-wait"]);
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("is in use by another electra-pipe process"),
        "{}",
        text(&refused)
    );
    let second = spawn_run(&ws, &pipeline, &[]);
    let first = first.wait_with_output().unwrap();
    let second = second.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", text(&first));
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("waiting for it"),
        "{}",
        text(&second)
    );
    assert!(
        ws.ran_in_last_run().is_empty(),
        "the second run found everything cached"
    );
    assert_verify_passes(&ws);
}
