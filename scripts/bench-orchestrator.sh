#!/usr/bin/env bash
# Orchestrator overhead: electra-pipe next to Snakemake on the same DAG of N trivial jobs (each
# `echo i > out`), both with 2 jobs at once, from an empty cache / working directory, then
# rerun with everything up to date. Snakemake is installed into .bench-venv (ignored by git)
# on first use, as the transformers reference is.
#   scripts/bench-orchestrator.sh [N]      (default 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000}"

if [ ! -x .bench-venv/bin/python ]; then
    python3 -m venv .bench-venv
fi
if [ ! -x .bench-venv/bin/snakemake ]; then
    .bench-venv/bin/pip install --quiet snakemake
fi
cargo build -q --release
bin="$PWD/target/release/electra-pipe"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/ep/data" "$work/snake"
cells="$(seq -s, 0 $((n - 1)))"
cat > "$work/ep/bench.yaml" <<YAML
pipeline: bench
stages:
  cell:
    kind: command
    matrix: {i: [$cells]}
    params: {cmd: "echo \${i} > out.txt", outputs: [out.txt]}
YAML
cat > "$work/snake/Snakefile" <<SNAKE
N = $n
rule all:
    input: expand("out/{i}.txt", i=range(N))
rule cell:
    output: "out/{i}.txt"
    shell: "echo {wildcards.i} > {output}"
SNAKE

snakemake="$PWD/.bench-venv/bin/snakemake"
seconds() { local start end; start=$(date +%s.%N); "$@" > /dev/null 2>&1; end=$(date +%s.%N); echo "$end - $start" | bc; }
ep() { (cd "$work/ep" && "$bin" --cache cache --data data -q run bench.yaml -j 2); }
snake() { (cd "$work/snake" && "$snakemake" -j 2 --quiet all); }

ep_first=$(seconds ep); ep_again=$(seconds ep)
sn_first=$(seconds snake); sn_again=$(seconds snake)
[ "$(cat "$work"/snake/out/*.txt | wc -l)" = "$n" ] || { echo "snakemake did not make $n outputs" >&2; exit 1; }

echo "Orchestrators on $n trivial jobs, 2 at once ($(nproc) cores; Snakemake $("$snakemake" --version))"
echo
echo "| measurement | electra-pipe | Snakemake | Snakemake / electra-pipe |"
echo "|---|---:|---:|---:|"
row() { printf "| %s | %.2f s (%.2f ms/job) | %.2f s (%.2f ms/job) | %.1fx |\n" "$1" "$2" "$(echo "$2 * 1000 / $n" | bc -l)" "$3" "$(echo "$3 * 1000 / $n" | bc -l)" "$(echo "$3 / $2" | bc -l)"; }
row "first run" "$ep_first" "$sn_first"
row "rerun, all up to date" "$ep_again" "$sn_again"
