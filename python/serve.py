"""Serving a trained model with PyTorch, Keras and ONNX Runtime, as `lenet serve` measures the Rust
rows, into the same JSON (reports::serve::ServeReport): four rows from one model file in the shared
layout.

- pytorch: the model of reference.py in eager mode, under torch.inference_mode();
- pytorch-compile: the same module through torch.compile (inductor), compiled on its first calls;
- onnxruntime: the same module exported by torch.onnx.export (the torch.export-based exporter,
  PyTorch's default) to an .onnx file beside the model file (once; again when the model file is
  newer), served by an ONNX Runtime InferenceSession. A process of this row that finds the file
  imports onnxruntime and numpy only, as a server of the exported model would;
- keras: the Keras model of keras_models.py (Keras 3 on JAX unless KERAS_BACKEND names another
  backend) with the file's weights, answering through `model.predict_on_batch`, the compiled
  predict function Keras's documentation points to for inputs that fit one batch (`model.predict`
  builds a data pipeline each call, `model(x)` runs op by op).

Each prediction goes from a NumPy array on the host to the logits back as a NumPy array, as a
server's would. Cold starts are timed from outside (`--once` prints one answer and ends). torch and
keras are imported only by the rows and the export that use them.
"""

import argparse
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

import lenet_common as common
import lenet_report as report

SCHEMA = 1
LOGIT_IMAGES = 16
PIXELS = 28 * 28
ROWS = ("pytorch", "pytorch-compile", "onnxruntime", "keras")
# Rows that serve on the CPU only (no CUDA execution provider is set up for ONNX Runtime).
CPU_ONLY = ("onnxruntime",)


def batch_sizes(text):
    """A comma-separated list of whole numbers of at least 1."""
    try:
        sizes = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a list of whole numbers") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"a batch holds at least one image: '{text}'")
    return sizes


def options():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--row", choices=ROWS, default="pytorch")
    p.add_argument("--load", help="the trained model (safetensors in the shared layout)")
    p.add_argument("--list-rows", action="store_true",
                   help="print the rows, one per line, and end (with --device cuda: those that serve on CUDA)")
    p.add_argument("--onnx", help="onnxruntime: the exported model (default: the model file's path with .onnx)")
    p.add_argument("--export", action="store_true",
                   help="onnxruntime: export the model file to --onnx unless that file is newer, and end "
                        "(what the row does, in a process of its own, when the exported file is missing or "
                        "older)")
    p.add_argument("--ort-library", action="store_true",
                   help="print the path of the ONNX Runtime library the onnxruntime package ships (what "
                        "the Rust row ort loads) and end")
    p.add_argument("--data-dir", help="folder with the four data files (needed unless --once)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=common.positive)
    p.add_argument("--limit", type=common.positive, help="predict only the first N test images")
    p.add_argument("--latency-images", type=common.positive, default=2000)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--batch-sizes", type=batch_sizes, default="256,4096",
                   help="comma-separated large batch sizes whose throughput is measured")
    p.add_argument("--throughput-seconds", type=float, default=2.0)
    p.add_argument("--out", help="write the JSON serving report here")
    p.add_argument("--once", action="store_true",
                   help="load the model, print the class of one blank image and end (one cold start)")
    return p


def read_model(path, tensors=True):
    """The model's kind, its tensors (unless not asked for) and its metadata, from a file `lenet
    train --save` writes."""
    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            n = int.from_bytes(raw, "little")
            header = json.loads(f.read(n))
    except (OSError, ValueError) as e:
        sys.exit(f"error: cannot read {path}: {e}")
    metadata = header.get("__metadata__") or {}
    kind = metadata.get("model")
    if kind not in ("lenet2", "lenet3"):
        sys.exit(f"error: {path}: its metadata names no model (lenet2 or lenet3)")
    return kind, common.read_safetensors(path) if tensors else None, metadata


def module_of(kind, tensors, threads):
    """The model of reference.py with the file's weights, in eval mode."""
    import torch
    from reference import LeNet2, LeNet3
    if threads:
        torch.set_num_threads(threads)
    module = (LeNet2 if kind == "lenet2" else LeNet3)()
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()})
    return module.eval()


class Eager:
    """The module as PyTorch users serve it, eager or compiled."""

    def __init__(self, args, compiled):
        import torch
        self.torch = torch
        if args.device == "cuda" and not torch.cuda.is_available():
            sys.exit("error: CUDA was asked for, but torch finds no GPU")
        use_cuda = args.device != "cpu" and torch.cuda.is_available()
        self.device = torch.device("cuda" if use_cuda else "cpu")
        self.kind, tensors, self.metadata = read_model(args.load)
        module = module_of(self.kind, tensors, args.threads).to(self.device)
        self.module = torch.compile(module) if compiled else module
        self.version = f"torch {torch.__version__}"
        self.notes = ["torch.compile (inductor), compiled on its first calls (a cold start's first "
                      "answer compiles, with inductor's cache as earlier runs left it)"] if compiled else []

    def logits(self, images):
        with self.torch.inference_mode():
            x = self.torch.from_numpy(images).to(self.device)
            return self.module(x).cpu().numpy()


