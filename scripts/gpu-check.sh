#!/usr/bin/env bash
# The GPU check: one command that runs electra-pipe's GPU path end to end on one device and
# writes what it measured. Usage:
#
#   scripts/gpu-check.sh BACKEND OUT_DIR        # BACKEND: cuda (NVIDIA) or wgpu
#
# From a bundle made by scripts/gpu-bundle.sh (the release binary, this script and its data; no
# Rust, no network, no corpus needed), on a machine with one NVIDIA GPU:
#
#   tar xf electra-pipe-gpu-bundle.tar && cd electra-pipe-gpu-bundle && ./gpu-check.sh cuda /tmp/out
#
# It runs, each part under its own time limit so that the JSON is always written:
#   0. the device: nvidia-smi (where there is one) and what the backend found (`electra-pipe devices`);
#   1. agreement: tiny ELECTRA and BERT, 30 steps on `flex` and on BACKEND; per-step losses,
#      the tolerance, the first step beyond it;
#   2. resume: part 1's ELECTRA on BACKEND run again in another cache, killed with SIGKILL after
#      its step-20 checkpoint and run again, against part 1's uninterrupted run with the same
#      kernel tuning: bit-identical weights or the largest difference;
#   3. speed: ELECTRA-Small and BERT-Small steps at batch 128 x 128 (f32; TF32 where the
#      backend's autotuning picks it), warm-up and steady state, tokens/s, GFLOP/s and MFU
#      against the GPU's peak (table in gpu-check/report.py);
#   4. reference: where python3 has torch and transformers (and BACKEND is cuda), transformers'
#      ELECTRA-Small and BERT-Small steps at the same shape on the same GPU, for a ratio.
# and writes OUT_DIR/gpu-check.log and OUT_DIR/gpu-check.json (two files). Exit status 0 when
# every part ran and passed, 1 otherwise.
#
# Environment (all optional):
#   ELECTRA_PIPE_BIN        the binary (default: the bundle's bin/electra-pipe, else
#                           target/release/electra-pipe)
#   GPU_CHECK_DATA          the data folder holding gpu-check/{tiny,small} (default: the
#                           bundle's data/; scripts/gpu-bundle.sh --data-only DIR makes one)
#   GPU_CHECK_SIZE          tiny: time the tiny model at batch 8 x 64 instead of Small at
#                           128 x 128 (what CI does on the software Vulkan device)
#   GPU_CHECK_PART_SECONDS  each part's time limit (default 110 s; the reference's is 60 s),
#                           so that the whole check ends within 8 minutes on a GPU
#   GPU_CHECK_WORK          where the runs' caches go (default: a new temporary folder)
set -uo pipefail

if [ $# -ne 2 ]; then
    sed -n '2,12p' "$0" >&2
    exit 2
fi
backend=$1
out=$(mkdir -p "$2" && cd "$2" && pwd) || { echo "gpu-check: cannot create $2" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
check_dir=$here/gpu-check
[ -d "$check_dir" ] || { echo "gpu-check: $check_dir is missing" >&2; exit 2; }

if [ -n "${ELECTRA_PIPE_BIN:-}" ]; then
    bin=$ELECTRA_PIPE_BIN
elif [ -x "$here/bin/electra-pipe" ]; then
    bin=$here/bin/electra-pipe
else
    bin=$here/../target/release/electra-pipe
fi
data=${GPU_CHECK_DATA:-$here/data}
size=${GPU_CHECK_SIZE:-small}
limit=${GPU_CHECK_PART_SECONDS:-110}
reference_limit=60
work=${GPU_CHECK_WORK:-$(mktemp -d /tmp/gpu-check.XXXXXX)}
mkdir -p "$work"
log=$out/gpu-check.log
: >"$log"
exec > >(tee -a "$log") 2>&1
tee_pid=$!
finish() { # every line in the log before the script exits
    exec >&- 2>&-
    wait "$tee_pid" 2>/dev/null
    exit "$1"
}

say() { printf '\n== %s\n' "$*"; }
fail=0
status_of() { # the part's status from its exit code (and its time limit, default $limit)
    case $1 in 0) echo ok ;; skipped) echo "skipped (part 1 failed)" ;; 124 | 137) echo "timed out after ${2:-$limit} s" ;; *) echo "failed (exit $1)" ;; esac
}

