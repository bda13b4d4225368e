//! Running pipelines of real `command` stages with the real binary and a real sled cache:
//! outputs, reruns, invalidation, forcing, failure isolation and retries.

mod common;

use common::{text, Workspace, DIAMOND};

fn diamond() -> (Workspace, std::path::PathBuf) {
    let ws = Workspace::new();
    ws.write("data/input.txt", "hello world\n");
    let pipeline = ws.write("diamond.yaml", DIAMOND);
    (ws, pipeline)
}

#[test]
fn diamond_with_matrix_produces_outputs_and_reruns_nothing() {
    let (ws, pipeline) = diamond();
    let ran = ws.run_ok(&pipeline, &[]);
    assert_eq!(ran, ["join", "left[n=1]", "left[n=2]", "right", "source"]);
    let joined = std::fs::read_to_string(ws.output_path("join", "joined.txt")).unwrap();
    assert_eq!(joined, "HHEDLROW OLLEH\n");
    let right = ws.output_path("right", "out");
    assert_eq!(
        std::fs::read_to_string(right.join("suffix.txt")).unwrap(),
        "!\n"
    );

    assert!(
        ws.run_ok(&pipeline, &[]).is_empty(),
        "a second run must execute nothing"
    );
    let journal = ws.journal();
    assert_eq!(journal.iter().filter(|e| e["state"] == "cached").count(), 5);
}

#[test]
fn a_param_change_reruns_exactly_that_stage_and_its_descendants() {
    let (ws, pipeline) = diamond();
    ws.run_ok(&pipeline, &[]);
    let ran = ws.run_ok(&pipeline, &["--set", "suffix=?"]);
    assert_eq!(ran, ["join", "right"]);
    // Back to the original suffix, with numbers spelt differently: every result of the
    // first run is still stored under its key, so nothing runs.
    std::fs::write(&pipeline, DIAMOND.replace("n: [1, 2]", "n: [1.0, 2e0]")).unwrap();
    assert!(ws.run_ok(&pipeline, &[]).is_empty());
}

#[test]
fn an_input_file_change_reruns_its_consumers() {
    let (ws, pipeline) = diamond();
    ws.run_ok(&pipeline, &[]);
    ws.write("data/input.txt", "other text\n");
    let plan = ws.run(&["plan", pipeline.to_str().unwrap()]);
    let plan_text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan_text.contains("will run  source")
            && plan_text.contains("input changed: ${data}/input.txt"),
        "{plan_text}"
    );
    assert_eq!(
        ws.run_ok(&pipeline, &[]),
        ["join", "left[n=1]", "left[n=2]", "right", "source"]
    );
    let joined = std::fs::read_to_string(ws.output_path("join", "joined.txt")).unwrap();
    assert_eq!(joined, "OOTTXET REHTO\n");
}

#[test]
fn unchanged_outputs_stop_invalidation_early() {
    let (ws, pipeline) = diamond();
    ws.run_ok(&pipeline, &[]);
    // Same letters after upper-casing: `source` reruns, but its output is identical, so
    // nothing downstream reruns.
    ws.write("data/input.txt", "HELLO world\n");
    assert_eq!(ws.run_ok(&pipeline, &[]), ["source"]);
}

#[test]
fn force_reruns_a_stage_or_one_cell() {
    let (ws, pipeline) = diamond();
    ws.run_ok(&pipeline, &[]);
    assert_eq!(
        ws.run_ok(&pipeline, &["--force", "left[n=2]"]),
        ["left[n=2]"]
    );
    assert_eq!(
        ws.run_ok(&pipeline, &["--force", "left"]),
        ["left[n=1]", "left[n=2]"]
    );
    let plan = ws.run(&["plan", pipeline.to_str().unwrap(), "--force", "source"]);
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("will run  source"),
        "{}",
        text(&plan)
    );
    let bad = ws.run(&["run", pipeline.to_str().unwrap(), "--force", "lefty"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("did you mean `left`?"),
        "{}",
        text(&bad)
    );
}

const FAILING: &str = r#"
stages:
  good:
    kind: command
    params: { cmd: echo ok > ok.txt, outputs: [ok.txt] }
  bad:
    kind: command
    retries: 2
    params: { cmd: 'echo attempt >> "$EP_CHECKPOINT_DIR/attempts"; echo boom >&2; exit 3', outputs: [x.txt] }
  after_bad:
    kind: command
    params: { cmd: cat "$x" > y.txt, inputs: { x: "@bad/x.txt" }, outputs: [y.txt] }
  after_good:
    kind: command
    params: { cmd: cat "$x" > z.txt, inputs: { x: "@good/ok.txt" }, outputs: [z.txt] }
"#;