def onnx_path(model, asked=None):
    """The exported model's file: `asked`, or the model file's path with .onnx."""
    return asked or os.path.splitext(model)[0] + ".onnx"


def stale(exported, model):
    """Whether the exported file is missing or older than the model file."""
    return not os.path.isfile(exported) or os.path.getmtime(exported) < os.path.getmtime(model)


def ort_library():
    """The shared library of the onnxruntime package (onnxruntime/capi/libonnxruntime.so.*)."""
    import glob
    import onnxruntime
    found = sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*")))
    if not found:
        sys.exit(f"error: onnxruntime {onnxruntime.__version__} ships no libonnxruntime.so")
    return found[-1]


def export(args, path):
    """Exports the model file's module to `path` with torch.onnx.export (written whole, then
    renamed); the seconds it took."""
    import torch
    start = time.perf_counter()
    kind, tensors, _ = read_model(args.load)
    module = module_of(kind, tensors, None)
    program = torch.onnx.export(module, (torch.zeros(1, 1, 28, 28),), dynamo=True, input_names=["images"],
                                output_names=["logits"], dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
                                verbose=False)
    tmp = f"{path}.{os.getpid()}.tmp"
    program.save(tmp)
    os.replace(tmp, path)
    return time.perf_counter() - start


class OnnxRuntime:
    """The module exported to ONNX, served by an InferenceSession."""

    def __init__(self, args):
        if args.device == "cuda":
            sys.exit("error: onnxruntime: this row serves on the CPU (no CUDAExecutionProvider is set up)")
        path = onnx_path(args.load, args.onnx)
        self.kind, _, self.metadata = read_model(args.load, tensors=False)
        self.notes = [f"serves {os.path.basename(path)}, exported from the model file by torch.onnx.export "
                      f"(torch {importlib.metadata.version('torch')}, the torch.export-based exporter) once, "
                      "before any load; the load is the InferenceSession's"]
        if stale(path, args.load):
            # In a process of its own, so that this one never imports torch.
            made = subprocess.run([sys.executable, os.path.abspath(__file__), "--export", "--load", args.load,
                                   "--onnx", path], stdout=subprocess.DEVNULL)
            if made.returncode != 0:
                sys.exit(f"error: onnxruntime: exporting {args.load} to {path} failed")
        import onnxruntime as ort
        options = ort.SessionOptions()
        if args.threads:
            options.intra_op_num_threads = args.threads
            options.inter_op_num_threads = 1
        start = time.perf_counter()
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.load_seconds = time.perf_counter() - start
        self.version = f"onnxruntime {ort.__version__}"
        self.device = None

    def logits(self, images):
        return self.session.run(None, {"images": images})[0]


class Keras:
    """The Keras model with the file's weights, as Keras users serve one."""

    def __init__(self, args):
        os.environ.setdefault("KERAS_BACKEND", "jax")
        backend = os.environ["KERAS_BACKEND"]
        common.limit_cores("keras", args.threads)
        if args.device == "cpu":
            common.hide_gpu(backend)
        try:
            import keras
            import keras_models
        except (ImportError, ValueError) as e:  # an unknown KERAS_BACKEND is a ValueError
            sys.exit(f"error: keras cannot be imported with KERAS_BACKEND={backend}: {e}")
        self.keras, self.models = keras, keras_models
        self.notes = [f"backend: {backend}; answers through model.predict_on_batch (compiled on its first call "
                      "for each batch size)"]

    def load(self, args):
        self.kind, tensors, self.metadata = read_model(args.load)
        self.model = self.models.lenet2() if self.kind == "lenet2" else self.models.lenet3()
        self.models.set_shared_weights(self.model, tensors)
        gpu = self.models.accelerator() is not None
        if args.device == "cuda" and not gpu:
            sys.exit("error: keras: CUDA was asked for, but the backend finds no GPU")
        self.device = argparse.Namespace(type="cuda" if gpu else "cpu")
        self.version = f"keras {self.keras.__version__}, {self.models.backend_version()}"

    def logits(self, images):
        # Channels last, as the Keras model takes them (one channel: the same memory).
        return np.asarray(self.model.predict_on_batch(images.reshape(-1, 28, 28, 1)))


def predictor(args):
    """The row's predictor, and the seconds its load took: for the PyTorch rows the file read and
    the model built, for onnxruntime the InferenceSession made from the exported file. The
    libraries are imported before the clock starts (a cold start counts them)."""
    if args.row == "onnxruntime":
        row = OnnxRuntime(args)
        return row, row.load_seconds
    if args.row == "keras":
        row = Keras(args)
        start = time.perf_counter()
        row.load(args)
        return row, time.perf_counter() - start
    import torch  # noqa: F401
    start = time.perf_counter()
    row = Eager(args, args.row == "pytorch-compile")
    return row, time.perf_counter() - start


