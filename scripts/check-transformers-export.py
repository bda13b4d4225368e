#!/usr/bin/env python3
"""Checks that transformers loads a checkpoint directory electra-pipe exported (a pretrain
stage's `hf/` or `hf-generator/`) as what its config.json says, with nothing missing or
unexpected, and that its fast and slow tokenizers agree.

    .bench-venv/bin/python scripts/check-transformers-export.py DIR [DIR ...]

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


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for directory in sys.argv[1:]:
        check(Path(directory))


if __name__ == "__main__":
    main()