#[test]
fn a_failure_blocks_only_its_descendants_after_its_retries() {
    let ws = Workspace::new();
    let pipeline = ws.write("failing.yaml", FAILING);
    let out = ws.run(&["run", pipeline.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad: the command exited with status 3"),
        "{stderr}"
    );
    assert!(
        stderr.contains("blocked by these failures: after_bad"),
        "{stderr}"
    );
    let log_line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("log: "))
        .expect("the summary names the log");
    let log = std::fs::read_to_string(log_line.trim_start().trim_start_matches("log: ")).unwrap();
    assert_eq!(
        log.matches("boom").count(),
        3,
        "three attempts, each logged:\n{log}"
    );
    // The checkpoint area survived the retries (same key), and the other branch finished.
    let journal = ws.journal();
    let state = |name: &str| {
        journal
            .iter()
            .filter(|e| e["name"] == name)
            .map(|e| e["state"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(state("after_good"), ["running", "done"]);
    assert_eq!(state("after_bad"), ["blocked"]);
    assert_eq!(state("bad"), ["running", "retrying", "retrying", "failed"]);
    let status = ws.run(&["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("finished with failures"),
        "{}",
        text(&status)
    );
    // The failure is not recorded as a result: the plan explains it will run again.
    let plan = ws.run(&["plan", pipeline.to_str().unwrap()]);
    let plan_text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan_text.contains("will run  bad") && plan_text.contains("last attempt failed"),
        "{plan_text}"
    );
    assert!(plan_text.contains("cached    after_good"), "{plan_text}");
}

#[test]
fn a_missing_declared_output_fails_the_stage() {
    let ws = Workspace::new();
    let pipeline = ws.write(
        "p.yaml",
        "stages:\n  s:\n    kind: command\n    params: { cmd: 'true', outputs: [never.txt] }\n",
    );
    let out = ws.run(&["run", pipeline.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("did not create its declared output `never.txt`"),
        "{}",
        text(&out)
    );
    let ls = ws.run(&["cache", "ls"]);
    assert!(
        String::from_utf8_lossy(&ls.stdout).contains("0 results"),
        "{}",
        text(&ls)
    );
}

#[test]
fn a_missing_data_file_fails_its_stage_with_where_it_looked() {
    let ws = Workspace::new();
    let pipeline = ws.write("diamond.yaml", DIAMOND);
    let out = ws.run(&["run", pipeline.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("input.txt does not exist")
            && stderr.contains("--data DIR or ELECTRA_PIPE_DATA"),
        "{stderr}"
    );
    let plan = ws.run(&["plan", pipeline.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("blocked   join"),
        "{}",
        text(&plan)
    );
}

#[test]
fn keys_do_not_depend_on_where_the_data_lives() {
    let (ws, pipeline) = diamond();
    ws.run_ok(&pipeline, &[]);
    let moved = ws.path().join("moved-data");
    std::fs::rename(ws.data(), &moved).unwrap();
    let out = std::process::Command::new(common::binary())
        .args([
            "--cache",
            ws.cache().to_str().unwrap(),
            "--data",
            moved.to_str().unwrap(),
        ])
        .args(["run", pipeline.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        ws.ran_in_last_run().is_empty(),
        "moving the data directory must not invalidate results"
    );
}

#[test]
fn a_cell_selects_its_upstream_cell_by_its_own_value() {
    let ws = Workspace::new();
    let pipeline = ws.write(
        "p.yaml",
        r#"
stages:
  pretrain:
    kind: command
    matrix: { objective: [electra, bert] }
    params: { cmd: "echo ${objective} > model.txt", outputs: [model.txt] }
  finetune:
    kind: command
    matrix: { model: [bert, electra], seed: [1, 2] }
    params:
      cmd: echo "$(cat "$encoder") ${seed}" > score.txt
      inputs: { encoder: "@pretrain[objective=${model}]/model.txt" }
      outputs: [score.txt]
  report:
    kind: command
    needs: ["finetune[*]"]
    params: { cmd: echo done > r.txt, outputs: [r.txt] }
"#,
    );
    ws.run_ok(&pipeline, &[]);
    let score = std::fs::read_to_string(ws.output_path("finetune[model=bert,seed=2]", "score.txt"))
        .unwrap();
    assert_eq!(score, "bert 2\n");
    let journal = ws.journal();
    let position = |name: &str, state: &str| {
        journal
            .iter()
            .position(|e| e["name"] == name && e["state"] == state)
            .unwrap()
    };
    for cell in [
        "finetune[model=bert,seed=1]",
        "finetune[model=electra,seed=2]",
    ] {
        assert!(
            position(cell, "done") < position("report", "running"),
            "`needs` waits for {cell}"
        );
    }
}

#[test]
fn stages_never_exceed_the_cpu_budget() {
    let ws = Workspace::new();
    let pipeline = ws.write(
        "p.yaml",
        "stages:\n  big:\n    kind: command\n    matrix: { i: [1, 2] }\n    resources: { cpus: 2 }\n    params: { cmd: 'sleep 0.3; echo $EP_CPUS ${i} > c.txt', outputs: [c.txt] }\n",
    );
    ws.run_ok(&pipeline, &["-j", "2", "--cpus", "2"]);
    let states: Vec<String> = ws
        .journal()
        .iter()
        .filter(|e| e["event"] == "stage")
        .map(|e| {
            format!(
                "{} {}",
                e["state"].as_str().unwrap(),
                e["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            "running big[i=1]",
            "done big[i=1]",
            "running big[i=2]",
            "done big[i=2]"
        ],
        "two 2-CPU stages on 2 CPUs run one at a time"
    );
    assert_eq!(
        std::fs::read_to_string(ws.output_path("big[i=1]", "c.txt")).unwrap(),
        "2 1\n"
    );
    // With room for both, they overlap.
    ws.run_ok(&pipeline, &["-j", "2", "--cpus", "4", "--force", "big"]);
    let states: Vec<String> = ws
        .journal()
        .iter()
        .filter(|e| e["event"] == "stage")
        .map(|e| e["state"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(&states[..2], ["running", "running"], "{states:?}");
}
