//! The GPU code path run for real without a GPU: burn's `wgpu` backend (the same cubecl
//! kernels, fusion and autotuning as `cuda`) on Mesa's lavapipe, a conformant Vulkan driver
//! that runs on the CPU. Built only with `--features wgpu`; `.ci/run` installs lavapipe
//! (Debian's `mesa-vulkan-drivers`) and runs this file:
//!
//! ```sh
//! cargo test --release --features wgpu --test gpu_backend -- --nocapture
//! ```
//!
//! (in release: the GPU backends generate and compile their kernels at run time, host code a
//! debug build runs several times slower).
//!
//! Every check prints its measured figures (`--nocapture` shows them). The agreement with
//! `flex`, SIGKILL and resume, and step timings are `scripts/gpu-check.sh`'s, run here as a
//! GPU machine runs it; fine-tuning and the missing-driver error are checked here.
#![cfg(feature = "wgpu")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{text, workspace_on_shared_data, Workspace, FINETUNE_TINY};

/// Lavapipe's Vulkan driver manifest, as Debian's `mesa-vulkan-drivers` installs it.
const LAVAPIPE_ICD: &str = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json";

/// Points `cmd` at lavapipe: the Vulkan loader reads only its manifest (`VK_DRIVER_FILES`;
/// `VK_ICD_FILENAMES` for older loaders), cubecl takes its CPU adapter, autotuning is kept
/// short, and Mesa gets the runtime directory it asks for.
fn on_lavapipe<'a>(cmd: &'a mut Command, runtime_dir: &Path) -> &'a mut Command {
    assert!(
        Path::new(LAVAPIPE_ICD).exists(),
        "{LAVAPIPE_ICD} is missing: install Mesa's lavapipe (`apt-get install mesa-vulkan-drivers`)"
    );
    cmd.env("VK_DRIVER_FILES", LAVAPIPE_ICD)
        .env("VK_ICD_FILENAMES", LAVAPIPE_ICD)
        .env("CUBECL_WGPU_DEFAULT_DEVICE", "Cpu")
        .env("CUBECL_AUTOTUNE_LEVEL", "minimal")
        .env("XDG_RUNTIME_DIR", runtime_dir)
}

/// A workspace on the real data whose runs use lavapipe.
struct GpuWorkspace {
    ws: Workspace,
}

impl GpuWorkspace {
    fn new() -> Self {
        GpuWorkspace {
            ws: workspace_on_shared_data(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.ws.command(args);
        on_lavapipe(&mut cmd, self.ws.path());
        cmd
    }

    /// Runs `pipeline` to success; returns the instances that ran.
    fn run_ok(&self, pipeline: &Path, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["run", pipeline.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = self.command(&args).output().unwrap();
        assert!(out.status.success(), "run failed:\n{}", text(&out));
        self.ws.ran_in_last_run()
    }
}

/// Runs `scripts/gpu-check.sh wgpu` at tiny size on lavapipe with this build's binary and the
/// check's data made by `scripts/gpu-bundle.sh --data-only`, as on a GPU machine: agreement
/// with `flex`, SIGKILL and resume, step timings. Checks the JSON it writes.
#[test]
fn the_gpu_check_passes_on_wgpu_and_writes_its_json() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scratch = tempfile::tempdir().unwrap();
    let (data, out, work) = (
        scratch.path().join("data"),
        scratch.path().join("out"),
        scratch.path().join("work"),
    );
    let made = Command::new(root.join("scripts/gpu-bundle.sh"))
        .arg("--data-only")
        .arg(&data)
        .env("ELECTRA_PIPE_BIN", common::binary())
        .env("ELECTRA_PIPE_DATA", common::shared_data())
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));

    let mut check = Command::new(root.join("scripts/gpu-check.sh"));
    check
        .arg("wgpu")
        .arg(&out)
        .current_dir(scratch.path())
        .env("ELECTRA_PIPE_BIN", common::binary())
        .env("GPU_CHECK_DATA", &data)
        .env("GPU_CHECK_SIZE", "tiny")
        .env("GPU_CHECK_PART_SECONDS", "900")
        .env("GPU_CHECK_WORK", &work);
    let ran = on_lavapipe(&mut check, scratch.path()).output().unwrap();
    let log = std::fs::read_to_string(out.join("gpu-check.log")).unwrap_or_default();
    let summary: String = log
        .lines()
        .skip_while(|line| !line.starts_with("== report"))
        .collect::<Vec<_>>()
        .join("\n");
    println!("{summary}");
    assert!(
        ran.status.success(),
        "the check failed:\n{log}\n{}",
        text(&ran)
    );

