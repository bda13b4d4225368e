#!/usr/bin/env python3
"""Writes the Hugging Face transformers fixture electra-pipe's Rust tests match against.

A tiny *random* ELECTRA (embedding 16 ≠ hidden 32, so `embeddings_project` is exercised;
2 layers, 4 heads, a vocabulary of 100), saved with `save_pretrained` as a discriminator
(`ElectraForPreTraining`, in `discriminator/`) and a generator of the same body with a
masked-LM head (`ElectraForMaskedLM`, in `generator/`) and a sequence classifier of 3 labels
(`ElectraForSequenceClassification`, in `classifier/`), plus their outputs in dropout-free
eval mode on fixed inputs with padding and two segments (`outputs.safetensors`, inputs in
`inputs.json`):
  - `discriminator.hidden`  last hidden states [2, 12, 32]
  - `discriminator.logits`  replaced-token logits [2, 12]
  - `generator.hidden`      the generator's last hidden states [2, 12, 32]
  - `generator.logits`      masked-LM logits at every position [2, 12, 100]
  - `classifier.logits`     the classifier's logits [2, 3]

Run with the benchmark virtualenv (scripts/bench-pretrain.sh creates it):
    .bench-venv/bin/python scripts/make-hf-fixture.py stages/tests/fixtures/transformers
The Rust tests never run Python: the fixture is committed.
"""

import copy
import json
import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from transformers import (
    ElectraConfig,
    ElectraForMaskedLM,
    ElectraForPreTraining,
    ElectraForSequenceClassification,
)


def spread(model) -> None:
    """Random init is small (std 0.02): spread the weights so every term matters to the
    outputs."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "LayerNorm" in name:
                param.copy_(1.0 + 0.1 * torch.randn_like(param) if name.endswith("weight")
                            else 0.1 * torch.randn_like(param))
            else:
                param.copy_(0.2 * torch.randn_like(param))


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "stages/tests/fixtures/transformers")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(20201)
    config = ElectraConfig(
        vocab_size=100,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
        type_vocab_size=2,
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        layer_norm_eps=1e-12,
        pad_token_id=0,
    )
    discriminator = ElectraForPreTraining(config).eval()
    generator = ElectraForMaskedLM(config).eval()
    for model in (discriminator, generator):
        spread(model)
    # transformers ties the generator's output matrix to the word embeddings.
    generator.tie_weights()
    discriminator.save_pretrained(out / "discriminator", safe_serialization=True)
    generator.save_pretrained(out / "generator", safe_serialization=True)
    # Made after the other two, so adding it left their files unchanged.
    classifier_config = copy.deepcopy(config)
    classifier_config.num_labels = 3
    classifier = ElectraForSequenceClassification(classifier_config).eval()
    spread(classifier)
    classifier.save_pretrained(out / "classifier", safe_serialization=True)

    # [CLS]=2 A [SEP]=3 B [SEP], the second row padded (id 0) after 8 tokens.
    input_ids = [
        [2, 17, 45, 99, 3, 8, 61, 23, 5, 77, 12, 3],
        [2, 33, 71, 3, 54, 9, 40, 3, 0, 0, 0, 0],
    ]
    token_type_ids = [
        [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1],
        [0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0],
    ]
    attention_mask = [[1] * 12, [1] * 8 + [0] * 4]
    inputs = {
        "input_ids": torch.tensor(input_ids),
        "token_type_ids": torch.tensor(token_type_ids),
        "attention_mask": torch.tensor(attention_mask),
    }
    with torch.no_grad():
        d = discriminator(**inputs, output_hidden_states=True)
        g = generator(**inputs, output_hidden_states=True)
        c = classifier(**inputs)
    outputs = {
        "discriminator.hidden": d.hidden_states[-1].contiguous(),
        "discriminator.logits": d.logits.contiguous(),
        "generator.hidden": g.hidden_states[-1].contiguous(),
        "generator.logits": g.logits.contiguous(),
        "classifier.logits": c.logits.contiguous(),
    }
    save_file(outputs, str(out / "outputs.safetensors"))
    (out / "inputs.json").write_text(
        json.dumps(
            {
                "input_ids": input_ids,
                "token_type_ids": token_type_ids,
                "attention_mask": attention_mask,
                "made_with": {
                    "transformers": transformers.__version__,
                    "torch": torch.__version__,
                },
            },
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
