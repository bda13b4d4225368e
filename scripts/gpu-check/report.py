"""The GPU check's report (scripts/gpu-check.sh runs it last): reads the runs the script made,
prints the figures and writes them to one JSON file. Standard library only, so that it runs
with any python3 (the GPU machine's, CI's).

    python3 report.py --bin BIN --work WORK --backend cuda --size small \
        --parts device=0 agreement=0 resume=0 speed=0 reference=skipped --json OUT.json

Exit status 1 when a part did not run or did not pass.
"""

import argparse
import datetime
import json
import os
import statistics
import struct
import subprocess
import sys

FORMAT = "electra-pipe gpu-check v1"

# The largest relative difference of a logged loss between `flex` and the backend, at any of
# the 30 steps. f32 products and sums rounded in another order differ by ~1e-7 relative per
# operation, which training amplifies (measured on wgpu/lavapipe, 2026-12-07: 5.2e-5 for
# ELECTRA's discriminator loss at step 24, 6.9e-6 for BERT's; 4x headroom); a wrong
# kernel, mask or gradient moves a loss by 1e-2 or more at its first step. On CUDA, burn's
# autotuning may pick TF32 tensor-core products (10-bit mantissa, unit roundoff 4.9e-4),
# so its tolerance is wider; both are reported with the measured figure.
TOLERANCE = {"wgpu": 2e-4, "cuda": 2e-2}

# Dense peaks (no sparsity) of the GPUs the check expects, TFLOP/s, from NVIDIA's datasheets;
# matched against the start of nvidia-smi's name.
PEAKS = {
    "NVIDIA H100 PCIe": {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0},
    "NVIDIA H100 NVL": {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5},
    "NVIDIA H100": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4},  # SXM5 (80GB HBM3)
    "NVIDIA H200": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4},
}


