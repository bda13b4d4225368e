"""The PyTorch reference for `cargo bench -p electra-stages --bench pretrain`.

Hugging Face `transformers` in eager PyTorch on CPU, with the configuration electra-pipe uses:
ElectraForPreTraining (discriminator) plus an ElectraForMaskedLM generator of 1/4 width sharing
its embeddings, loss = MLM + 50 * BCE, AdamW (eps 1e-6, weight decay 0.01), gradient clipping at
1.0; and the BERT objective as an ElectraForMaskedLM of the discriminator's size. Prints the same
table as the Rust bench: seconds per step and tokens per second (batch x sequence / step time).

    python bench-reference.py --batch 32 --seq 128 --steps 3 --threads 2 --presets tiny,small

On a GPU (what scripts/gpu-check.sh runs), timing each step to its end on the device after
`--warmup` untimed steps, and writing the rows as JSON too:

    python bench-reference.py --device cuda --batch 128 --seq 128 --warmup 5 --steps 20 \
        --presets small --json reference.json
"""

import argparse
import json
import time

import torch
from transformers import ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

PRESETS = {  # layers, hidden, heads, intermediate, embedding (stages/src/pretrain/config.rs)
    "tiny": (2, 64, 2, 256, 64),
    "mini": (4, 128, 2, 512, 128),
    "small": (12, 256, 4, 1024, 128),
    "base": (12, 768, 12, 3072, 768),
}
VOCAB = 30522
MASK_ID, CLS_ID, SEP_ID = 103, 101, 102


def config(preset, scale=1.0):
    layers, hidden, heads, inter, emb = PRESETS[preset]
    return ElectraConfig(
        vocab_size=VOCAB,
        embedding_size=emb,
        hidden_size=max(1, round(hidden * scale)),
        num_hidden_layers=layers,
        num_attention_heads=max(1, round(heads * scale)),
        intermediate_size=max(1, round(inter * scale)),
        max_position_embeddings=512,
    )


def batch(b, s, generator):
    ids = torch.randint(1000, VOCAB, (b, s), generator=generator)
    ids[:, 0], ids[:, -1] = CLS_ID, SEP_ID
    n = int((0.15 + 0.005) * s)
    scores = torch.rand(b, s - 2, generator=generator)
    positions = scores.topk(n, dim=1).indices + 1
    masked_flags = torch.zeros(b, s, dtype=torch.bool)
    masked_flags.scatter_(1, positions, True)
    masked = ids.clone()
    masked[masked_flags] = MASK_ID
    labels = torch.full_like(ids, -100)
    labels[masked_flags] = ids[masked_flags]
    return ids, masked, labels, masked_flags


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", default="tiny,small")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    sampler = torch.Generator(device=device).manual_seed(0)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{args.threads} threads"
    print(f"reference: transformers + PyTorch {torch.__version__} eager, {where}")
    rows = []
    print("| preset | objective | s/step | tokens/s |")
    print("|---|---|---:|---:|")
    for preset in args.presets.split(","):
        for objective in ("electra", "bert"):
            if objective == "electra":
                disc = ElectraForPreTraining(config(preset)).to(device)
                gen = ElectraForMaskedLM(config(preset, 0.25)).to(device)
                disc.electra.embeddings = gen.electra.embeddings  # shared embeddings
                params = list({id(p): p for p in [*gen.parameters(), *disc.parameters()]}.values())
            else:
                gen = ElectraForMaskedLM(config(preset)).to(device)
                disc = None
                params = list(gen.parameters())
            optimizer = torch.optim.AdamW(params, lr=1e-4, eps=1e-6, weight_decay=0.01)
            timed = 0.0
            for step in range(args.warmup + args.steps):
                ids, masked, labels, flags = (t.to(device) for t in batch(args.batch, args.seq, g))
                sync()
                started = time.perf_counter()
                out = gen(input_ids=masked, labels=labels)
                loss = out.loss
                if disc is not None:
                    with torch.no_grad():
                        probs = torch.softmax(out.logits[flags], dim=-1)
                        sampled = torch.multinomial(probs, 1, generator=sampler).squeeze(1)
                    corrupted = ids.clone()
                    corrupted[flags] = sampled
                    replaced = (corrupted != ids).float()
                    loss = loss + 50.0 * disc(input_ids=corrupted, labels=replaced).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                sync()
                if step >= args.warmup:
                    timed += time.perf_counter() - started
            per_step = timed / args.steps
            tokens = args.batch * args.seq / per_step
            print(f"| {preset} | {objective} | {per_step:.3f} | {tokens:.0f} |")
            rows.append({"preset": preset, "objective": objective, "batch": args.batch, "seq": args.seq,
                         "seconds_per_step": per_step, "tokens_per_second": tokens})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "device": where, "rows": rows}, f, indent=2)

if __name__ == "__main__":
    main()
