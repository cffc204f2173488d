"""Where a served prediction of one image spends its time, per operator, in PyTorch (eager and
through torch.compile, its profiler; and the prediction under PyTorch's settings that pick other
kernels) and in ONNX Runtime (its own profiling), and in Keras how much
of `predict_on_batch` is the compiled forward pass (the same forward, jitted by JAX, timed alone),
on one CPU thread: a probe beside `cargo xtask serve`, not a row. It writes one JSON file (each operator's median microseconds per prediction, the
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
# Keras's large batch, where its per-call work is set against the compiled forward pass.
LARGE = 256


def pytorch(args, compiled=False):
    import torch
    from torch.profiler import ProfilerActivity, profile
    torch.set_num_threads(1)
    kind, tensors, _ = serve.read_model(args.load)
    module = serve.module_of(kind, tensors, 1)
    if compiled:
        module = torch.compile(module)
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


def median_us(call, runs=RUNS):
    """The median microseconds of `runs` calls of `call`, after WARMUP (or `runs`, if fewer)."""
    for _ in range(min(WARMUP, runs)):
        call()
    taken = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        taken.append(time.perf_counter() - start)
    return statistics.median(taken) * 1e6


def pytorch_settings(args):
    """The eager prediction's median under PyTorch's own settings that change which kernels run:
    as served, in channels-last memory format, and with oneDNN (mkldnn) turned off."""
    import torch
    torch.set_num_threads(1)
    kind, tensors, _ = serve.read_model(args.load)
    module = serve.module_of(kind, tensors, 1)
    x = torch.zeros(1, 1, 28, 28)
    out = {}
    with torch.inference_mode():
        out["as_served_us"] = median_us(lambda: module(x).numpy())
        last = torch.channels_last
        module = module.to(memory_format=last)
        out["channels_last_us"] = median_us(lambda: module(x.contiguous(memory_format=last)).numpy())
        module = module.to(memory_format=torch.contiguous_format)
        torch.backends.mkldnn.enabled = False
        out["mkldnn_off_us"] = median_us(lambda: module(x).numpy())
        torch.backends.mkldnn.enabled = True
    return out


def keras_row(args):
    """Keras's `predict_on_batch` (the row) against the same forward pass jitted by JAX and called
    alone (`model.stateless_call` under `jax.jit`), from a NumPy image to NumPy logits and on a
    device array: what is Keras's per call and what is XLA's."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax
    import keras
    import keras_models
    kind, tensors, _ = serve.read_model(args.load)
    model = keras_models.lenet2() if kind == "lenet2" else keras_models.lenet3()
    keras_models.set_shared_weights(model, tensors)
    x = np.zeros((1, 28, 28, 1), np.float32)
    big = np.zeros((LARGE, 28, 28, 1), np.float32)
    prediction = median_us(lambda: np.asarray(model.predict_on_batch(x)))
    large = median_us(lambda: np.asarray(model.predict_on_batch(big)), 50)
    # The variables' values as they are after the row's calls (Keras's predict function hands them
    # over to new buffers).
    trainable = [v.value for v in model.trainable_variables]
    others = [v.value for v in model.non_trainable_variables]
    forward = jax.jit(lambda t, o, images: model.stateless_call(t, o, images, training=False)[0])
    on_device = jax.device_put(x)
    return {"version": f"keras {keras.__version__}, jax {jax.__version__}",
            "prediction_us": prediction,
            f"prediction_batch{LARGE}_us": large,
            f"jitted_forward_batch{LARGE}_from_numpy_us": median_us(
                lambda: np.asarray(forward(trainable, others, big)), 50),
            "jitted_forward_from_numpy_us": median_us(lambda: np.asarray(forward(trainable, others, x))),
            "jitted_forward_on_device_us": median_us(
                lambda: forward(trainable, others, on_device).block_until_ready())}


def onnxruntime(args):
    import onnxruntime as ort
    path = serve.onnx_path(args.load)
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
    # One core for every row: XLA sizes its threads from the cores it may use.
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:1])
    out = {"model_file": os.path.basename(args.load), "threads": 1, "warmup": WARMUP, "runs": RUNS,
           "pytorch": pytorch(args), "pytorch_settings": pytorch_settings(args),
           "pytorch-compile": pytorch(args, compiled=True),
           "onnxruntime": onnxruntime(args), "keras": keras_row(args),
           "environment": report.environment(sys.argv)}
    report.write_report(args.out, out)
    for row in ("pytorch", "pytorch-compile", "onnxruntime"):
        print(f"{row} ({out[row]['version']}):")
        for op, us in list(out[row]["ops_us"].items())[:8]:
            print(f"  {us:8.2f} us  {op}")
    print("pytorch's settings: " + ", ".join(f"{k} {v:.1f}" for k, v in out["pytorch_settings"].items()))
    print(f"keras ({out['keras']['version']}): " + ", ".join(
        f"{k} {v:.1f}" for k, v in out["keras"].items() if k.endswith("_us")))


if __name__ == "__main__":
    main()
