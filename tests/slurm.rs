//! The Slurm executor against a real single-node Slurm (slurmctld, slurmd, slurmdbd, munge):
//! `scripts/slurm-local.sh start` brings one up when none answers. These tests never pass
//! without Slurm: they fail, saying how to start it.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{text, workspace_on_shared_data, Workspace, FINETUNE_TINY};

/// Starts the local cluster once per test binary if the controller does not answer.
fn slurm() {
    static STARTED: Mutex<bool> = Mutex::new(false);
    let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    if *started {
        return;
    }
    let up = Command::new("scontrol")
        .arg("ping")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("is UP"));
    if !up {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-local.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "no Slurm controller answers and `{} start` could not start one (it needs root and apt):\n{}",
            script.display(),
            text(&out)
        );
    }
    *started = true;
}

/// A diamond with a matrix, and a failing branch whose exit code is `${code}`; every stage
/// names a unique job (`tag`) so that `sacct` can count this test's jobs.
fn pipeline(tag: &str) -> String {
    format!(
        r#"
pipeline: slurm-{tag}
vars:
  code: 3
stages:
  source_{tag}:
    kind: command
    params:
      cmd: tr a-z A-Z < "$text" > upper.txt
      inputs: {{ text: "${{data}}/input.txt" }}
      outputs: [upper.txt]
  left_{tag}:
    kind: command
    matrix: {{n: [1, 2, 3]}}
    resources: {{cpus: 1, memory: 100M, time: "5"}}
    params:
      cmd: head -c ${{n}} "$text" > head.txt
      inputs: {{ text: "@source_{tag}/upper.txt" }}
      outputs: [head.txt]
  right_{tag}:
    kind: command
    params:
      cmd: mkdir -p out && rev "$text" > out/reversed.txt && echo "$(hostname)" > out/host.txt
      inputs: {{ text: "@source_{tag}/upper.txt" }}
      outputs: [out]
  broken_{tag}:
    kind: command
    params:
      cmd: echo "about to fail with ${{code}}" >&2; exit ${{code}}
      inputs: {{ text: "@source_{tag}/upper.txt" }}
      outputs: [never.txt]
  after_broken_{tag}:
    kind: command
    params:
      cmd: cp "$x" copy.txt
      inputs: {{ x: "@broken_{tag}/never.txt" }}
      outputs: [copy.txt]
  join_{tag}:
    kind: command
    params:
      cmd: cat $heads "$rev/reversed.txt" > joined.txt
      inputs:
        heads: "@left_{tag}[*]/head.txt"
        rev: "@right_{tag}/out"
      outputs: [joined.txt]
"#
    )
}

fn unique_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("t{}x{nanos}", std::process::id())
}

fn workspace(tag: &str) -> (Workspace, std::path::PathBuf) {
    let ws = Workspace::new();
    ws.write("data/input.txt", "hello slurm\n");
    let file = ws.write("p.yaml", &pipeline(tag));
    (ws, file)
}