def on_cuda(row):
    return row.device is not None and row.device.type == "cuda"


def timed(row, images):
    start = time.perf_counter()
    out = row.logits(images)
    return time.perf_counter() - start, out


def latency(row, pixels, warmup, n):
    count = len(pixels)
    for i in range(warmup):
        row.logits(pixels[i % count:i % count + 1])
    taken = sorted(timed(row, pixels[(warmup + i) % count:(warmup + i) % count + 1])[0] for i in range(n))
    rank = lambda p: taken[min(max(int(np.ceil(p * len(taken))), 1), len(taken)) - 1]
    return {"count": len(taken), "p50": rank(0.50), "p99": rank(0.99), "mean": sum(taken) / len(taken),
            "min": taken[0], "max": taken[-1]}


def throughput(row, pixels, batch, seconds):
    reps = -(-batch // len(pixels))
    images = np.concatenate([pixels] * reps)[:batch]
    row.logits(images)
    start = time.perf_counter()
    batches = 0
    while batches < 3 or time.perf_counter() - start < seconds:
        row.logits(images)
        batches += 1
    elapsed = time.perf_counter() - start
    return {"batch": batch, "batches": batches, "seconds": elapsed, "images_per_second": batches * batch / elapsed}


def measure(args):
    row, load_seconds = predictor(args)
    kind, metadata = row.kind, row.metadata
    if args.once:
        print(int(np.argmax(row.logits(np.zeros((1, 1, 28, 28), np.float32))[0])), flush=True)
        return None
    if not args.data_dir:
        sys.exit("error: --data-dir is needed to measure (the test images)")
    sizes = args.batch_sizes
    split = argparse.Namespace(data_dir=args.data_dir, limit=args.limit)
    pixels, labels = common.load_split(split, "test_images", "test_labels")
    pixels = np.ascontiguousarray(pixels[:, None, :, :])
    # On CUDA, the GPU memory this process holds, sampled by the driver over the measurement.
    nvml = common.Nvml.open(0) if on_cuda(row) else None
    if nvml:
        nvml.start_sampling()
    first, _ = timed(row, pixels[:1])
    batch1 = latency(row, pixels, args.warmup, args.latency_images)
    rates = [throughput(row, pixels, b, args.throughput_seconds) for b in sizes]
    classes = np.concatenate([np.argmax(row.logits(pixels[i:i + 1000]), axis=1)
                              for i in range(0, len(pixels), 1000)])
    kept = min(LOGIT_IMAGES, len(pixels))
    logits = [float(v) for v in row.logits(pixels[:kept]).reshape(-1)]
    out = {
        "schema": SCHEMA,
        "framework": args.row,
        "framework_version": f"{row.version}, python {platform.python_version()}",
        "model": kind,
        "dataset": metadata.get("dataset", "mnist"),
        "model_file": os.path.basename(args.load),
        "model_metadata": dict(metadata),
        "device": "cuda" if on_cuda(row) else "cpu",
        "threads": args.threads,
        "load_seconds": load_seconds,
        "first_prediction_seconds": first,
        "cold_start_seconds": [],
        "batch1": batch1,
        "throughput": rates,
        "test_images": int(len(classes)),
        "accuracy": float(np.mean(classes == labels)),
        "classes": "".join(str(int(c)) for c in classes),
        "logits": logits,
        "peak_host_bytes": report.peak_host_bytes(),
        "notes": row.notes,
        "environment": report.environment(sys.argv),
    }
    peak_device = nvml.finish_sampling() if nvml else None
    if peak_device is not None:
        out["peak_device_bytes"] = peak_device
    return out


def main():
    parser = options()
    args = parser.parse_args()
    if args.ort_library:
        print(ort_library())
        return
    if args.list_rows:
        print("\n".join(r for r in ROWS if args.device != "cuda" or r not in CPU_ONLY))
        return
    if not args.load:
        parser.error("--load is needed (the trained model)")
    if args.export:
        path = onnx_path(args.load, args.onnx)
        if stale(path, args.load):
            print(f"exported {path} in {export(args, path):.2f} s", file=sys.stderr)
        return
    out = measure(args)
    if out is None:
        return
    if args.out:
        report.write_report(args.out, out)
    b = out["batch1"]
    rates = ", ".join(f"{t['images_per_second']:.0f} images/s at {t['batch']}" for t in out["throughput"])
    print(f"{args.row} {out['model']} on {out['device']}: batch 1 p50 {b['p50'] * 1e3:.3f} ms, "
          f"p99 {b['p99'] * 1e3:.3f} ms; {rates}; accuracy {out['accuracy'] * 100:.2f}% over "
          f"{out['test_images']} test images")


if __name__ == "__main__":
    main()
