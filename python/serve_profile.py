"""Where a served prediction of one image spends its time, per operator, in PyTorch (eager, its
profiler) and in ONNX Runtime (its own profiling), on one CPU thread: a probe beside `cargo xtask
serve`, not a row. It writes one JSON file (each operator's median microseconds per prediction, the
whole prediction's median, and how it was measured) and prints a table.

    python3 python/serve_profile.py --load MODEL.safetensors --out results/MACHINE/probes/serve-profile-lenet2.json

ONNX Runtime's profiling times each node to the microsecond and adds its own cost to the whole
run; its node times say where the time goes, its total is not the row's latency (`cargo xtask
serve` measures that with profiling off).
"""

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import lenet_report as report
import serve

WARMUP = 200
RUNS = 1000


def pytorch(args):
    import torch
    from torch.profiler import ProfilerActivity, profile
    torch.set_num_threads(1)
    kind, tensors, _ = serve.read_model(args.load)
    module = serve.module_of(kind, tensors, 1)
    x = np.zeros((1, 1, 28, 28), np.float32)
    with torch.inference_mode():
        for _ in range(WARMUP):
            module(torch.from_numpy(x)).numpy()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for _ in range(RUNS):
                module(torch.from_numpy(x)).numpy()
            total = (time.perf_counter() - start) / RUNS * 1e6
    ops = {e.key: e.self_cpu_time_total / RUNS for e in prof.key_averages()}
    return {"version": f"torch {torch.__version__}", "prediction_us": total,
            "ops_us": dict(sorted(ops.items(), key=lambda kv: -kv[1]))}


def onnxruntime(args):
    import onnxruntime as ort
    path = os.path.splitext(args.load)[0] + ".onnx"
    if not os.path.isfile(path):
        subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "serve.py"), "--export",
                        "--load", args.load, "--onnx", path], check=True, stdout=subprocess.DEVNULL)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(os.path.dirname(os.path.abspath(args.out)), ".ort-profile")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    x = np.zeros((1, 1, 28, 28), np.float32)
    for _ in range(WARMUP + RUNS):
        session.run(None, {"images": x})
    trace = session.end_profiling()
    with open(trace) as f:
        events = json.load(f)
    os.remove(trace)
    nodes = collections.defaultdict(list)
    runs = []
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            nodes[f"{e['args'].get('op_name')} ({e['name'][:-len('_kernel_time')]})"].append(e["dur"])
        elif e.get("name") == "model_run":
            runs.append(e["dur"])
    ops = {k: statistics.median(v[WARMUP:]) for k, v in nodes.items()}
    return {"version": f"onnxruntime {ort.__version__}", "profiled_run_us": statistics.median(runs[WARMUP:]),
            "ops_us": dict(sorted(ops.items(), key=lambda kv: -kv[1]))}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--load", required=True, help="the trained model (safetensors in the shared layout)")
    p.add_argument("--out", required=True, help="the JSON file to write")
    args = p.parse_args()
    out = {"model_file": os.path.basename(args.load), "threads": 1, "warmup": WARMUP, "runs": RUNS,
           "pytorch": pytorch(args), "onnxruntime": onnxruntime(args),
           "environment": report.environment(sys.argv)}
    report.write_report(args.out, out)
    for row in ("pytorch", "onnxruntime"):
        print(f"{row} ({out[row]['version']}):")
        for op, us in list(out[row]["ops_us"].items())[:8]:
            print(f"  {us:8.2f} us  {op}")


if __name__ == "__main__":
    main()
