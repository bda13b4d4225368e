//! `pretrain` through the CLI: cached on rerun, a changed learning rate re-runs only the
//! pretraining stages and what reads their weights, BERT's steps matched to ELECTRA's FLOPs,
//! a SIGKILLed run resumed to the same weights, and the backend flag.

mod common;

use common::{checkpointed_step, run_and_sigkill_when, workspace_on_shared_data, Workspace};

/// Five Wikipedia articles, a 1000-token vocabulary and 32-token examples (a macro so the
/// pipelines below can `concat!` it).
macro_rules! data_stages {
    () => {
        r#"
  wiki:
    kind: corpus
    params: {inputs: "${data}/corpus/wikipedia-en-2015/AA/wiki_00", max_docs: 5}
  vocab:
    kind: tokenizer
    params:
      train: {corpus: "@wiki/corpus.txt", vocab_size: 1000}
  examples:
    kind: pretrain_data
    params: {corpus: "@wiki/corpus.txt", tokenizer: "@vocab/tokenizer.json", max_seq_len: 32}
"#
    };
}

const PIPELINE: &str = concat!(
    "pipeline: tiny\nvars:\n  lr: 2e-3\nstages:",
    data_stages!(),
    r#"  pretrain:
    kind: pretrain
    params:
      objective: electra
      data: "@examples/shards"
      model: {preset: tiny}
      steps: 12
      batch_size: 4
      lr: ${lr}
      warmup_steps: 2
      checkpoint_every: 5
  bert:
    kind: pretrain
    params:
      objective: bert
      data: "@examples/shards"
      model: {preset: tiny}
      match_compute: pretrain
      batch_size: 4
      lr: ${lr}
      warmup_steps: 2
      checkpoint_every: 5
  size:
    kind: command
    params:
      cmd: wc -c < "$model" > size.txt
      inputs: {model: "@pretrain/model.safetensors"}
      outputs: [size.txt]
"#
);

#[test]
fn pretraining_is_cached_and_a_new_lr_reruns_only_what_depends_on_it() {
    let ws = workspace_on_shared_data();
    let pipeline = ws.write("tiny.yaml", PIPELINE);
    assert_eq!(
        ws.run_ok(&pipeline, &[]),
        ["bert", "examples", "pretrain", "size", "vocab", "wiki"]
    );
    assert!(ws.run_ok(&pipeline, &[]).is_empty(), "a rerun does nothing");
    assert_eq!(
        ws.run_ok(&pipeline, &["--set", "lr=1e-3"]),
        ["bert", "pretrain", "size"]
    );
    let metrics = std::fs::read_to_string(ws.output_path("pretrain", "metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 12);

    // BERT's steps are derived so that its train FLOPs equal ELECTRA's 12 steps.
    let config = |stage: &str| -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(ws.output_path(stage, "config.json")).unwrap(),
        )
        .unwrap()
    };
    let (electra, bert) = (config("pretrain"), config("bert"));
    let electra_flops = electra["train_flops"].as_f64().unwrap();
    assert_eq!(bert["match_compute"]["stage"], "pretrain");
    assert_eq!(
        bert["match_compute"]["train_flops"].as_f64().unwrap(),
        electra_flops
    );
    let per_step = bert["flops_per_step"].as_f64().unwrap();
    let steps = bert["steps"].as_u64().unwrap();
    assert!(
        steps > 12,
        "BERT's steps are cheaper than ELECTRA's: {steps}"
    );
    assert!((steps as f64 * per_step - electra_flops).abs() <= per_step / 2.0);
}

#[test]
fn match_compute_must_name_one_other_stage() {
    let ws = Workspace::new();
    let bad = PIPELINE.replace("match_compute: pretrain", "match_compute: pretrian");
    let pipeline = ws.write("bad.yaml", &bad);
    let out = ws.run(&["validate", pipeline.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("reference to a missing stage `pretrian`"),
        "{err}"
    );
    assert!(err.contains("did you mean `pretrain`"), "{err}");
}

const RESUMABLE: &str = concat!(
    "pipeline: resumable\nstages:",
    data_stages!(),
    r#"  electra:
    kind: pretrain
    params:
      objective: electra
      data: "@examples/shards"
      model: {preset: tiny}
      steps: 60
      batch_size: 8
      lr: 2e-3
      warmup_steps: 5
      checkpoint_every: 10
"#
);

#[test]
fn a_pretraining_run_killed_with_sigkill_resumes_to_the_same_weights() {
    let straight = workspace_on_shared_data();
    let pipeline = straight.write("resumable.yaml", RESUMABLE);
    straight.run_ok(&pipeline, &[]);
    let expected = std::fs::read(straight.output_path("electra", "model.safetensors")).unwrap();

    let ws = workspace_on_shared_data();
    let pipeline = ws.write("resumable.yaml", RESUMABLE);
    run_and_sigkill_when(&ws, &pipeline, &[], || {
        checkpointed_step(&ws).is_some_and(|step| step >= 20)
    });
    let killed_at = checkpointed_step(&ws).unwrap();
    assert!(killed_at < 60, "killed mid-way, after step {killed_at}");

    assert_eq!(
        ws.run_ok(&pipeline, &[]),
        ["electra"],
        "only the killed stage runs again"
    );
    let show = ws.run(&["show", "electra"]);
    let text = String::from_utf8_lossy(&show.stdout).into_owned();
    assert!(
        text.contains(&format!("resumed_from = {killed_at}")),
        "resumed from the checkpoint of step {killed_at}:\n{text}"
    );
    let resumed = std::fs::read(ws.output_path("electra", "model.safetensors")).unwrap();
    assert!(
        resumed == expected,
        "the resumed run's weights differ from the uninterrupted run's"
    );
}

#[test]
fn an_unavailable_backend_names_the_cargo_feature_that_enables_it() {
    let ws = workspace_on_shared_data();
    let pipeline =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/pretrain-tiny.yaml");
    let out = ws.run(&["plan", pipeline.to_str().unwrap(), "--backend", "cuda"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if cfg!(feature = "cuda") {
        assert!(out.status.success(), "{err}");
    } else {
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("pretrain-tiny.yaml:"), "{err}");
        assert!(
            err.contains("rebuild electra-pipe with `--features cuda`"),
            "{err}"
        );
    }
}