    // What comes back from a GPU machine: one log and one JSON, small, no folders.
    let mut files: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap())
        .map(|entry| {
            assert!(entry.file_type().unwrap().is_file());
            assert!(entry.metadata().unwrap().len() < 16 << 20);
            entry.file_name().into_string().unwrap()
        })
        .collect();
    files.sort();
    assert_eq!(files, ["gpu-check.json", "gpu-check.log"]);

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("gpu-check.json")).unwrap())
            .unwrap();
    assert_eq!(report["format"], "electra-pipe gpu-check v1");
    assert_eq!(report["backend"], "wgpu");
    assert_eq!(report["passed"], true, "{report:#}");
    for part in ["device", "agreement", "resume", "speed"] {
        assert_eq!(report["parts"][part], "ok", "{part}: {report:#}");
    }
    assert_eq!(report["parts"]["reference"], "skipped");
    assert!(report["device"]["found_by_backend"]
        .as_str()
        .unwrap()
        .contains("llvmpipe"));

    let agreement = &report["agreement"];
    let tolerance = agreement["tolerance"].as_f64().unwrap();
    assert!(tolerance <= 2e-4, "f32 on both sides: {tolerance}");
    let runs = agreement["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "ELECTRA and BERT");
    for run in runs {
        assert_eq!(run["steps"], 30);
        assert!(run["first_step_beyond_tolerance"].is_null(), "{run}");
        let largest = run["largest_relative_difference"].as_f64().unwrap();
        assert!(largest > 0.0 && largest <= tolerance, "{run}");
    }

    let resume = &report["resume"];
    let killed_at = resume["killed_after_step"].as_u64().unwrap();
    assert!((20..30).contains(&killed_at), "{resume}");
    assert_eq!(resume["resumed_from_that_checkpoint"], true, "{resume}");
    assert_eq!(resume["bit_identical"], true, "{resume}");
    assert_eq!(resume["largest_absolute_difference"], 0.0, "{resume}");

    let speed = report["speed"]["runs"].as_array().unwrap();
    assert_eq!(speed.len(), 2);
    for run in speed {
        assert_eq!(
            (run["batch"].as_u64(), run["seq"].as_u64()),
            (Some(8), Some(64))
        );
        for figure in [
            "seconds_per_step",
            "tokens_per_second",
            "gflops_per_second",
            "warmup_seconds",
        ] {
            assert!(run[figure].as_f64().unwrap() > 0.0, "{figure}: {run}");
        }
        assert!(
            run["mfu"].is_null(),
            "no peak is known for a software device"
        );
    }
}

/// The tests' tiny fine-tuning pipeline (`common::FINETUNE_TINY`: tiny ELECTRA, 20 steps, then a
/// GLUE task) with ELECTRA pretrained on `wgpu` and its transformers export (`hf/`) fine-tuned
/// on both backends (same seed, same batches, same dropout). Kept short for lavapipe: WNLI (71
/// dev examples, one prediction batch), no test split, 64 training examples for 2 epochs.
fn finetune_pipeline() -> String {
    let edit = |text: String, old: &str, new: &str| {
        assert!(text.contains(old), "FINETUNE_TINY has no {old:?}");
        text.replacen(old, new, 1)
    };
    let pipeline = edit(
        FINETUNE_TINY.to_owned(),
        "      checkpoint_every: 1000\n",
        "      checkpoint_every: 1000\n      backend: wgpu\n",
    );
    let pipeline = edit(
        pipeline,
        "{task: rte,",
        "{task: wnli, splits: [train, dev],",
    );
    let pipeline = edit(pipeline, "seeds: [1, 2]", "seeds: [1]");
    let pipeline = edit(
        pipeline,
        "matrix: {seed: \"${seeds}\"}",
        "matrix: {seed: \"${seeds}\", backend: [flex, wgpu]}",
    );
    let pipeline = edit(pipeline, "@electra/model.safetensors", "@electra/hf");
    let pipeline = edit(pipeline, "      epochs: 3\n", "      epochs: 2\n");
    edit(
        pipeline,
        "      max_train_examples: 256\n",
        "      max_train_examples: 64\n      backend: ${backend}\n",
    )
}

/// The largest difference allowed between the backends' dev scores (a share of examples) and
/// their last epoch's mean training loss (relative): the same rounding argument as for
/// pretraining, over fewer steps (4).
const FINETUNE_TOLERANCE: f64 = 1e-4;

#[test]
fn the_wgpu_pretrained_export_fine_tunes_on_wgpu_as_on_flex() {
    let gpu = GpuWorkspace::new();
    let pipeline = gpu.ws.write("finetune.yaml", &finetune_pipeline());
    gpu.run_ok(&pipeline, &[]);
    let metrics = |backend: &str| -> serde_json::Value {
        let path = gpu.ws.output_path(
            &format!("finetune[seed=1,backend={backend}]"),
            "metrics.json",
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let (flex, wgpu) = (metrics("flex"), metrics("wgpu"));
    let score = |m: &serde_json::Value| m["score"].as_f64().unwrap();
    let loss = |m: &serde_json::Value| m["last_epoch_loss"].as_f64().unwrap();
    println!(
        "fine-tuning WNLI from the wgpu-pretrained hf/ export: dev score flex {} wgpu {}; final \
         training loss flex {} wgpu {} (tolerance {FINETUNE_TOLERANCE:e})",
        score(&flex),
        score(&wgpu),
        loss(&flex),
        loss(&wgpu)
    );
    assert!((score(&flex) - score(&wgpu)).abs() <= FINETUNE_TOLERANCE);
    assert!((loss(&flex) - loss(&wgpu)).abs() <= FINETUNE_TOLERANCE * loss(&flex));
}

#[test]
fn a_missing_vulkan_driver_is_an_error_naming_the_backend_not_a_panic() {
    let ws = workspace_on_shared_data();
    let pipeline = ws.write("finetune.yaml", &finetune_pipeline());
    let nowhere: PathBuf = ws.path().join("no-such-driver.json");
    let out = ws
        .command(&["run", pipeline.to_str().unwrap()])
        .env("VK_DRIVER_FILES", &nowhere)
        .env("VK_ICD_FILENAMES", &nowhere)
        .env("CUBECL_WGPU_DEFAULT_DEVICE", "Cpu")
        .env("XDG_RUNTIME_DIR", ws.path())
        .output()
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("backend `wgpu`"), "{all}");
    assert!(all.contains("mesa-vulkan-drivers"), "{all}");
    assert!(!all.contains("panicked"), "{all}");
}
