//! `pretrain` through the CLI: cached on rerun, and a changed learning rate re-runs only the
//! pretraining stages and what reads their weights.

mod common;

use common::{shared_data, Workspace};

const PIPELINE: &str = r#"
pipeline: tiny
vars:
  lr: 2e-3
stages:
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
  pretrain:
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
  size:
    kind: command
    params:
      cmd: wc -c < "$model" > size.txt
      inputs: {model: "@pretrain/model.safetensors"}
      outputs: [size.txt]
"#;

#[test]
fn pretraining_is_cached_and_a_new_lr_reruns_only_what_depends_on_it() {
    let ws = Workspace::new();
    std::fs::remove_dir(ws.data()).unwrap();
    std::os::unix::fs::symlink(shared_data(), ws.data()).unwrap();
    let pipeline = ws.write("tiny.yaml", PIPELINE);
    assert_eq!(
        ws.run_ok(&pipeline, &[]),
        ["examples", "pretrain", "size", "vocab", "wiki"]
    );
    assert!(ws.run_ok(&pipeline, &[]).is_empty(), "a rerun does nothing");
    assert_eq!(
        ws.run_ok(&pipeline, &["--set", "lr=1e-3"]),
        ["pretrain", "size"]
    );
    let metrics = std::fs::read_to_string(ws.output_path("pretrain", "metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 12);
}