/// The jobs Slurm accounted under this job name, as `id|STATE`, once there are `expected` of
/// them in a final state (sacct lags squeue by about a second); what it has after 20 s.
fn accounted(name: &str, expected: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new("sacct")
            .args([
                "-X",
                "-P",
                "-n",
                "-a",
                "-S",
                "now-1hour",
                "-o",
                "JobID,State",
            ])
            .args(["--name", name])
            .output()
            .unwrap();
        let jobs: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        let settled = jobs
            .iter()
            .all(|j| !j.ends_with("|RUNNING") && !j.ends_with("|PENDING"));
        if (jobs.len() == expected && settled) || Instant::now() > deadline {
            return jobs;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn read(ws: &Workspace, stage: &str, output: &str) -> String {
    std::fs::read_to_string(ws.output_path(stage, output)).unwrap()
}

#[test]
fn a_pipeline_on_slurm_gives_the_local_results_and_blocks_what_failed() {
    slurm();
    let tag = unique_tag();
    let (local, local_file) = workspace(&tag);
    let out = local.run(&["run", local_file.to_str().unwrap(), "--executor", "local"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    let (ws, file) = workspace(&tag);
    let out = ws.run(&["run", file.to_str().unwrap(), "--executor", "slurm"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("broken_{tag}"))
            && stderr.contains("exited with status 3")
            && stderr.contains("about to fail with 3"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("blocked by these failures: after_broken_{tag}")),
        "{stderr}"
    );

    // Same results as the local executor, produced by jobs.
    let join = format!("join_{tag}");
    assert_eq!(
        read(&ws, &join, "joined.txt"),
        read(&local, &join, "joined.txt")
    );
    assert_eq!(read(&ws, &join, "joined.txt"), "HHEHELMRULS OLLEH\n");
    let show = text(&ws.run(&["show", &join]));
    assert!(show.contains("submitted Slurm job"), "{show}");
    assert!(show.contains("completed on"), "{show}");
    let jobs = accounted(&join, 1);
    assert!(
        jobs.len() == 1 && jobs[0].ends_with("|COMPLETED"),
        "{jobs:?}"
    );
    let failed = accounted(&format!("broken_{tag}"), 1);
    assert!(
        failed.len() == 1 && failed[0].ends_with("|FAILED"),
        "{failed:?}"
    );

    // A rerun reuses every result; only the failed stage is tried again.
    let out = ws.run(&["run", file.to_str().unwrap(), "--executor", "slurm"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(ws.ran_in_last_run(), [format!("broken_{tag}")]);
    // Fixed, the rest of the graph runs; then all of it is cached.
    let fixed = ["--executor", "slurm", "--set", "code=0"];
    let fixed_file = ws.write(
        "fixed.yaml",
        &pipeline(&tag).replace("exit ${code}", "touch never.txt; exit ${code}"),
    );
    let ran = ws.run_ok(&fixed_file, &fixed);
    assert_eq!(
        ran,
        [format!("after_broken_{tag}"), format!("broken_{tag}")]
    );
    assert!(
        ws.run_ok(&fixed_file, &fixed).is_empty(),
        "a rerun is fully cached"
    );
}

#[test]
fn a_killed_orchestrator_reattaches_to_its_job_instead_of_resubmitting() {
    slurm();
    let tag = unique_tag();
    let ws = Workspace::new();
    let file = ws.write(
        "slow.yaml",
        &format!(
            r#"
pipeline: slow-{tag}
stages:
  slow_{tag}:
    kind: command
    params:
      cmd: sleep 4 && echo finished > out.txt
      outputs: [out.txt]
"#
        ),
    );
    let name = format!("slow_{tag}");

    // Ctrl-C cancels the job this run submitted, and records nothing.
    let mut child = spawn_on_slurm(&ws, &file);
    wait_for_queue(&name, &mut child);
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let jobs = accounted(&name, 1);
    assert!(
        jobs.len() == 1 && jobs[0].contains("|CANCELLED"),
        "{jobs:?}"
    );

    let mut child = spawn_on_slurm(&ws, &file);
    // Killed (SIGKILL) as soon as its job is in the queue: the job goes on.
    wait_for_queue(&name, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    let queued = jobs_in_queue(&name);

    assert_eq!(ws.run_ok(&file, &["--executor", "slurm"]), [name.as_str()]);
    let show = text(&ws.run(&["show", &name]));
    assert!(
        show.contains(&format!("reattached to Slurm job {}", queued[0])),
        "{show}"
    );
    assert_eq!(read(&ws, &name, "out.txt"), "finished\n");
    let jobs = accounted(&name, 2);
    assert!(
        jobs.len() == 2 && jobs[1].ends_with("|COMPLETED"),
        "the cancelled job, then one job never resubmitted: {jobs:?}"
    );
}

#[test]
fn gc_forgets_the_jobs_of_keys_no_pipeline_uses_and_a_run_counts_its_jobs() {
    slurm();
    let tag = unique_tag();
    let ws = Workspace::new();
    let name = format!("slow_{tag}");
    let file = ws.write(
        "slow.yaml",
        &format!(
            "pipeline: gc-{tag}\nstages:\n  {name}:\n    kind: command\n    params: {{cmd: sleep 2 && echo done > out.txt, outputs: [out.txt]}}\n"
        ),
    );
    let mut child = spawn_on_slurm(&ws, &file);
    wait_for_queue(&name, &mut child);
    child.kill().unwrap();
    child.wait().unwrap();

    // Another pipeline does not use the job's key: gc forgets the job (and its staging).
    let other = ws.write(
        "other.yaml",
        "pipeline: other\nstages:\n  a:\n    kind: command\n    params: {cmd: echo > a.txt, outputs: [a.txt]}\n",
    );
    let out = ws.run(&["cache", "gc", other.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 cluster job records"),
        "{}",
        text(&out)
    );
    // So the next run submits a job of its own instead of reattaching, and says how it ended.
    let out = ws.run(&["run", file.to_str().unwrap(), "--executor", "slurm"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("Slurm: 1 sbatch call(s); jobs ended: 1 COMPLETED"),
        "{}",
        text(&out)
    );
    let show = text(&ws.run(&["show", &name]));
    assert!(!show.contains("reattached"), "{show}");
}

/// Starts `run --executor slurm` on `file` in the background.
fn spawn_on_slurm(ws: &Workspace, file: &Path) -> std::process::Child {
    ws.command(&["run", file.to_str().unwrap(), "--executor", "slurm"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until a job of this name is queued or running, while `child` (the run) goes on.
fn wait_for_queue(name: &str, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while jobs_in_queue(name).is_empty() {
        assert!(Instant::now() < deadline, "the job never reached the queue");
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn jobs_in_queue(name: &str) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["-h", "-o", "%i", "--name", name])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn slurm_problems_are_clear_errors_and_nothing_is_recorded() {
    slurm();
    let tag = unique_tag();
    let (ws, _) = workspace(&tag);
    let one_stage = ws.write(
        "one.yaml",
        &format!(
            r#"
pipeline: one-{tag}
stages:
  only_{tag}:
    kind: command
    resources: {{partition: no_such_partition}}
    params: {{cmd: echo hi > hi.txt, outputs: [hi.txt]}}
"#
        ),
    );
    let args = ["run", one_stage.to_str().unwrap(), "--executor", "slurm"];

    // A partition the cluster does not have: sbatch's reason, the stage failed, no record.
    let out = ws.run(&args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("sbatch rejected the job: Invalid partition name specified"),
        "{}",
        text(&out)
    );
    let plan = text(&ws.run(&["plan", one_stage.to_str().unwrap(), "--executor", "slurm"]));
    assert!(plan.contains("1 will run"), "{plan}");
    assert!(plan.contains("(as a slurm job)"), "{plan}");

    // No Slurm tools on PATH.
    let empty = tempfile::tempdir().unwrap();
    let out = ws
        .command(&args)
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("needs `sbatch` on PATH"),
        "{}",
        text(&out)
    );

    // A controller that does not answer (a configuration naming a port nobody listens on).
    let conf = std::fs::read_to_string("/etc/slurm/slurm.conf").unwrap();
    let dead = ws.write("dead/slurm.conf", &format!("{conf}\nSlurmctldPort=6899\n"));
    let out = ws.command(&args).env("SLURM_CONF", &dead).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("the Slurm controller does not answer"),
        "{}",
        text(&out)
    );
    let plan = text(&ws.run(&["plan", one_stage.to_str().unwrap()]));
    assert!(plan.contains("1 will run"), "{plan}");
}

#[test]
fn a_job_cancelled_behind_the_runs_back_is_retried() {
    slurm();
    let tag = unique_tag();
    let ws = Workspace::new();
    let name = format!("flaky_{tag}");
    let file = ws.write(
        "flaky.yaml",
        &format!(
            r#"
pipeline: flaky-{tag}
stages:
  {name}:
    kind: command
    retries: 1
    params:
      cmd: sleep 3 && echo finished > out.txt
      outputs: [out.txt]
"#
        ),
    );
    let mut child = spawn_on_slurm(&ws, &file);
    wait_for_queue(&name, &mut child);
    let first = jobs_in_queue(&name);
    let out = Command::new("scancel").arg(&first[0]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let status = child.wait().unwrap();
    assert!(status.success(), "the retry should have succeeded");
    assert_eq!(read(&ws, &name, "out.txt"), "finished\n");
    let show = text(&ws.run(&["show", &name]));
    assert!(
        // Cancelled while queued (no result) or while running (the stage stopped early).
        show.contains(&format!("Slurm job {} ended CANCELLED", first[0]))
            || show.contains(&format!("Slurm job {} was cancelled outside", first[0])),
        "{show}"
    );
    let jobs = accounted(&name, 2);
    assert!(
        jobs.len() == 2 && jobs[0].contains("|CANCELLED") && jobs[1].ends_with("|COMPLETED"),
        "{jobs:?}"
    );
}

#[test]
fn pretraining_and_finetuning_jobs_give_the_local_results_bit_for_bit() {
    slurm();
    let seed = ["--set", "seeds=[1]"];
    let local = workspace_on_shared_data();
    local.run_ok(&local.write("ft.yaml", FINETUNE_TINY), &seed);
    let ws = workspace_on_shared_data();
    let file = ws.write("ft.yaml", FINETUNE_TINY);
    let ran = ws.run_ok(
        &file,
        &[&seed[..], &["--executor", "slurm", "-j", "4"]].concat(),
    );
    assert_eq!(ran.len(), 6, "{ran:?}");
    // Same stored objects (outputs/<digest>/<name>); the pretraining metrics hold wall times.
    for (stage, output) in [
        ("electra", "model.safetensors"),
        ("finetune[seed=1]", "train_log.jsonl"),
        ("finetune[seed=1]", "predictions"),
    ] {
        let (ours, theirs) = (
            ws.output_path(stage, output),
            local.output_path(stage, output),
        );
        let digest = |path: &Path| path.parent().unwrap().file_name().unwrap().to_owned();
        assert_eq!(digest(&ours), digest(&theirs), "{stage} {output}");
    }
    let show = text(&ws.run(&["show", "electra"]));
    assert!(show.contains("completed on"), "{show}");
}

/// A PATH directory whose Slurm tools log their name to `calls.log` before running the real
/// ones; returns the PATH to give the run.
fn counting_shim(ws: &Workspace) -> String {
    let shim = ws.path().join("shim");
    std::fs::create_dir_all(&shim).unwrap();
    let log = ws.path().join("calls.log");
    for tool in ["sbatch", "squeue", "sacct", "scontrol", "scancel"] {
        let real = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap();
        let real = String::from_utf8_lossy(&real.stdout).trim().to_owned();
        let path = shim.join(tool);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho {tool} >> '{}'\nexec '{real}' \"$@\"\n",
                log.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    format!("{}:{}", shim.display(), std::env::var("PATH").unwrap())
}

/// How many times each Slurm tool was called through the shim.
fn calls(ws: &Workspace, tool: &str) -> usize {
    std::fs::read_to_string(ws.path().join("calls.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == tool)
        .count()
}

#[test]
fn a_300_cell_sweep_is_one_job_array_and_survives_a_killed_orchestrator() {
    slurm();
    let tag = unique_tag();
    let ws = Workspace::new();
    let cells: Vec<String> = (0..300).map(|i| i.to_string()).collect();
    let name = format!("cell_{tag}");
    let file = ws.write(
        "sweep.yaml",
        &format!(
            "pipeline: sweep-{tag}\nstages:\n  {name}:\n    kind: command\n    matrix: {{i: [{}]}}\n    params: {{cmd: 'echo ${{i}} > out.txt', outputs: [out.txt]}}\n",
            cells.join(", ")
        ),
    );
    let path = counting_shim(&ws);
    let args = [
        "run",
        file.to_str().unwrap(),
        "--executor",
        "slurm",
        "-j",
        "300",
    ];
    let started = Instant::now();

    // Killed (SIGKILL) once 30 cells are done: the array's tasks go on without it.
    let mut child = ws
        .command(&args)
        .env("PATH", &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let journal = ws.cache().join("runs/latest").exists();
        let done = if journal { ws.journal() } else { Vec::new() }
            .iter()
            .filter(|e| e["state"] == "done")
            .count();
        if done >= 30 {
            break;
        }
        assert!(Instant::now() < deadline, "30 cells never finished");
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // The rerun reuses what was stored and reattaches to the tasks still in flight.
    let out = ws.command(&args).env("PATH", &path).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let elapsed = started.elapsed().as_secs_f64();
    let reattached = std::fs::read_dir(ws.cache().join("logs").join(format!("sweep-{tag}")))
        .unwrap()
        .filter(|log| {
            std::fs::read_to_string(log.as_ref().unwrap().path())
                .unwrap()
                .contains("reattached to Slurm job")
        })
        .count();
    assert!(reattached > 0, "some cells were still in flight");
    for i in [0, 1, 150, 299] {
        assert_eq!(
            read(&ws, &format!("{name}[i={i}]"), "out.txt"),
            format!("{i}\n")
        );
    }

    let (sbatch, squeue) = (calls(&ws, "sbatch"), calls(&ws, "squeue"));
    eprintln!(
        "300 cells, killed once: {sbatch} sbatch, {squeue} squeue, {} sacct, {} scontrol calls in {elapsed:.0} s",
        calls(&ws, "sacct"),
        calls(&ws, "scontrol")
    );
    assert!(sbatch <= 10, "{sbatch} sbatch calls for 300 cells");
    assert!(
        (squeue as f64) < 10.0 + elapsed,
        "{squeue} squeue calls in {elapsed:.0} s: one per poll, not per job"
    );
    // Each cell ran as exactly one array task: nothing was submitted twice.
    let jobs = accounted(&name, 300);
    assert_eq!(jobs.len(), 300, "{jobs:?}");
    assert!(jobs.iter().all(|j| j.ends_with("|COMPLETED")), "{jobs:?}");
    let mut tasks: Vec<&str> = jobs.iter().map(|j| j.split('|').next().unwrap()).collect();
    tasks.sort();
    tasks.dedup();
    assert_eq!(tasks.len(), 300, "each task once");
}
