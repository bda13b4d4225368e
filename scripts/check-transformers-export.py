#!/usr/bin/env python3
"""Checks that transformers loads a checkpoint directory electra-pipe exported (a pretrain
stage's `hf/` or `hf-generator/`, a finetune stage's `hf/`) as what its config.json says, with
nothing missing or unexpected, and that its fast and slow tokenizers agree.

    .bench-venv/bin/python scripts/check-transformers-export.py DIR [DIR ...]
    .bench-venv/bin/python scripts/check-transformers-export.py FINETUNE_OUT/hf \
        --dev GLUE_OUT/features/dev.jsonl --predictions FINETUNE_OUT/predictions/dev.tsv

With `--dev` and `--predictions` (one fine-tuned classification model), transformers' model
also predicts every dev example (the features' token ids, in batches padded with the
attention mask) and must give the label the finetune stage predicted for each (STS-B: the
score, to 2e-5).

Exits non-zero on the first problem. Needs torch and transformers (scripts/bench-pretrain.sh
installs both into .bench-venv).
"""

import json
import sys
from pathlib import Path

import torch
import transformers
from transformers import AutoTokenizer

SENTENCE = ("The discriminator learns from every input token.", "Not only the masked ones.")


def check(directory: Path) -> None:
    config = json.loads((directory / "config.json").read_text())
    class_name = config["architectures"][0]
    model_class = getattr(transformers, class_name)
    model, info = model_class.from_pretrained(directory, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        sys.exit(f"{directory}: loading as {class_name} reported {problems}")
    fast = AutoTokenizer.from_pretrained(directory)
    slow = AutoTokenizer.from_pretrained(directory, use_fast=False)
    encoded = fast(*SENTENCE, return_tensors="pt")
    if encoded["input_ids"].tolist() != slow(*SENTENCE, return_tensors="pt")["input_ids"].tolist():
        sys.exit(f"{directory}: the fast and slow tokenizers disagree")
    model.eval()
    with torch.no_grad():
        logits = model(**encoded).logits
    if not torch.isfinite(logits).all():
        sys.exit(f"{directory}: non-finite outputs")
    tokens = fast.convert_ids_to_tokens(encoded["input_ids"][0])
    print(f"{directory}: {class_name}, {sum(p.numel() for p in model.parameters())} parameters, "
          f"nothing missing or unexpected; {len(tokens)} tokens {' '.join(tokens)}; "
          f"logits {tuple(logits.shape)}")


def check_predictions(directory: Path, dev: Path, predictions: Path) -> None:
    model = transformers.AutoModelForSequenceClassification.from_pretrained(directory).eval()
    features = [json.loads(line) for line in dev.read_text().splitlines() if line]
    expected = [line.split("\t")[-1] for line in predictions.read_text().splitlines()[1:]]
    regression = model.config.problem_type == "regression"
    predicted = []
    for start in range(0, len(features), 64):
        batch = features[start:start + 64]
        longest = max(len(f["input_ids"]) for f in batch)
        pad = lambda row: row + [0] * (longest - len(row))
        inputs = {
            "input_ids": torch.tensor([pad(f["input_ids"]) for f in batch]),
            "token_type_ids": torch.tensor([pad(f["segment_ids"]) for f in batch]),
            "attention_mask": torch.tensor([pad([1] * len(f["input_ids"])) for f in batch]),
        }
        with torch.no_grad():
            logits = model(**inputs).logits
        if regression:
            predicted += logits[:, 0].tolist()
        else:
            predicted += [model.config.id2label[c] for c in logits.argmax(-1).tolist()]
    if regression:
        # The stage writes scores with 6 decimals.
        differ = sum(abs(p - float(e)) > 2e-5 for p, e in zip(predicted, expected))
    else:
        differ = sum(p != e for p, e in zip(predicted, expected))
    if len(predicted) != len(expected) or differ:
        sys.exit(f"{directory}: {differ} of {len(expected)} dev predictions differ from the stage's")
    worst = max(abs(p - float(e)) for p, e in zip(predicted, expected)) if regression else 0.0
    print(f"{directory}: transformers predicts all {len(expected)} dev examples as the stage did"
          + (f" (largest score difference {worst:.1e})" if regression else ""))


def main() -> None:
    args = sys.argv[1:]
    options = {}
    for flag in ("--dev", "--predictions"):
        if flag in args:
            at = args.index(flag)
            options[flag] = Path(args[at + 1])
            del args[at:at + 2]
    if not args:
        sys.exit(__doc__)
    for directory in args:
        check(Path(directory))
    if options:
        if len(options) != 2 or len(args) != 1:
            sys.exit("--dev and --predictions go together, with one fine-tuned model's directory")
        check_predictions(Path(args[0]), options["--dev"], options["--predictions"])


if __name__ == "__main__":
    main()
