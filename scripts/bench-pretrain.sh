#!/usr/bin/env bash
# Pretraining throughput: electra-pipe (burn, flex backend) next to the Hugging Face
# `transformers` reference in eager PyTorch, same configurations, batch and threads.
# The reference is installed into its own virtualenv (.bench-venv, ignored by git) on first use.
#   scripts/bench-pretrain.sh [BATCH] [STEPS] [PRESETS]
set -euo pipefail
cd "$(dirname "$0")/.."
batch="${1:-32}" steps="${2:-3}" presets="${3:-tiny,small}" threads="${BENCH_CPUS:-2}"

if [ ! -x .bench-venv/bin/python ]; then
    python3 -m venv .bench-venv
fi
if ! .bench-venv/bin/python -c 'import torch, transformers' 2>/dev/null; then
    .bench-venv/bin/pip install --quiet torch transformers
fi
echo "== electra-pipe"
BENCH_BATCH="$batch" BENCH_STEPS="$steps" BENCH_PRESETS="$presets" BENCH_CPUS="$threads" \
    cargo bench -q -p electra-stages --bench pretrain
echo
echo "== reference"
.bench-venv/bin/python scripts/bench-reference.py --batch "$batch" --steps "$steps" \
    --threads "$threads" --presets "$presets"
