//! Helpers for the integration tests: the real binary, a temporary workspace with its own
//! cache, and readers for the run journal.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The real `electra-pipe` binary.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_electra-pipe"))
}

/// The shared real data directory (`../shared/data` beside the project).
pub fn shared_data() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    assert!(
        dir.join("README.md").exists(),
        "the real data is expected at {}",
        dir.display()
    );
    dir.canonicalize().unwrap()
}

/// A scratch directory with a cache, a data directory and pipeline files.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        Workspace { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn cache(&self) -> PathBuf {
        self.path().join("cache")
    }
    pub fn data(&self) -> PathBuf {
        self.path().join("data")
    }
    /// Writes a file relative to the workspace, returning its path.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }
    /// A command for the binary with this workspace's cache and data directory.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary());
        cmd.current_dir(self.path())
            .env_remove("ELECTRA_PIPE_DATA")
            .env_remove("ELECTRA_PIPE_CACHE")
            .arg("--cache")
            .arg(self.cache())
            .arg("--data")
            .arg(self.data())
            .args(args);
        cmd
    }
    /// Runs the binary to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
    /// Runs a pipeline and asserts success; returns the instances that ran (not cached).
    pub fn run_ok(&self, pipeline: &Path, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["run", pipeline.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        assert!(out.status.success(), "run failed:\n{}", text(&out));
        self.ran_in_last_run()
    }
    /// Instance names with a `running` event in the latest run journal, sorted.
    pub fn ran_in_last_run(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .journal()
            .iter()
            .filter(|e| e["event"] == "stage" && e["state"] == "running")
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }
    /// The latest run journal's entries.
    pub fn journal(&self) -> Vec<serde_json::Value> {
        let runs = self.cache().join("runs");
        let id = std::fs::read_to_string(runs.join("latest")).unwrap();
        std::fs::read_to_string(runs.join(format!("{}.jsonl", id.trim())))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
    /// The readable path of an instance's output, from `show`.
    pub fn output_path(&self, stage: &str, output: &str) -> PathBuf {
        let out = self.run(&["show", stage]);
        assert!(out.status.success(), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let needle = format!("output    {output} (");
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&needle))
            .unwrap_or_else(|| panic!("no output {output} in:\n{stdout}"));
        PathBuf::from(line.rsplit(": ").next().unwrap())
    }
}

/// stdout and stderr of a finished command, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A diamond (source → left, right → join) with a matrix in the middle, all `command`
/// stages. `${data}/input.txt` feeds the source.
pub const DIAMOND: &str = r#"
pipeline: diamond
vars:
  suffix: "!"
stages:
  source:
    kind: command
    params:
      cmd: tr a-z A-Z < "$text" > upper.txt
      inputs: { text: "${data}/input.txt" }
      outputs: [upper.txt]
  left:
    kind: command
    matrix:
      n: [1, 2]
    params:
      cmd: head -c ${n} "$text" > head.txt
      inputs: { text: "@source/upper.txt" }
      outputs: [head.txt]
  right:
    kind: command
    params:
      cmd: |
        mkdir -p out
        rev "$text" > out/reversed.txt
        echo "${suffix}" > out/suffix.txt
      inputs: { text: "@source/upper.txt" }
      outputs: [out]
  join:
    kind: command
    params:
      cmd: cat $heads "$rev/reversed.txt" > joined.txt
      inputs:
        heads: "@left[*]/head.txt"
        rev: "@right/out"
      outputs: [joined.txt]
"#;

/// A tiny ELECTRA on five Wikipedia articles with the BERT vocabulary, fine-tuned on 256 RTE
/// examples per seed (8 steps per epoch, 3 epochs).
pub const FINETUNE_TINY: &str = r#"
pipeline: finetune-tiny
vars:
  seeds: [1, 2]
stages:
  vocab:
    kind: tokenizer
    params: {load: "${data}/vocab/bert-base-uncased/vocab.txt"}
  wiki:
    kind: corpus
    params: {inputs: "${data}/corpus/wikipedia-en-2015/AA/wiki_00", max_docs: 5}
  examples:
    kind: pretrain_data
    params: {corpus: "@wiki/corpus.txt", tokenizer: "@vocab/tokenizer.json", max_seq_len: 64}
  electra:
    kind: pretrain
    params:
      objective: electra
      data: "@examples/shards"
      model: {preset: tiny}
      steps: 20
      batch_size: 8
      warmup_steps: 20
      checkpoint_every: 1000
  rte:
    kind: glue_task
    params: {task: rte, glue_dir: "${data}/glue", tokenizer: "@vocab/tokenizer.json"}
  finetune:
    kind: finetune
    matrix: {seed: "${seeds}"}
    params:
      task: "@rte/features"
      encoder: "@electra/model.safetensors"
      seed: ${seed}
      lr: 1e-3
      epochs: 3
      max_train_examples: 256
"#;

/// A static file server on 127.0.0.1 over a directory, counting the requests it answers.
pub struct FileServer {
    port: u16,
    requests: Arc<AtomicUsize>,
}

impl FileServer {
    /// Serves the files under `root` (404 for anything else) from a thread.
    pub fn start(root: PathBuf) -> Self {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        std::thread::spawn(move || {
            for request in server.incoming_requests() {
                counter.fetch_add(1, Ordering::SeqCst);
                let path = root.join(request.url().trim_start_matches('/'));
                let _ = match std::fs::File::open(&path) {
                    Ok(file) => request.respond(tiny_http::Response::from_file(file)),
                    Err(_) => request.respond(tiny_http::Response::empty(404)),
                };
            }
        });
        FileServer { port, requests }
    }
    /// The URL of `path` under the root.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// A workspace whose data directory is the real shared data.
pub fn workspace_on_shared_data() -> Workspace {
    let ws = Workspace::new();
    std::fs::remove_dir(ws.data()).unwrap();
    std::os::unix::fs::symlink(shared_data(), ws.data()).unwrap();
    ws
}

/// The step of the newest checkpoint under the cache, if any.
pub fn checkpointed_step(ws: &Workspace) -> Option<u64> {
    let dirs = std::fs::read_dir(ws.cache().join("checkpoints")).ok()?;
    dirs.flatten()
        .filter_map(|d| std::fs::read_to_string(d.path().join("latest/state.json")).ok())
        .filter_map(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .filter_map(|state| state["step"].as_u64())
        .max()
}

/// Runs `electra-pipe run <pipeline> <extra>` in `ws` and kills it with SIGKILL (no chance to
/// save anything more) as soon as `ready` holds; panics if it ends first or `ready` never holds
/// within five minutes.
pub fn run_and_sigkill_when(
    ws: &Workspace,
    pipeline: &Path,
    extra: &[&str],
    ready: impl Fn() -> bool,
) {
    let mut args = vec!["run", pipeline.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut child = ws
        .command(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "never ready to be killed"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