def show_output(binary, cache, instance, output):
    """The path of `instance`'s output `output`, from `electra-pipe show`."""
    text = subprocess.run(
        [binary, "--cache", cache, "show", instance],
        capture_output=True, text=True, check=True,
    ).stdout
    prefix = f"output    {output} ("
    for line in text.splitlines():
        if line.strip().startswith(prefix):
            return line.rsplit(": ", 1)[1]
    raise RuntimeError(f"{instance} has no output {output}:\n{text}")


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_safetensors(path):
    """A safetensors file's f32 tensors by name."""
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    body = data[8 + length:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        tensors[name] = struct.unpack(f"<{(end - start) // 4}f", body[start:end])
    return tensors


def agreement(args, tolerance):
    cache = os.path.join(args.work, "agreement")
    runs = []
    for objective, names in (("electra", ("loss", "mlm_loss", "bce_loss")), ("bert", ("loss", "mlm_loss"))):
        steps = {}
        for backend in ("flex", args.backend):
            path = show_output(args.bin, cache, f"pretrain[objective={objective},backend={backend}]", "metrics.jsonl")
            steps[backend] = read_jsonl(path)
        worst, first_beyond = (0.0, 0, ""), None
        for ours, theirs in zip(steps["flex"], steps[args.backend]):
            for name in names:
                a, b = ours[name], theirs[name]
                relative = abs(a - b) / max(abs(a), 1e-12)
                if relative > worst[0]:
                    worst = (relative, ours["step"], name)
                if relative > tolerance and first_beyond is None:
                    first_beyond = {"step": ours["step"], "loss": name, "flex": a, args.backend: b}
        runs.append({
            "objective": objective,
            "steps": len(steps["flex"]),
            "largest_relative_difference": worst[0],
            "at_step": worst[1],
            "of_loss": worst[2],
            "first_step_beyond_tolerance": first_beyond,
            "within_tolerance": first_beyond is None and len(steps["flex"]) == len(steps[args.backend]),
        })
    return {"tolerance": tolerance, "runs": runs, "passed": all(r["within_tolerance"] for r in runs)}


def resume(args):
    instance = f"pretrain[objective=electra,backend={args.backend}]"
    straight = show_output(args.bin, os.path.join(args.work, "agreement"), instance, "model.safetensors")
    resumed = show_output(args.bin, os.path.join(args.work, "killed"), instance, "model.safetensors")
    with open(os.path.join(args.work, "killed_at.txt")) as f:
        killed_at = int(f.read().split()[-1])
    with open(os.path.join(args.work, "resumed.txt")) as f:
        resumed_from = f"resumed_from = {killed_at}" in f.read()
    a, b = read_safetensors(straight), read_safetensors(resumed)
    largest = max(abs(x - y) for name in a for x, y in zip(a[name], b[name]))
    with open(straight, "rb") as f1, open(resumed, "rb") as f2:
        identical = f1.read() == f2.read()
    return {
        "steps": 30,
        "killed_after_step": killed_at,
        "resumed_from_that_checkpoint": resumed_from,
        "bit_identical": identical,
        "largest_absolute_difference": largest,
        "passed": identical and resumed_from and 0 < killed_at < 30,
    }


def gpu(args):
    """nvidia-smi's name, driver and memory, if the script read them."""
    path = os.path.join(args.work, "gpu.csv")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        name, driver, memory = [x.strip() for x in f.readline().split(",")]
    return {"name": name, "driver": driver, "memory": memory}


def peaks_of(name):
    for prefix, peaks in PEAKS.items():
        if name and name.startswith(prefix):
            return {"gpu": prefix, "tflops": peaks, "source": "NVIDIA datasheet, dense"}
    return None


def speed(args, peaks):
    cache = os.path.join(args.work, "speed")
    runs = []
    for objective in ("electra", "bert"):
        instance = f"pretrain[objective={objective}]"
        steps = read_jsonl(show_output(args.bin, cache, instance, "metrics.jsonl"))
        with open(show_output(args.bin, cache, instance, "config.json")) as f:
            config = json.load(f)
        warm = 5 if len(steps) >= 20 else 3
        seconds = [s["seconds"] for s in steps]
        per_step = statistics.median(seconds[warm:])
        flops = config["flops_per_step"]
        tokens = config["batch_size"] * config["max_seq_len"]
        gflops = flops / per_step / 1e9
        runs.append({
            "objective": objective,
            "model": config.get("recipe", {}).get("model", {}).get("preset")
            or "{layers} layers x {hidden}".format(**config["encoder"]),
            "parameters": config["parameters"],
            "batch": config["batch_size"],
            "seq": config["max_seq_len"],
            "steps": len(steps),
            "warmup_steps": warm,
            "first_step_seconds": seconds[0],
            "warmup_seconds": sum(seconds[:warm]),
            "seconds_per_step": per_step,
            "tokens_per_second": tokens / per_step,
            "flops_per_step": flops,
            "gflops_per_second": gflops,
            "mfu": None if peaks is None else {
                dtype: gflops / (peak * 1e3) for dtype, peak in peaks["tflops"].items() if dtype != "bf16"
            },
            "hardware": config.get("hardware"),
        })
    return {"runs": runs, "peak": peaks, "dtype": "f32 (TF32 where autotuning picks tensor-core products)"}


def reference(args, ours):
    path = os.path.join(args.work, "reference.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        rows = json.load(f)["rows"]
    for row in rows:
        match = next((r for r in ours["runs"] if r["objective"] == row["objective"]), None) if ours else None
        row["ours_over_reference_speed"] = (row["seconds_per_step"] / match["seconds_per_step"]) if match else None
    return {"rows": rows, "what": "transformers' ElectraForPreTraining + ElectraForMaskedLM, eager PyTorch, f32 (TF32 off)"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--size", required=True)
    parser.add_argument("--parts", nargs="+", required=True, help="NAME=EXIT_CODE or NAME=skipped")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    parts = dict(p.split("=", 1) for p in args.parts)
    status = {name: ("ok" if code == "0" else "skipped" if code == "skipped" else f"failed (exit {code})")
              for name, code in parts.items()}
    device_path = os.path.join(args.work, "device.txt")
    the_gpu = gpu(args)
    report = {
        "format": FORMAT,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "backend": args.backend,
        "size": args.size,
        "device": {
            "gpu": the_gpu,
            "found_by_backend": open(device_path).read().strip() if os.path.exists(device_path) else None,
        },
        "parts": status,
    }
    tolerance = TOLERANCE.get(args.backend, TOLERANCE["wgpu"])
    for name, build in (
        ("agreement", lambda: agreement(args, tolerance)),
        ("resume", lambda: resume(args)),
        ("speed", lambda: speed(args, peaks_of(the_gpu and the_gpu["name"]))),
    ):
        try:
            report[name] = build() if status.get(name) == "ok" else None
        except Exception as error:  # a part that ran but left no readable result
            report[name] = None
            status[name] = f"unreadable: {error}"
    report["reference"] = reference(args, report["speed"])
    passed = all(status[p] == "ok" for p in ("device", "agreement", "resume", "speed")) and all(
        report[p] and report[p]["passed"] for p in ("agreement", "resume")
    )
    report["passed"] = passed
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")

    print(f"backend {args.backend}, device: {report['device']['found_by_backend']}")
    print("parts: " + ", ".join(f"{k} {v}" for k, v in status.items()))
    if report.get("agreement"):
        a = report["agreement"]
        for r in a["runs"]:
            beyond = r["first_step_beyond_tolerance"]
            print(f"agreement {r['objective']}: {r['steps']} steps, largest relative loss difference "
                  f"{r['largest_relative_difference']:.2e} ({r['of_loss']} at step {r['at_step']}), "
                  f"tolerance {a['tolerance']:.0e}, first step beyond: {beyond['step'] if beyond else 'none'}")
    if report.get("resume"):
        r = report["resume"]
        print(f"resume: killed after step {r['killed_after_step']} of {r['steps']}; final weights "
              f"{'bit-identical' if r['bit_identical'] else 'differ'} (largest difference "
              f"{r['largest_absolute_difference']:.2e})")
    if report.get("speed"):
        print("| model | objective | batch x seq | warm-up (s, steps) | s/step | tokens/s | GFLOP/s | MFU fp32 | MFU tf32 |")
        print("|---|---|---|---|---:|---:|---:|---:|---:|")
        for r in report["speed"]["runs"]:
            mfu = r["mfu"] or {}
            fmt = lambda x: f"{100 * x:.1f}%" if x is not None else "—"
            print(f"| {r['model']} | {r['objective']} | {r['batch']} x {r['seq']} | "
                  f"{r['warmup_seconds']:.1f} ({r['warmup_steps']}) | {r['seconds_per_step']:.4f} | "
                  f"{r['tokens_per_second']:.0f} | {r['gflops_per_second']:.1f} | {fmt(mfu.get('fp32'))} | "
                  f"{fmt(mfu.get('tf32'))} |")
    if report.get("reference"):
        for row in report["reference"]["rows"]:
            ratio = row["ours_over_reference_speed"]
            print(f"reference {row['objective']}: transformers {row['seconds_per_step']:.4f} s/step; "
                  f"electra-pipe is {ratio:.2f}x its speed" if ratio else "")
    print(f"{'PASSED' if passed else 'FAILED'}; written {args.json}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
