//! `finetune` through the CLI: a pretrain → fine-tune sweep over seeds runs once and is then
//! cached, a fine-tuning stage killed with SIGKILL resumes from its last epoch checkpoint to
//! identical results, and an encoder of another vocabulary fails before any training.

mod common;

use common::{
    checkpointed_step, run_and_sigkill_when, text, workspace_on_shared_data, Workspace,
    FINETUNE_TINY as PIPELINE,
};

#[test]
fn a_finetuning_sweep_runs_once_then_is_cached() {
    let ws = workspace_on_shared_data();
    let pipeline = ws.write("ft.yaml", PIPELINE);
    assert_eq!(
        ws.run_ok(&pipeline, &[]),
        [
            "electra",
            "examples",
            "finetune[seed=1]",
            "finetune[seed=2]",
            "rte",
            "vocab",
            "wiki"
        ]
    );
    for seed in [1, 2] {
        let stage = format!("finetune[seed={seed}]");
        let metrics: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(ws.output_path(&stage, "metrics.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(metrics["task"], "rte");
        assert_eq!(metrics["seed"], seed);
        assert_eq!(metrics["steps"], 24);
        let submission = ws.output_path(&stage, "submission").join("RTE.tsv");
        assert_eq!(
            std::fs::read_to_string(submission).unwrap().lines().count(),
            3001
        );
    }
    assert!(ws.run_ok(&pipeline, &[]).is_empty(), "a rerun does nothing");
}

#[test]
fn a_finetune_stage_killed_with_sigkill_resumes_to_identical_results() {
    let straight = workspace_on_shared_data();
    let pipeline = straight.write("ft.yaml", PIPELINE);
    straight.run_ok(&pipeline, &["--set", "seeds=[1]"]);
    let outputs = |ws: &Workspace| -> Vec<String> {
        ["predictions", "submission"]
            .iter()
            .flat_map(|dir| {
                let dir = ws.output_path("finetune[seed=1]", dir);
                let mut files: Vec<_> = std::fs::read_dir(&dir)
                    .unwrap()
                    .flatten()
                    .map(|e| e.path())
                    .collect();
                files.sort();
                files
            })
            .chain([ws.output_path("finetune[seed=1]", "train_log.jsonl")])
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect()
    };
    let expected = outputs(&straight);

    let ws = workspace_on_shared_data();
    let pipeline = ws.write("ft.yaml", PIPELINE);
    // Killed mid-epoch, with only the epoch checkpoint saved.
    run_and_sigkill_when(&ws, &pipeline, &["--set", "seeds=[1]"], || {
        checkpointed_step(&ws).is_some()
    });
    let killed_at = checkpointed_step(&ws).unwrap();
    assert!(killed_at.is_multiple_of(8) && killed_at < 24, "{killed_at}");

    assert_eq!(
        ws.run_ok(&pipeline, &["--set", "seeds=[1]"]),
        ["finetune[seed=1]"]
    );
    let show = text(&ws.run(&["show", "finetune[seed=1]"]));
    assert!(
        show.contains(&format!("resumed_from = {killed_at}")),
        "{show}"
    );
    assert!(
        outputs(&ws) == expected,
        "the resumed run's predictions differ from the uninterrupted run's"
    );
}

#[test]
fn an_encoder_of_another_vocabulary_fails_before_training() {
    let ws = workspace_on_shared_data();
    let other_vocab = PIPELINE.replace(
        r#"params: {load: "${data}/vocab/bert-base-uncased/vocab.txt"}"#,
        r#"params: {train: {corpus: "@wiki/corpus.txt", vocab_size: 1000}}"#,
    );
    // Same pretraining vocabulary as before for the encoder, the BERT one for the task.
    let other_vocab = other_vocab.replace(
        "  rte:\n    kind: glue_task\n    params: {task: rte, glue_dir: \"${data}/glue\", tokenizer: \"@vocab/tokenizer.json\"}",
        "  bert_vocab:\n    kind: tokenizer\n    params: {load: \"${data}/vocab/bert-base-uncased/vocab.txt\"}\n  rte:\n    kind: glue_task\n    params: {task: rte, glue_dir: \"${data}/glue\", tokenizer: \"@bert_vocab/tokenizer.json\"}",
    );
    assert_ne!(other_vocab, PIPELINE);
    let pipeline = ws.write("bad.yaml", &other_vocab);
    let out = ws.run(&["run", pipeline.to_str().unwrap(), "--set", "seeds=[1]"]);
    assert!(!out.status.success());
    let all = text(&out);
    assert!(
        all.contains(
            "the encoder was pretrained with a vocabulary of 1000 tokens, but the task's features"
        ),
        "{all}"
    );
    assert!(checkpointed_step(&ws).is_none(), "nothing trained");
}
