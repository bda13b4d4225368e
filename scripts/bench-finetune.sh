#!/usr/bin/env bash
# Fine-tuning throughput on SST-2: the electra-pipe `finetune` stage (burn, flex backend) next to
# Hugging Face `ElectraForSequenceClassification` in eager PyTorch on the same features, batch
# and threads. The reference lives in its own virtualenv (.bench-venv, ignored by git).
#   scripts/bench-finetune.sh [EXAMPLES] [PRESETS]
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-640}" presets="${2:-tiny,small}" threads="${BENCH_CPUS:-2}"

if [ ! -x .bench-venv/bin/python ]; then
    python3 -m venv .bench-venv
fi
if ! .bench-venv/bin/python -c 'import torch, transformers' 2>/dev/null; then
    .bench-venv/bin/pip install --quiet torch transformers
fi
echo "== electra-pipe"
BENCH_EXAMPLES="$examples" BENCH_PRESETS="$presets" BENCH_CPUS="$threads" \
    cargo bench -q -p electra-stages --bench finetune
echo
echo "== reference"
.bench-venv/bin/python scripts/bench-finetune-reference.py \
    --features target/bench-finetune/sst2/out/features --examples "$examples" \
    --threads "$threads" --presets "$presets"
