//! The reproduction pipelines: `glue_tiny.yaml` runs end to end on the real data (CI runs it on
//! every submission), killed mid-pretraining and resumed, and its report is checked against its
//! own results; a second run is all cached; `ablations_tiny.yaml` runs every Table 5 objective
//! and ablation option into one report; `glue_small.yaml`, `electra_small_paper.yaml`,
//! `electra_base_paper.yaml` and `electra_table5_paper.yaml` plan.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{checkpointed_step, run_and_sigkill_when, text, workspace_on_shared_data};

fn pipeline(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pipelines")
        .join(name)
}

/// The fields of one CSV line (quoted fields may hold commas and doubled quotes).
fn csv_fields(line: &str) -> Vec<String> {
    let (mut fields, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// The median of a few numbers (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[test]
fn glue_tiny_resumes_after_a_kill_and_its_report_agrees_with_its_results() {
    let ws = workspace_on_shared_data();
    let file = pipeline("glue_tiny.yaml");
    // Killed (SIGKILL, nothing saved on the way out) once a pretraining stage has checkpointed.
    run_and_sigkill_when(&ws, &file, &[], || checkpointed_step(&ws).is_some());
    let killed_at = checkpointed_step(&ws).unwrap();
    let finished_before: Vec<String> = ws
        .journal()
        .iter()
        .filter(|e| e["event"] == "stage" && e["state"] == "done")
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        finished_before.iter().any(|name| name == "examples"),
        "{finished_before:?}"
    );

    // The rerun runs only what had not finished, and the checkpointed stage resumes.
    let ran = ws.run_ok(&file, &[]);
    // Two pretraining runs of each objective; every run fine-tuned (and ELECTRA's halfway
    // snapshots) on 5 tasks × 2 seeds; the tagged corpus, a probe of every final model and
    // halfway snapshot, and two random-init probes.
    let all = 1 + 1 + 1 + 4 + 5 + 40 + 20 + 10 + 1 + 1 + 4 + 2 + 2;
    assert_eq!(ran.len() + finished_before.len(), all, "{ran:?}");
    assert!(finished_before.iter().all(|name| !ran.contains(name)));
    let pretraining = [
        "electra[pretrain_seed=1]",
        "electra[pretrain_seed=2]",
        "bert[pretrain_seed=1]",
        "bert[pretrain_seed=2]",
    ];
    let resumed = pretraining.iter().any(|stage| {
        text(&ws.run(&["show", stage])).contains(&format!("resumed_from = {killed_at}"))
    });
    assert!(
        resumed,
        "no pretraining stage resumed from step {killed_at}"
    );

    let csv = std::fs::read_to_string(ws.output_path("report", "results.csv")).unwrap();
    let mut lines = csv.lines();
    let header = csv_fields(lines.next().unwrap());
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<Vec<String>> = lines.map(csv_fields).collect();
    assert_eq!(
        rows.len(),
        70,
        "3 pretrained rows × 2 pretraining runs × 5 tasks × 2 seeds, random init × 5 × 2"
    );
    let mut scores: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut runs: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for row in &rows {
        let score: f64 = row[column("score")].parse().unwrap();
        assert!((-1.0..=1.0).contains(&score), "{row:?}");
        runs.entry(row[column("model")].to_owned())
            .or_default()
            .insert(row[column("pretraining_seed")].to_owned());
        scores
            .entry((
                row[column("model")].to_owned(),
                row[column("task")].to_owned(),
            ))
            .or_default()
            .push(score * 100.0);
    }
    let models: Vec<&str> = scores.keys().map(|(m, _)| m.as_str()).collect();
    for model in [
        "ELECTRA-Tiny",
        "ELECTRA-Tiny (50.0% of training)",
        "BERT-Tiny",
        "no pretraining (tiny, random init)",
    ] {
        assert!(models.contains(&model), "{model} in {models:?}");
    }
    // Each pretrained row pools both pretraining runs; random init has none.
    let pooled = |seeds: &[&str]| seeds.iter().map(|s| s.to_string()).collect();
    assert_eq!(runs["ELECTRA-Tiny"], pooled(&["1", "2"]));
    assert_eq!(runs["BERT-Tiny"], pooled(&["1", "2"]));
    assert_eq!(runs["no pretraining (tiny, random init)"], pooled(&[""]));

    let report = std::fs::read_to_string(ws.output_path("report", "report.md")).unwrap();
    for published in ["ELECTRA-Small (published) †", "BERT-Small (published) †"] {
        assert!(report.contains(published), "{report}");
    }
    // Each table cell is the median over seeds, with their min–max.
    let electra = report
        .lines()
        .find(|l| l.starts_with("| ELECTRA-Tiny |"))
        .unwrap();
    let sst2 = &scores[&("ELECTRA-Tiny".to_owned(), "sst2".to_owned())];
    let expected = format!(
        "{:.1} ({:.1}–{:.1})",
        median(sst2.clone()),
        sst2.iter().copied().fold(f64::MAX, f64::min),
        sst2.iter().copied().fold(f64::MIN, f64::max)
    );
    assert!(electra.contains(&expected), "{expected} in {electra}");
    // The GLUE average is the mean of the five tasks' medians.
    let glue: f64 = ["cola", "sst2", "mrpc", "stsb", "rte"]
        .iter()
        .map(|t| median(scores[&("ELECTRA-Tiny".to_owned(), t.to_string())].clone()))
        .sum::<f64>()
        / 5.0;
    assert!(
        electra.ends_with(&format!("**{glue:.1}** |")),
        "{glue:.1} in {electra}"
    );
    assert!(report.contains("## Reading"), "{report}");
    assert!(
        report.contains("ELECTRA-Tiny pools 2 pretraining runs (pretraining seeds 1, 2)")
            && report.contains("hierarchical bootstrap")
            && report.contains("| ELECTRA-Tiny, pretraining seed 2 |"),
        "{report}"
    );
    assert!(
        report.contains("rerun") || report.contains("Rerun"),
        "{report}"
    );

    // The probe table pools each model's two pretraining runs: its accuracy is their mean at
    // the row's best layer, as each run's probe recorded it.
    assert!(
        report.contains("## What pretraining learned")
            && report.contains("| majority tag per word (training split) |")
            && report.contains("ELECTRA-Tiny − BERT-Tiny, best layers"),
        "{report}"
    );
    let probe_row = report
        .lines()
        .find(|l| l.starts_with("| ELECTRA-Tiny | 2 |"))
        .unwrap_or_else(|| panic!("no probe row for ELECTRA-Tiny in {report}"));
    let cells: Vec<&str> = probe_row.split(" | ").collect();
    let best: usize = cells[2].parse().unwrap();
    let accuracy: f64 = (1..=2)
        .map(|seed| {
            let dir = ws.output_path(
                &format!("probe[model=electra,pretrain_seed={seed}]"),
                "probe",
            );
            let summary: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap())
                    .unwrap();
            let layer = summary["layers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["layer"] == best)
                .unwrap();
            layer["accuracy"]["all"].as_f64().unwrap()
        })
        .sum::<f64>()
        / 2.0;
    assert_eq!(cells[3], format!("{:.1}", 100.0 * accuracy), "{probe_row}");

    let html = std::fs::read_to_string(ws.output_path("report", "report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 4, "four plots embedded");
    assert!(!html.contains("src=\"http"), "self-contained");
    let plots = ws.output_path("report", "plots");
    for plot in [
        "glue_vs_flops.svg",
        "pretraining_curves.svg",
        "task_scores.svg",
        "probe_vs_flops.svg",
    ] {
        let svg = std::fs::read_to_string(plots.join(plot)).unwrap();
        assert!(svg.contains("<svg") && svg.contains("<text"), "{plot}");
    }

    assert!(
        ws.run_ok(&file, &[]).is_empty(),
        "a second run is all cached"
    );
}

#[test]
fn the_small_and_paper_pipelines_plan() {
    let ws = workspace_on_shared_data();
    let out = ws.run(&["plan", pipeline("glue_small.yaml").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(plan.contains("108 stages"), "{plan}");
    assert!(
        plan.contains("will run  bert[pretrain_seed=2]"),
        "two pretraining runs per objective: {plan}"
    );
    assert!(plan.contains(" 0 blocked"), "{plan}");

    // The paper's pipeline is for a GPU build; planned here on the CPU backend, its tasks
    // without data here (MNLI, QQP, QNLI's train split) are blocked with the reason.
    let paper = pipeline("electra_small_paper.yaml");
    let out = ws.run(&["plan", paper.to_str().unwrap(), "--backend", "flex"]);
    assert!(out.status.success(), "{}", text(&out));
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(plan.contains("158 stages"), "{plan}");
    assert!(plan.contains("blocked   glue[task=mnli]"), "{plan}");
    assert!(
        plan.contains("will run  finetune[model=bert,task=cola,seed=3]"),
        "{plan}"
    );

    // One GPU for an hour: ELECTRA-Small and the compute-matched BERT-Small, both and a
    // random-init baseline fine-tuned on the five GLUE tasks with train splits over 3 seeds.
    // Its default backend is cuda: in a build without it, the plan says how to get it.
    let hour = pipeline("glue_gpu_hour.yaml");
    let out = ws.run(&["plan", hour.to_str().unwrap(), "--backend", "flex"]);
    assert!(out.status.success(), "{}", text(&out));
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(plan.contains("56 stages"), "{plan}");
    assert!(plan.contains(" 0 blocked"), "{plan}");
    for instance in ["electra", "bert", "scratch[task=rte,seed=3]", "report"] {
        assert!(
            plan.contains(&format!("will run  {instance} ")),
            "{instance}: {plan}"
        );
    }
    let out = ws.run(&["plan", hour.to_str().unwrap()]);
    if cfg!(feature = "cuda") {
        assert!(out.status.success(), "{}", text(&out));
    } else {
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains("`--features cuda`"), "{}", text(&out));
    }

    // ELECTRA-Base against BERT-Base on 8 GPUs each, fine-tuned on GLUE over 3 seeds.
    let base = pipeline("electra_base_paper.yaml");
    let out = ws.run(&["plan", base.to_str().unwrap(), "--backend", "flex"]);
    assert!(out.status.success(), "{}", text(&out));
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(plan.contains("62 stages"), "{plan}");
    assert!(plan.contains("will run  bert "), "{plan}");

    // Table 5 at Base size: five objectives, each fine-tuned on GLUE over 3 seeds.
    let table5 = pipeline("electra_table5_paper.yaml");
    let out = ws.run(&["plan", table5.to_str().unwrap(), "--backend", "flex"]);
    assert!(out.status.success(), "{}", text(&out));
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(plan.contains("137 stages"), "{plan}");
    assert!(
        plan.contains("will run  finetune_objectives[objective=all_tokens_mlm,task=rte,seed=1]"),
        "{plan}"
    );
}

#[test]
fn ablations_tiny_runs_every_objective_and_option_into_one_report() {
    let ws = workspace_on_shared_data();
    let file = pipeline("ablations_tiny.yaml");
    let ran = ws.run_ok(&file, &[]);
    assert_eq!(ran.len(), 32, "{ran:?}");

    let report = std::fs::read_to_string(ws.output_path("report", "report.md")).unwrap();
    // Table 5's objectives, each against the BERT of its compute, beside the paper's rows.
    for row in [
        "| ELECTRA |",
        "| ELECTRA 15% |",
        "| Replace MLM |",
        "| All-Tokens MLM |",
        "| ELECTRA (generator.hidden=32) |",
        "| BERT, ",
        "| ELECTRA 15% (Table 5) (published) † |",
        "| BERT (Table 5) (published) † |",
    ] {
        assert!(report.contains(row), "{row} in {report}");
    }
    for pair in [
        "ELECTRA 15% − BERT",
        "Replace MLM − BERT",
        "All-Tokens MLM − BERT",
    ] {
        assert!(report.contains(pair), "{pair} in {report}");
    }
    // Generator sizes, weight sharing and the training algorithm tell the ELECTRA rows apart.
    for knob in [
        "generator.kind=unigram",
        "weight_sharing=none",
        "weight_sharing=all",
        "training=two_stage",
    ] {
        assert!(report.contains(knob), "{knob} in {report}");
    }
    let plot = ws
        .output_path("report", "plots")
        .join("glue_vs_generator_size.svg");
    let svg = std::fs::read_to_string(plot).unwrap();
    assert!(
        svg.contains("discriminator tiny"),
        "one line per discriminator size"
    );
    assert!(
        report.contains("plots/glue_vs_generator_size.svg"),
        "{report}"
    );

    assert!(
        ws.run_ok(&file, &[]).is_empty(),
        "a second run is all cached"
    );
}