[ -x "$bin" ] || { echo "gpu-check: no binary at $bin (set ELECTRA_PIPE_BIN)"; exit 2; }
[ -d "$data/gpu-check/tiny" ] || { echo "gpu-check: no check data at $data/gpu-check (set GPU_CHECK_DATA; scripts/gpu-bundle.sh --data-only DIR makes it)"; exit 2; }
case $size in
    small) speed_sets=() ;;
    tiny) speed_sets=(--set size=tiny --set data_size=tiny --set batch=8 --set steps=12) ;;
    *) echo "gpu-check: GPU_CHECK_SIZE must be small or tiny, found $size"; exit 2 ;;
esac

say "0. device ($(date -u +%Y-%m-%dT%H:%M:%SZ), binary $bin)"
"$bin" --version
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$work/gpu.csv"
    nvidia-smi | head -n 4
fi
"$bin" devices "$backend" | tee "$work/device.txt"
device_rc=${PIPESTATUS[0]}
[ "$device_rc" -eq 0 ] || fail=1

say "1. agreement: tiny ELECTRA and BERT, 30 steps, flex against $backend"
timeout -s KILL "$limit" "$bin" --data "$data" --cache "$work/agreement" run "$check_dir/agreement.yaml" \
    --set "backends=[flex,$backend]" -j 1
agreement_rc=$?
echo "agreement: $(status_of $agreement_rc)"

say "2. resume: part 1's tiny ELECTRA on $backend again, SIGKILL after its step-20 checkpoint, run again"
resume_part() {
    # Another cache, which starts with part 1's kernel tuning (as a resumed run reads its own
    # cache's): the killed run and the resumed one then run the kernels part 1 ran.
    mkdir -p "$work/killed" && cp -r "$work/agreement/tuning" "$work/killed/tuning" || return 1
    local run=("$bin" --data "$data" --cache "$work/killed" run "$check_dir/agreement.yaml"
        --set "objectives=[electra]" --set "backends=[$backend]")
    # The binary itself in the background (not a function or subshell), so that SIGKILL reaches it.
    "${run[@]}" >"$work/killed.out" 2>&1 &
    local pid=$! step=0
    while kill -0 "$pid" 2>/dev/null; do
        step=$(cat "$work"/killed/checkpoints/*/latest/state.json 2>/dev/null \
            | sed -n 's/.*"step": *\([0-9]*\).*/\1/p' | sort -n | tail -n 1)
        [ "${step:-0}" -ge 20 ] && break
        sleep 0.01
    done
    if ! kill -KILL "$pid" 2>/dev/null; then
        echo "the run ended before it could be killed (a fast device: nothing to resume)"
        return 1
    fi
    wait "$pid" 2>/dev/null
    echo "killed after the checkpoint of step $step" | tee "$work/killed_at.txt"
    "${run[@]}" || return 1
    "$bin" --cache "$work/killed" show "pretrain[objective=electra,backend=$backend]" >"$work/resumed.txt"
}
if [ "$agreement_rc" -eq 0 ]; then
    export -f resume_part
    export bin data check_dir work backend
    timeout -s KILL "$limit" bash -c resume_part
    resume_rc=$?
else
    resume_rc=skipped
fi
echo "resume: $(status_of $resume_rc)"

say "3. speed: $size model steps on $backend"
# Starting from part 1's kernel tuning: at tiny size (CI) that spares tuning the same shapes
# again; the Small model's shapes are tuned in its own warm-up.
mkdir -p "$work/speed" && cp -r "$work/agreement/tuning" "$work/speed/tuning" 2>/dev/null
timeout -s KILL "$limit" "$bin" --data "$data" --cache "$work/speed" run "$check_dir/speed.yaml" \
    --set "backend=$backend" "${speed_sets[@]}" -j 1
speed_rc=$?
echo "speed: $(status_of $speed_rc)"

reference_rc=skipped
if [ "$backend" = cuda ] && [ "$size" = small ] && python3 -c 'import torch, transformers' 2>/dev/null; then
    say "4. reference: transformers' ELECTRA-Small and BERT-Small steps on the same GPU"
    timeout -s KILL "$reference_limit" python3 "$here/bench-reference.py" --device cuda --batch 128 \
        --seq 128 --warmup 5 --steps 20 --presets small --json "$work/reference.json"
    reference_rc=$?
    echo "reference: $(status_of $reference_rc "$reference_limit")"
else
    say "4. reference: skipped (needs BACKEND cuda at size small and python3 with torch + transformers)"
fi

say "report"
python3 "$check_dir/report.py" --bin "$bin" --work "$work" --backend "$backend" --size "$size" \
    --parts "device=$device_rc" "agreement=$agreement_rc" "resume=$resume_rc" \
    "speed=$speed_rc" "reference=$reference_rc" --json "$out/gpu-check.json" || fail=1
echo "work folder (caches, stage logs): $work"
finish $fail
