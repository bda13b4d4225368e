//! The data stage kinds through the CLI: declared sources downloaded from a local HTTP server,
//! a corpus → tokenizer → pretraining-shards + GLUE pipeline on the real data that a rerun
//! leaves alone, and bad data reported with its file and line.

mod common;

use std::path::Path;

use common::{shared_data, text, workspace_on_shared_data, FileServer, Workspace};

/// SHA-256 of `corpus/brown/brown_detagged.txt` (from the data's MANIFEST.tsv).
const BROWN_SHA256: &str = "607ad18fc70508d058028cabaeb94436e6207b09a77cb286d8b82540633fbb7f";

fn brown_source(url: &str, sha256: &str, local: &str) -> String {
    format!(
        r#"
pipeline: download
stages:
  brown:
    kind: source
    params:
      url: {url}
      sha256: {sha256}
{local}
  corpus:
    kind: corpus
    params: {{inputs: "@brown/brown_detagged.txt", format: text, split_sentences: false}}
"#
    )
}

#[test]
fn a_declared_source_is_downloaded_once_and_verified() {
    let server = FileServer::start(shared_data());
    let ws = workspace_on_shared_data();
    let url = server.url("corpus/brown/brown_detagged.txt");
    let pipeline = ws.write("download.yaml", &brown_source(&url, BROWN_SHA256, ""));
    let ran = ws.run_ok(&pipeline, &[]);
    assert_eq!(ran, ["brown", "corpus"]);
    assert_eq!(server.requests(), 1);
    let downloaded = ws.output_path("brown", "brown_detagged.txt");
    assert_eq!(
        std::fs::read(downloaded).unwrap(),
        std::fs::read(shared_data().join("corpus/brown/brown_detagged.txt")).unwrap()
    );
    let show = ws.run(&["show", "corpus"]);
    assert!(
        String::from_utf8_lossy(&show.stdout).contains("documents"),
        "{}",
        text(&show)
    );

    assert!(ws.run_ok(&pipeline, &[]).is_empty(), "a rerun does nothing");
    assert_eq!(server.requests(), 1, "and downloads nothing");
}

