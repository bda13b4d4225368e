//! The inspection commands (`show`, `status`, `graph`, `cache gc`) and the example pipeline
//! on the real Brown corpus.

mod common;

use common::{shared_data, text, Workspace, DIAMOND};

fn stdout(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn word_stats_example_runs_on_the_real_brown_corpus() {
    let ws = Workspace::new();
    let pipeline =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/word-stats.yaml");
    let data = shared_data();
    let out = std::process::Command::new(common::binary())
        .args([
            "--cache",
            ws.cache().to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ])
        .args(["run", pipeline.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(ws.ran_in_last_run().len(), 7);

    let corpus = std::fs::read_to_string(data.join("corpus/brown/brown_detagged.txt")).unwrap();
    let lines: Vec<&str> = corpus.lines().collect();
    let words = |n: usize| {
        lines[..n]
            .iter()
            .map(|l| l.split_ascii_whitespace().count())
            .sum::<usize>()
    };
    let expected = format!("{}\n{}\n500\n1000\n", words(500), words(1000));
    let report = ws.output_path("report", "report");
    let counts = std::fs::read_to_string(report.join("counts.txt")).unwrap();
    let counts: Vec<String> = counts.lines().map(|l| l.trim().to_owned()).collect();
    assert_eq!(counts.join("\n") + "\n", expected);
    let top = std::fs::read_to_string(report.join("top-words.txt")).unwrap();
    assert_eq!(top.lines().count(), 20);
    assert!(
        top.lines().next().unwrap().trim_start().ends_with(" the"),
        "the commonest word in Brown is `the`:\n{top}"
    );
}

#[test]
fn show_status_and_graph_describe_a_run() {
    let ws = Workspace::new();
    ws.write("data/input.txt", "hello world\n");
    let pipeline = ws.write("diamond.yaml", DIAMOND);
    ws.run_ok(&pipeline, &[]);

    let shown = stdout(&ws.run(&["show", "left"]));
    assert!(
        shown.contains("left[n=1]") && shown.contains("left[n=2]"),
        "{shown}"
    );
    assert!(
        shown.contains("kind      command v1")
            && shown.contains("output    head.txt (File, 1 bytes)"),
        "{shown}"
    );
    assert!(
        shown.contains("== electra-pipe: left[n=1] attempt 1/1"),
        "the log's tail is shown:\n{shown}"
    );

    let status = stdout(&ws.run(&["status"]));
    assert!(
        status.contains("finished successfully") && status.contains("5 stages: 5 done"),
        "{status}"
    );

    let dot = stdout(&ws.run(&["graph", pipeline.to_str().unwrap()]));
    assert!(
        dot.contains("\"source\" -> \"left[n=1]\"") && dot.contains("\"right\" -> \"join\""),
        "{dot}"
    );
    let mermaid = stdout(&ws.run(&[
        "graph",
        pipeline.to_str().unwrap(),
        "--format",
        "mermaid",
        "--stages",
    ]));
    assert!(
        mermaid.starts_with("flowchart LR") && mermaid.contains("left (command ×2)"),
        "{mermaid}"
    );
    assert_eq!(mermaid.matches("-->").count(), 4, "{mermaid}");
}

#[test]
fn gc_keeps_what_the_pipeline_uses_and_drops_the_rest() {
    let ws = Workspace::new();
    ws.write("data/input.txt", "hello world\n");
    let pipeline = ws.write("diamond.yaml", DIAMOND);
    ws.run_ok(&pipeline, &["--set", "suffix=?"]);
    ws.run_ok(&pipeline, &[]);
    let count = |ws: &Workspace| {
        stdout(&ws.run(&["cache", "ls"]))
            .lines()
            .filter(|l| l.contains(" diamond "))
            .count()
    };
    assert_eq!(count(&ws), 7, "two versions of `right` and `join`");

    let dry = stdout(&ws.run(&["cache", "gc", pipeline.to_str().unwrap(), "--dry-run"]));
    assert!(dry.contains("would remove 2 results"), "{dry}");
    assert_eq!(count(&ws), 7, "a dry run deletes nothing");
    let done = stdout(&ws.run(&["cache", "gc", pipeline.to_str().unwrap()]));
    assert!(
        done.contains("removed 2 results") && done.contains("kept 5 results"),
        "{done}"
    );
    assert_eq!(count(&ws), 5);
    assert!(stdout(&ws.run(&["cache", "verify"])).contains("all intact"));
    assert!(
        ws.run_ok(&pipeline, &[]).is_empty(),
        "what the pipeline uses is still cached"
    );
    assert_eq!(
        ws.run_ok(&pipeline, &["--set", "suffix=?"]),
        ["join", "right"],
        "the collected version re-runs"
    );
}

#[test]
fn validate_summarises_and_warns_about_missing_data() {
    let ws = Workspace::new();
    let pipeline = ws.write("diamond.yaml", DIAMOND);
    let out = stdout(&ws.run(&["validate", pipeline.to_str().unwrap()]));
    assert!(
        out.contains("is valid: 4 stages, 5 instances, 6 dependencies"),
        "{out}"
    );
    assert!(
        out.contains("warning: input") && out.contains("input.txt does not exist yet"),
        "{out}"
    );
}

#[test]
fn help_teaches_the_commands_and_exit_codes() {
    let out = stdout(
        &std::process::Command::new(common::binary())
            .arg("--help")
            .output()
            .unwrap(),
    );
    for word in [
        "validate",
        "plan",
        "run",
        "status",
        "show",
        "cache",
        "graph",
        "Exit codes",
        "ELECTRA_PIPE_DATA",
    ] {
        assert!(out.contains(word), "--help lacks {word}:\n{out}");
    }
}

#[test]
fn help_and_kinds_name_every_stage_kind_and_backend_of_the_build() {
    let run = |args: &[&str]| {
        stdout(
            &std::process::Command::new(common::binary())
                .args(args)
                .output()
                .unwrap(),
        )
    };
    let help = run(&["--help"]);
    let kinds = run(&["kinds"]);
    let names: Vec<&str> = kinds
        .lines()
        .take_while(|line| !line.is_empty())
        .map(|line| line.split_whitespace().next().unwrap())
        .collect();
    assert!(
        names.contains(&"finetune") && names.contains(&"report"),
        "{kinds}"
    );
    for name in &names {
        assert!(help.contains(name), "--help lacks the kind {name}:\n{help}");
    }
    let built = if cfg!(feature = "wgpu") {
        "wgpu"
    } else {
        "flex"
    };
    for backend in ["flex", "ndarray", "cuda", "wgpu"] {
        assert!(help.contains(backend), "--help lacks {backend}:\n{help}");
        assert!(kinds.contains(&format!("  {backend} ")), "{kinds}");
    }
    assert!(
        kinds.contains("  flex     ") && kinds.contains("[in this build]"),
        "{kinds}"
    );
    if !cfg!(feature = "cuda") {
        assert!(kinds.contains("`--features cuda`"), "{kinds}");
    }
    let run_help = run(&["run", "--help"]);
    assert!(
        run_help.contains("--backend") && run_help.contains(built),
        "{run_help}"
    );
}
