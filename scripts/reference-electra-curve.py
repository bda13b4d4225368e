"""The Hugging Face `transformers` ELECTRA (tiny: 2 layers, h 64, generator h 16, shared
embeddings, loss = MLM + 50 BCE, AdamW lr 5e-4 with 300 warm-up steps then linear decay, clip
1.0, batch 16 x 128 tokens of the Wikipedia slice with the BERT vocabulary), printing the
discriminator's accuracy, the all-original baseline, precision and recall every 50 steps: the
reference curve to hold electra-pipe's `metrics.jsonl` against (pipelines/finetune-tiny.yaml's
`electra` stage has the same model, batch and schedule).

    .bench-venv/bin/python scripts/reference-electra-curve.py [STEPS] [DATA_DIR]
"""
import json, random, sys
import torch
from transformers import BertTokenizerFast, ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

torch.manual_seed(0); random.seed(0)
torch.set_num_threads(2)
data = sys.argv[2] if len(sys.argv) > 2 else "../shared/data"
tok = BertTokenizerFast(f"{data}/vocab/bert-base-uncased/vocab.txt", do_lower_case=True)
docs = []
for line in open(f"{data}/corpus/wikipedia-en-2015/AA/wiki_00", encoding="utf-8"):
    line = line.strip()
    if line and not line.startswith("<doc") and not line.startswith("</doc"):
        docs.append(line)
    if len(docs) > 6000: break
ids = []
for d in docs:
    ids.extend(tok(d, add_special_tokens=False)["input_ids"])
S = 128
seqs = [[101] + ids[i:i + S - 2] + [102] for i in range(0, len(ids) - S, S - 2)]
print("sequences", len(seqs), flush=True)
def cfg(h, heads, inter):
    return ElectraConfig(vocab_size=30522, embedding_size=64, hidden_size=h, num_hidden_layers=2,
                         num_attention_heads=heads, intermediate_size=inter, max_position_embeddings=512)
disc = ElectraForPreTraining(cfg(64, 2, 256))
gen = ElectraForMaskedLM(cfg(16, 1, 64))
disc.electra.embeddings = gen.electra.embeddings
params = list({id(p): p for p in [*gen.parameters(), *disc.parameters()]}.values())
opt = torch.optim.AdamW(params, lr=5e-4, eps=1e-6, weight_decay=0.01)
steps, warm, B = int(sys.argv[1]) if len(sys.argv) > 1 else 600, 300, 16
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: t / warm if t < warm else max(0.0, 1 - t / steps))
g = torch.Generator().manual_seed(0)
order = list(range(len(seqs)))
random.shuffle(order)
for step in range(steps):
    batch = torch.tensor([seqs[order[(step * B + k) % len(seqs)]] for k in range(B)])
    n = int(0.15 * (S - 2))
    scores = torch.rand(B, S - 2, generator=g)
    pos = scores.topk(n, dim=1).indices + 1
    flags = torch.zeros(B, S, dtype=torch.bool); flags.scatter_(1, pos, True)
    masked = batch.clone()
    keep = torch.rand(B, S, generator=g) < 0.15
    masked[flags & ~keep] = 103
    labels = torch.full_like(batch, -100); labels[flags] = batch[flags]
    out = gen(input_ids=masked, labels=labels)
    with torch.no_grad():
        probs = torch.softmax(out.logits[flags], dim=-1)
        sampled = torch.multinomial(probs, 1, generator=g).squeeze(1)
    corrupted = batch.clone(); corrupted[flags] = sampled
    replaced = (corrupted != batch).float()
    d = disc(input_ids=corrupted, labels=replaced)
    loss = out.loss + 50.0 * d.loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step(); sched.step(); opt.zero_grad(set_to_none=True)
    if step % 50 == 0 or step == steps - 1:
        with torch.no_grad():
            pred = (d.logits > 0).float()
            acc = (pred == replaced).float().mean().item()
            base = 1 - replaced.mean().item()
            tp = (pred * replaced).sum().item()
            P = tp / max(pred.sum().item(), 1); R = tp / max(replaced.sum().item(), 1)
            mlm_acc = (out.logits[flags].argmax(-1) == batch[flags]).float().mean().item()
        print(json.dumps({"step": step + 1, "mlm": round(out.loss.item(), 3), "bce": round(d.loss.item(), 4),
                          "acc": round(acc, 4), "base": round(base, 4), "P": round(P, 3), "R": round(R, 3),
                          "mlm_acc": round(mlm_acc, 3)}), flush=True)