#[test]
fn a_wrong_checksum_keeps_nothing_and_names_both_digests() {
    let server = FileServer::start(shared_data());
    let ws = workspace_on_shared_data();
    let url = server.url("corpus/brown/brown_detagged.txt");
    let wrong = "0".repeat(64);
    let pipeline = ws.write("download.yaml", &brown_source(&url, &wrong, ""));
    let out = ws.run(&["run", pipeline.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains(&format!("expected sha256 {wrong}, got {BROWN_SHA256}")),
        "{all}"
    );
    let ls = ws.run(&["cache", "ls"]);
    assert!(
        !String::from_utf8_lossy(&ls.stdout).contains("brown"),
        "nothing recorded:\n{}",
        text(&ls)
    );
    let objects = walk_files(&ws.cache().join("objects"));
    assert!(objects.is_empty(), "nothing stored: {objects:?}");
}

#[test]
fn a_local_copy_with_the_right_checksum_is_used_without_downloading() {
    let server = FileServer::start(shared_data());
    let ws = workspace_on_shared_data();
    let url = server.url("corpus/brown/brown_detagged.txt");
    let local = "      local: ${data}/corpus/brown/brown_detagged.txt";
    let pipeline = ws.write("download.yaml", &brown_source(&url, BROWN_SHA256, local));
    assert_eq!(ws.run_ok(&pipeline, &[]), ["brown", "corpus"]);
    assert_eq!(server.requests(), 0);
}

#[test]
fn missing_data_says_where_it_looked_and_how_to_provide_it() {
    let ws = Workspace::new();
    let pipeline = ws.write(
        "missing.yaml",
        "pipeline: missing\nstages:\n  wiki:\n    kind: corpus\n    params: {inputs: \"${data}/corpus/wikipedia-en-2015/AA\"}\n",
    );
    let out = ws.run(&["run", pipeline.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    let looked_at = ws.data().join("corpus/wikipedia-en-2015/AA");
    assert!(all.contains(&looked_at.display().to_string()), "{all}");
    for hint in ["--data", "ELECTRA_PIPE_DATA", "url"] {
        assert!(all.contains(hint), "no `{hint}` in:\n{all}");
    }
}

const DATA_PIPELINE: &str = r#"
pipeline: data
stages:
  wiki:
    kind: corpus
    params: {inputs: "${data}/corpus/wikipedia-en-2015/AA/wiki_00", max_docs: 20}
  tok:
    kind: tokenizer
    params: {load: "${data}/vocab/bert-base-uncased/vocab.txt"}
  examples:
    kind: pretrain_data
    params: {corpus: "@wiki/corpus.txt", tokenizer: "@tok/tokenizer.json", seed: 1}
  glue:
    kind: glue_task
    matrix:
      task: [rte, cola]
    params:
      task: ${task}
      glue_dir: ${data}/glue
      splits: [dev]
      tokenizer: "@tok/tokenizer.json"
"#;

#[test]
fn a_data_pipeline_on_the_real_data_runs_once_and_is_cached() {
    let ws = workspace_on_shared_data();
    let pipeline = ws.write("data.yaml", DATA_PIPELINE);
    let ran = ws.run_ok(&pipeline, &[]);
    assert_eq!(
        ran,
        [
            "examples",
            "glue[task=cola]",
            "glue[task=rte]",
            "tok",
            "wiki"
        ]
    );
    let features = ws
        .output_path("glue[task=rte]", "features")
        .join("dev.jsonl");
    assert_eq!(
        std::fs::read_to_string(features).unwrap().lines().count(),
        277
    );
    let index = ws.output_path("examples", "shards");
    assert!(index.join("index.json").is_file(), "{}", index.display());
    assert!(ws.run_ok(&pipeline, &[]).is_empty(), "a rerun does nothing");
}

#[test]
fn bad_params_point_at_the_pipeline_line_and_bad_rows_at_the_data_line() {
    let ws = workspace_on_shared_data();
    let small = DATA_PIPELINE.replace(
        "      splits: [dev]\n",
        "      splits: [dev]\n      max_seq_len: 2\n",
    );
    let pipeline = ws.write("small.yaml", &small);
    let out = ws.run(&["validate", pipeline.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("small.yaml:21:"), "{err}");
    assert!(err.contains("2 is too small for"), "{err}");

    let bad = ws.write(
        "bad/RTE/dev.tsv",
        "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tyes\n",
    );
    let pipeline = ws.write(
        "bad.yaml",
        &DATA_PIPELINE
            .replace(
                "glue_dir: ${data}/glue",
                &format!(
                    "glue_dir: {}",
                    bad.parent().unwrap().parent().unwrap().display()
                ),
            )
            .replace("[rte, cola]", "[rte]"),
    );
    let out = ws.run(&["run", pipeline.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains(&format!("{}:2: unknown rte label `yes`", bad.display())),
        "{all}"
    );
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(walk_files(&path));
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn the_shipped_pipelines_validate_and_plan_without_missing_data() {
    let ws = workspace_on_shared_data();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let for_cuda = [
            "electra_small_paper.yaml",
            "electra_base_paper.yaml",
            "electra_table5_paper.yaml",
            "glue_gpu_hour.yaml",
        ];
        if for_cuda.iter().any(|name| path.ends_with(name)) {
            // For a CUDA build and data this machine lacks: planned in tests/glue_pipelines.rs.
            continue;
        }
        if path.ends_with("finetune_published.yaml") {
            // Needs digests given with --set: tests/finetune_published.rs runs it so.
            continue;
        }
        let path = path.to_str().unwrap();
        let out = ws.run(&["validate", path]);
        assert!(out.status.success(), "{path}: {}", text(&out));
        let out = ws.run(&["plan", path]);
        let plan = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && plan.contains(" 0 blocked"),
            "{path}: {}",
            text(&out)
        );
    }
}

#[test]
fn a_malformed_tagged_corpus_names_the_file_and_line_and_records_nothing() {
    let ws = workspace_on_shared_data();
    let good = ws.write("brown/ca01", "\n\tThe/at jury/nn said/vbd ./.\n");
    ws.write("brown/cb02", "\tIt/pps was/bedz\n\n\tA/at jury/xx ./.\n");
    let pipeline = ws.write(
        "tagged.yaml",
        &format!(
            "pipeline: tagged\nstages:\n  brown_tagged:\n    kind: tagged_corpus\n    params: {{inputs: {}}}\n",
            good.parent().unwrap().display()
        ),
    );
    let out = ws.run(&["run", pipeline.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    let bad = good.parent().unwrap().join("cb02");
    assert!(
        all.contains(&format!("{}:3: unknown tag `xx`", bad.display())),
        "{all}"
    );
    assert!(!all.contains("panicked"), "{all}");
    let ls = ws.run(&["cache", "ls"]);
    assert!(
        !String::from_utf8_lossy(&ls.stdout).contains("brown_tagged"),
        "nothing recorded:\n{}",
        text(&ls)
    );
    assert!(walk_files(&ws.cache().join("objects")).is_empty());
}
