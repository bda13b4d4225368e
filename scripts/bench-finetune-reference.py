"""The PyTorch reference for `cargo bench -p electra-stages --bench finetune`.

Hugging Face `transformers` ElectraForSequenceClassification in eager PyTorch on CPU, with the
preset's configuration, trained on the features the Rust bench wrote (a random subset of SST-2's
train.jsonl as large as the bench's, batch 32 padded to each batch's longest member), AdamW (eps 1e-6),
gradient clipping at 1.0. Prints the same table: seconds per step and examples per second over
one epoch.

    python bench-finetune-reference.py --features target/bench-finetune/sst2/out/features \
        --examples 640 --threads 2 --presets tiny,small
"""

import argparse
import json
import random
import time

import torch
from transformers import ElectraConfig, ElectraForSequenceClassification

PRESETS = {  # layers, hidden, heads, intermediate, embedding (stages/src/pretrain/config.rs)
    "tiny": (2, 64, 2, 256, 64),
    "mini": (4, 128, 2, 512, 128),
    "small": (12, 256, 4, 1024, 128),
    "base": (12, 768, 12, 3072, 768),
}


def config(preset, vocab):
    layers, hidden, heads, inter, emb = PRESETS[preset]
    return ElectraConfig(
        vocab_size=vocab,
        embedding_size=emb,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=inter,
        max_position_embeddings=512,
        num_labels=2,
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--features", required=True)
    parser.add_argument("--examples", type=int, default=640)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", default="tiny,small")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    info = json.load(open(f"{args.features}/task.json"))
    rows = [json.loads(line) for line in open(f"{args.features}/train.jsonl")]
    random.Random(1).shuffle(rows)
    rows = rows[: args.examples]
    print(f"reference: transformers + PyTorch {torch.__version__} eager, {args.threads} threads")
    print("| preset | s/step | examples/s |")
    print("|---|---:|---:|")
    for preset in args.presets.split(","):
        model = ElectraForSequenceClassification(config(preset, info["vocab_size"]))
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, eps=1e-6, weight_decay=0.0)
        started = time.perf_counter()
        for i in range(0, len(rows), args.batch):
            chunk = rows[i : i + args.batch]
            longest = max(len(r["input_ids"]) for r in chunk)
            ids = torch.zeros(len(chunk), longest, dtype=torch.long)
            segments = torch.zeros_like(ids)
            attention = torch.zeros_like(ids)
            for row, r in enumerate(chunk):
                n = len(r["input_ids"])
                ids[row, :n] = torch.tensor(r["input_ids"])
                segments[row, :n] = torch.tensor(r["segment_ids"])
                attention[row, :n] = 1
            labels = torch.tensor([r["label"] for r in chunk])
            out = model(
                input_ids=ids, token_type_ids=segments, attention_mask=attention, labels=labels
            )
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        rate = len(rows) / (time.perf_counter() - started)
        print(f"| {preset} | {args.batch / rate:.3f} | {rate:.0f} |")


if __name__ == "__main__":
    main()
