#!/usr/bin/env bash
# Makes the GPU check's bundle: everything scripts/gpu-check.sh needs on a GPU machine that has
# no Rust, no network and no corpus. Usage, from the repository root, with the real data at
# ../shared/data (or ELECTRA_PIPE_DATA):
#
#   scripts/gpu-bundle.sh [BUNDLE_DIR]            # default: gpu-bundle/ (ignored by git)
#   scripts/gpu-bundle.sh --data-only DATA_DIR    # only the check's data (CI uses this)
#
# The bundle holds gpu-check.sh and gpu-check/ (its pipelines and report), bench-reference.py
# (transformers' step, for the ratio), bin/electra-pipe (release, `--features cuda`; no GPU is
# needed to build it) and data/gpu-check/{tiny,small} (pre-built pretraining shards and their
# tokenizers). Its size is printed; it must stay within 48 MiB, so the binary is stored
# xz-compressed and gpu-check.sh is called through a wrapper that unpacks it first.
#
# Environment: CUDARC_CUDA_VERSION (default 13000: CUDA 13.0, the toolkit and driver of the
# machines the check is meant for; cudarc otherwise asks `nvcc` and, without one, assumes the
# newest CUDA it knows), ELECTRA_PIPE_BIN (for --data-only: the binary that prepares the data;
# default target/release/electra-pipe, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
limit_mib=48

data=${ELECTRA_PIPE_DATA:-../shared/data}
[ -f "$data/README.md" ] || { echo "gpu-bundle: the real data is expected at $data" >&2; exit 2; }

# The check's data: the stages of scripts/gpu-check/data.yaml, their `shards` copied out of the
# cache into DIR/gpu-check/{tiny,small}.
make_data() {
    local bin=$1 dest=$2 cache
    cache=$(mktemp -d /tmp/gpu-bundle-cache.XXXXXX)
    "$bin" --quiet --cache "$cache" --data "$data" run scripts/gpu-check/data.yaml
    mkdir -p "$dest/gpu-check"
    for size in tiny small; do
        local shards
        shards=$("$bin" --cache "$cache" show "$size" | sed -n 's/^ *output    shards ([^)]*): //p')
        [ -d "$shards" ] || { echo "gpu-bundle: no shards for $size in the cache" >&2; exit 1; }
        rm -rf "$dest/gpu-check/$size"
        cp -rL "$shards" "$dest/gpu-check/$size"
    done
    rm -rf "$cache"
}

if [ "${1:-}" = "--data-only" ]; then
    [ $# -eq 2 ] || { echo "usage: scripts/gpu-bundle.sh --data-only DATA_DIR" >&2; exit 2; }
    bin=${ELECTRA_PIPE_BIN:-target/release/electra-pipe}
    [ -x "$bin" ] || cargo build --release
    make_data "$bin" "$2"
    echo "gpu-bundle: the check's data is in $2/gpu-check ($(du -sh "$2/gpu-check" | cut -f1))"
    exit 0
fi

bundle=${1:-gpu-bundle}
export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000}
echo "== cargo build --release --features cuda (CUDARC_CUDA_VERSION=$CUDARC_CUDA_VERSION)"
cargo build --release --features cuda
rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/data"
cp scripts/gpu-check.sh scripts/bench-reference.py "$bundle/"
cp -r scripts/gpu-check "$bundle/gpu-check"
make_data target/release/electra-pipe "$bundle/data"
xz -T0 -6 -c target/release/electra-pipe >"$bundle/bin/electra-pipe.xz"
cat >"$bundle/run-check.sh" <<'EOF'
#!/usr/bin/env bash
# Unpacks the binary (once), then runs the GPU check: ./run-check.sh cuda OUT_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ -x "$here/bin/electra-pipe" ] || { xz -dc "$here/bin/electra-pipe.xz" >"$here/bin/electra-pipe" && chmod +x "$here/bin/electra-pipe"; }
exec "$here/gpu-check.sh" "$@"
EOF
chmod +x "$bundle/run-check.sh" "$bundle/gpu-check.sh"
size=$(du -sb "$bundle" | cut -f1)
echo "gpu-bundle: $bundle is $((size / 1024 / 1024)) MiB ($size bytes): binary $(du -h "$bundle/bin/electra-pipe.xz" | cut -f1) compressed, data $(du -sh "$bundle/data" | cut -f1)"
if [ "$size" -gt $((limit_mib * 1024 * 1024)) ]; then
    echo "gpu-bundle: over the ${limit_mib} MiB limit" >&2
    exit 1
fi
echo "run it on the GPU machine: $bundle/run-check.sh cuda OUT_DIR"
