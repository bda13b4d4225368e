//! `pipelines/finetune_published.yaml`, the shipped file itself: as committed (digests not
//! filled in) it stops before anything runs and says how to fill them in; with a checkpoint
//! served by a local HTTP server in the Hub's layout (`<revision>/<file>`) and its digests
//! given with `--set`, it downloads each file once, verifies it, and fine-tunes the checkpoint;
//! a wrong digest records nothing.

mod common;

use std::path::{Path, PathBuf};

use common::{text, workspace_on_shared_data, FileServer};
use electra_stages::source::sha256_file;

fn pipeline() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/finetune_published.yaml")
}

/// A transformers checkpoint in `root/r1/`: the random ELECTRA discriminator of the interop
/// fixture (100 tokens, 32 positions) and a `vocab.txt` of its 100 tokens.
fn hub_layout(root: &Path) -> PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("stages/tests/fixtures/transformers/discriminator");
    let dir = root.join("r1");
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture.join(file), dir.join(file)).unwrap();
    }
    let words = [
        "the", "a", "is", "was", "of", "and", "to", "in", "it", "not", "that", "he", "she", "on",
    ];
    let vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .into_iter()
        .map(str::to_owned)
        .chain(words.iter().map(|w| (*w).to_owned()))
        .chain((words.len() + 5..100).map(|i| format!("w{i}")))
        .collect();
    std::fs::write(dir.join("vocab.txt"), vocab.join("\n") + "\n").unwrap();
    dir
}

/// `--set` arguments that point the pipeline at `server` with the digests of `dir`'s files
/// (`weights_sha256` replaced by `weights` when given), on RTE with one seed.
fn settings(server: &FileServer, dir: &Path, weights: Option<&str>) -> Vec<String> {
    let digest = |file: &str| sha256_file(&dir.join(file)).unwrap();
    let weights = weights.map_or_else(|| digest("model.safetensors"), str::to_owned);
    [
        format!("hub={}", server.url("").trim_end_matches('/')),
        "revision=r1".to_owned(),
        format!("config_sha256={}", digest("config.json")),
        format!("vocab_sha256={}", digest("vocab.txt")),
        format!("weights_sha256={weights}"),
        "tasks=[rte]".to_owned(),
        "seeds=[1]".to_owned(),
        "max_seq_len=32".to_owned(),
    ]
    .into_iter()
    .flat_map(|setting| ["--set".to_owned(), setting])
    .collect()
}

#[test]
fn as_shipped_it_stops_before_anything_runs_and_says_how_to_fill_in_the_digests() {
    let ws = workspace_on_shared_data();
    let file = pipeline();
    for command in ["plan", "run"] {
        let out = ws.run(&[command, file.to_str().unwrap()]);
        // 2: the pipeline file is invalid (nothing was run).
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let all = text(&out);
        for expected in [
            "files.config.json.sha256",
            "FILL_IN",
            "sha256sum",
            "Git LFS",
        ] {
            assert!(all.contains(expected), "no `{expected}` in:\n{all}");
        }
    }
    assert!(!ws.cache().join("runs/latest").exists(), "nothing ran");
}

#[test]
fn a_served_checkpoint_is_fetched_once_verified_and_fine_tuned() {
    let root = tempfile::tempdir().unwrap();
    let dir = hub_layout(root.path());
    let server = FileServer::start(root.path().to_owned());
    let ws = workspace_on_shared_data();
    let file = pipeline();
    let args = settings(&server, &dir, None);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ran = ws.run_ok(&file, &args);
    assert_eq!(
        ran,
        [
            "checkpoint",
            "finetune[task=rte,seed=1]",
            "glue[task=rte]",
            "vocab"
        ]
    );
    assert_eq!(server.requests(), 3, "one request per file");
    let fetched = ws.output_path("checkpoint", "electra-small-discriminator");
    for name in ["config.json", "vocab.txt", "model.safetensors"] {
        assert_eq!(
            std::fs::read(fetched.join(name)).unwrap(),
            std::fs::read(dir.join(name)).unwrap(),
            "{name}"
        );
    }
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.output_path("finetune[task=rte,seed=1]", "metrics.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        summary["encoder"]["objective"],
        "transformers ElectraForPreTraining"
    );
    // The paper's settings: RTE's 10 epochs over every training example, lr 3e-4.
    assert_eq!(summary["epochs"], 10);
    assert_eq!(summary["train_examples"], 2490);
    assert_eq!(summary["lr"], 3e-4);

    assert!(ws.run_ok(&file, &args).is_empty(), "a rerun does nothing");
    assert_eq!(server.requests(), 3, "and downloads nothing");
}

#[test]
fn a_served_file_with_another_digest_records_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = hub_layout(root.path());
    let server = FileServer::start(root.path().to_owned());
    let ws = workspace_on_shared_data();
    let wrong = "ab".repeat(32);
    let args = settings(&server, &dir, Some(&wrong));
    let file = pipeline();
    let mut command = vec!["run", file.to_str().unwrap()];
    command.extend(args.iter().map(String::as_str));
    let out = ws.run(&command);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    let actual = sha256_file(&dir.join("model.safetensors")).unwrap();
    assert!(
        all.contains("r1/model.safetensors")
            && all.contains(&format!("expected sha256 {wrong}, got {actual}")),
        "{all}"
    );
    let ls = text(&ws.run(&["cache", "ls"]));
    assert!(!ls.contains("checkpoint"), "nothing recorded:\n{ls}");
}
