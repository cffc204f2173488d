"""The PyTorch reference run of lenet-compare: the tutorial's framework, trained with the same recipe,
from the same initial weights and in the same batch order as the Rust runs (read from a plan file that
`lenet plan` writes), timed the same way, and reported in the same JSON format.

Only the standard library, numpy and torch are used, so it runs wherever a torch is installed.
"""

import argparse
import contextlib
import ctypes
import gzip
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SCHEMA = 1
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(folder, name):
    for path, opener in ((os.path.join(folder, name), open), (os.path.join(folder, name + ".gz"), gzip.open)):
        if os.path.isfile(path):
            with opener(path, "rb") as f:
                raw = f.read()
            ndims = raw[3]
            dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndims)]
            return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndims).reshape(dims)
    sys.exit(f"error: {os.path.join(folder, name)}.gz: missing")


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    dtypes = {"F32": np.float32, "I64": np.int64}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(raw[base + start: base + end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return out


# listing: lenet2
class LeNet2(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # [batch, 6, 14, 14]
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # [batch, 16, 5, 5]
        x = torch.flatten(x, 1)  # [batch, 400]
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)
# end listing


# listing: lenet3
class LeNet3(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.fc1 = nn.Linear(1024, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # [batch, 32, 14, 14]
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # [batch, 64, 6, 6]
        x = F.relu(self.conv3(x))  # [batch, 64, 4, 4]
        x = torch.flatten(x, 1)  # [batch, 1024]
        x = F.relu(self.fc1(x))
        return self.fc2(x)
# end listing


def portable_command(argv, cwd):
    """The command line as it can be published (as the Rust side records it): the program by its
    file name, each absolute path relative to `cwd` when under it, else by its file name."""
    def path(arg):
        if not os.path.isabs(arg):
            return arg
        rel = os.path.relpath(arg, cwd) if cwd else ".."
        return rel if not rel.startswith("..") else os.path.basename(arg.rstrip("/")) or arg

    out = []
    for i, arg in enumerate(argv):
        if i == 0:
            out.append(os.path.basename(arg) or arg)
        elif arg.startswith("--") and "=" in arg:
            option, value = arg.split("=", 1)
            out.append(f"{option}={path(value)}")
        else:
            out.append(path(arg))
    return out


def environment(command):
    cpu = "unknown-cpu"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = driver = None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader", "--id=0"],
                             capture_output=True, text=True, check=True).stdout.strip()
        gpu, driver = [s.strip() for s in out.split(",", 1)]
    except (OSError, subprocess.CalledProcessError, ValueError):
        pass
    now = int(time.time())
    return {
        "lenet_version": "python-reference",
        "os": platform.system().lower(),
        "arch": platform.machine(),
        "cpu_model": cpu,
        "logical_cpus": os.cpu_count() or 1,
        "hostname": socket.gethostname(),
        "gpu": gpu,
        "gpu_driver": driver,
        "command": portable_command(command, os.getcwd()),
        "started_unix": now,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
    }


class Nvml:
    """The GPU's own counters through its driver's NVML (libnvidia-ml.so.1, through ctypes), as the
    Rust runs read them (`results::gpu`): the GPU memory this process holds, sampled every 20 ms
    from a thread, and the GPU's energy counter. `open` gives None where there is no NVML."""

    NOT_AVAILABLE = 0xFFFFFFFFFFFFFFFF
    INSUFFICIENT_SIZE = 7

    class ProcessInfo(ctypes.Structure):
        # nvmlProcessInfo_t (v2/v3): pid, usedGpuMemory, gpuInstanceId, computeInstanceId.
        _fields_ = [("pid", ctypes.c_uint), ("used", ctypes.c_ulonglong),
                    ("gpu_instance", ctypes.c_uint), ("compute_instance", ctypes.c_uint)]

    @classmethod
    def open(cls, index=0):
        try:
            lib = ctypes.CDLL("libnvidia-ml.so.1")
            if lib.nvmlInit_v2() != 0:
                return None
            handle = ctypes.c_void_p()
            if lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(index), ctypes.byref(handle)) != 0:
                return None
        except (OSError, AttributeError):
            return None
        nvml = cls()
        nvml.lib, nvml.handle = lib, handle
        nvml.peak, nvml.seen, nvml.stop = 0, False, threading.Event()
        return nvml

    def energy_mj(self):
        value = ctypes.c_ulonglong()
        if self.lib.nvmlDeviceGetTotalEnergyConsumption(self.handle, ctypes.byref(value)) != 0:
            return None
        return value.value

    def process_memory(self, pid):
        count = ctypes.c_uint(0)
        rc = self.lib.nvmlDeviceGetComputeRunningProcesses_v3(self.handle, ctypes.byref(count), None)
        if rc not in (0, self.INSUFFICIENT_SIZE):
            return None
        size = count.value + 8
        infos = (self.ProcessInfo * size)()
        count = ctypes.c_uint(size)
        if self.lib.nvmlDeviceGetComputeRunningProcesses_v3(self.handle, ctypes.byref(count), infos) != 0:
            return None
        used = [infos[i].used for i in range(count.value)
                if infos[i].pid == pid and infos[i].used != self.NOT_AVAILABLE]
        return max(used) if used else None

    def _sample(self):
        pid = os.getpid()
        while True:
            used = self.process_memory(pid)
            if used is not None:
                self.peak, self.seen = max(self.peak, used), True
            if self.stop.wait(0.02):
                return

    def start_sampling(self):
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def finish_sampling(self):
        """The largest memory reading, or None when none succeeded."""
        self.stop.set()
        self.thread.join()
        used = self.process_memory(os.getpid())
        if used is not None:
            self.peak, self.seen = max(self.peak, used), True
        return self.peak if self.seen else None


def joules_between(start_mj, end_mj):
    """The counter difference in joules; None when a reading failed or the counter went back."""
    if start_mj is None or end_mj is None or end_mj < start_mj:
        return None
    return (end_mj - start_mj) / 1000.0


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def evaluate(model, images, labels, device, batch=1000):
    sync(device)
    start = time.perf_counter()
    loss_sum = torch.zeros((), device=device)
    hits = torch.zeros((), dtype=torch.int64, device=device)
    n = labels.shape[0]
    with torch.no_grad():
        for s in range(0, n, batch):
            xs, ys = images[s:s + batch], labels[s:s + batch]
            logits = model(xs)
            loss_sum += F.cross_entropy(logits, ys) * ys.shape[0]
            hits += (logits.argmax(-1) == ys).sum()
    record = {"loss": loss_sum.item() / n, "accuracy": hits.item() / n, "examples": n}
    sync(device)
    record["seconds"] = time.perf_counter() - start
    return record


def tuning_entry(setting, value, applied, note):
    """One setting of the tuned profile, as the Rust runs record it (common::harness::Tuning)."""
    print(f"pytorch tuned: {setting}: {value} ({'applied' if applied else 'fell back'}: {note})", file=sys.stderr)
    return {"setting": setting, "value": value, "applied": applied, "note": note}


# Eager steps before the capture, as PyTorch's CUDA-graph documentation does: they warm up cuDNN,
# cuBLAS, the allocator and the optimiser's state on a side stream, and they are real training
# steps (the first of the run), so the run's math is the idiomatic run's step for step.
WARMUP_STEPS = 3


class GraphedStep:
    """The whole training step of a batch of `batch` as one CUDA graph: the batch's indices are
    copied into a fixed buffer, then one replay gathers the batch, runs forward, loss, backward and
    the fused, capturable Adam, adds the loss and correct count to fixed sums and keeps the step's
    loss in a fixed slot. The first WARMUP_STEPS full batches run eagerly (then the capture); a
    batch of another size (the last, short one) also runs eagerly."""

    def __init__(self, model, opt, train_x, train_y, batch, device):
        self.model, self.opt, self.x, self.y, self.batch = model, opt, train_x, train_y, batch
        self.device = device
        self.idx = torch.zeros(batch, dtype=torch.int64, device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.hits = torch.zeros((), dtype=torch.int64, device=device)
        self.losses = torch.zeros(max(1, train_y.shape[0] // batch + 1), device=device)
        self.slot = torch.zeros((), dtype=torch.int64, device=device)
        self.graph = None
        self.side = torch.cuda.Stream(self.device)
        self.eager_steps = 0
        self.order = []  # per step of the epoch: True for a replay, False for an eager step

    def start_epoch(self):
        self.loss_sum.zero_()
        self.hits.zero_()
        self.slot.zero_()
        self.order = []

    def _body(self):
        xs, ys = self.x.index_select(0, self.idx), self.y.index_select(0, self.idx)
        logits = self.model(xs)
        loss = F.cross_entropy(logits, ys)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            self.loss_sum.add_(loss.detach() * self.batch)
            self.hits.add_((logits.argmax(-1) == ys).sum())
            self.losses.index_copy_(0, self.slot.view(1), loss.detach().view(1))
            self.slot.add_(1)

    def step(self, idx):
        """Runs the step of `idx` through the graph (True), or leaves it to the eager loop."""
        if idx.shape[0] != self.batch or (self.graph is None and self.eager_steps < WARMUP_STEPS):
            return False
        if self.graph is None:
            self._capture()
        self.idx.copy_(idx)
        self.graph.replay()
        self.order.append(True)
        return True

    @contextlib.contextmanager
    def eager(self, idx):
        """An eager step: the warm-up ones on the side stream the capture will use, as PyTorch's
        CUDA-graph documentation asks."""
        warmup = self.graph is None and idx.shape[0] == self.batch
        if warmup:
            self.side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self.side):
                yield
            torch.cuda.current_stream(self.device).wait_stream(self.side)
            self.eager_steps += 1
        else:
            yield
        self.order.append(False)

    def _capture(self):
        torch.cuda.synchronize(self.device)
        # Gradients the graph owns: set to None here, allocated by the captured backward, and
        # overwritten (not accumulated) by each replay.
        self.opt.zero_grad(set_to_none=True)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._body()

    def step_losses(self, eager_losses):
        """Every step's loss in step order, the replays' from their slots."""
        replayed = iter(self.losses[:self.slot.item()].unbind(0)) if self.graph is not None else iter(())
        eager = iter(eager_losses)
        return [next(replayed) if r else next(eager) for r in self.order]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plan", required=True, help="safetensors file written by `lenet plan`")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--framework", choices=["pytorch"], default="pytorch",
                   help="always pytorch (taken so that a run's options are the same as lenet train's)")
    p.add_argument("--model", choices=["lenet2", "lenet3"], required=True)
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist",
                   help="recorded in the report (the files are read from --data-dir)")
    p.add_argument("--init", choices=["shared", "native"], default="shared",
                   help="shared: the plan's weights; native: torch's own initialisers, seeded with --seed")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's (the recipe's is 0.001)")
    p.add_argument("--limit", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=int)
    p.add_argument("--profile", choices=["idiomatic", "tuned"], default="idiomatic",
                   help="tuned: fused Adam; on CUDA also cudnn.benchmark and the whole step captured as a CUDA graph")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    spec = {"framework": "pytorch", "model": args.model, "dataset": args.dataset, "init": args.init, "device": args.device, "epochs": args.epochs,
            "batch_size": args.batch_size, "learning_rate": args.learning_rate, "seed": args.seed, "limit": args.limit,
            "threads": args.threads, "profile": args.profile}
    env = environment(sys.argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: pytorch: CUDA was asked for, but torch finds no CUDA device")
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda:0" if use_cuda else "cpu")

    def split(images, labels):
        x, y = read_idx(args.data_dir, FILES[images]), read_idx(args.data_dir, FILES[labels])
        if args.limit:
            x, y = x[:args.limit], y[:args.limit]
        x = (x.astype(np.float32) / np.float32(255.0) - np.float32(0.5)) / np.float32(0.5)
        return (torch.from_numpy(x).reshape(-1, 1, 28, 28).to(device),
                torch.from_numpy(y.astype(np.int64)).to(device))

    setup = time.perf_counter()
    plan = read_safetensors(args.plan)
    train_x, train_y = split("train_images", "train_labels")
    test_x, test_y = split("test_images", "test_labels")
    torch.manual_seed(args.seed)
    model = (LeNet2() if args.model == "lenet2" else LeNet3()).to(device)
    if args.init == "shared":
        model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in plan.items() if not k.startswith("order.")})
    tuned = args.profile == "tuned"
    tuning = []
    if tuned and use_cuda:
        torch.backends.cudnn.benchmark = True
        tuning.append(tuning_entry("cudnn.benchmark", "true", True, "cuDNN times its algorithms once per shape"))
    if tuned:
        # One kernel over every parameter instead of a dozen per tensor; on CUDA also capturable
        # (its step counts live on the device), which the CUDA graph below needs.
        opt = torch.optim.Adam(model.parameters(), lr=args.learning_rate, betas=(0.9, 0.999), eps=1e-8,
                               weight_decay=0, fused=True, capturable=use_cuda)
        tuning.append(tuning_entry("fused Adam", "fused=True" + (", capturable=True" if use_cuda else ""), True,
                                   "torch.optim.Adam's fused kernel, the same update"))
    else:
        opt = torch.optim.Adam(model.parameters(), lr=args.learning_rate, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)
    graphed = None
    if tuned:
        if use_cuda:
            graphed = GraphedStep(model, opt, train_x, train_y, args.batch_size, device)
            tuning.append(tuning_entry("CUDA graph", "whole step", True,
                                       f"gather, forward, loss, backward, Adam and the sums of a batch of {args.batch_size} "
                                       f"captured once after {WARMUP_STEPS} eager steps and replayed; a shorter last batch runs eagerly"))
        else:
            tuning.append(tuning_entry("CUDA graph", "whole step", False, "the run is on the CPU: no CUDA graphs there"))
    sync(device)
    setup_seconds = time.perf_counter() - setup
    nvml = Nvml.open(0) if use_cuda else None
    if nvml:
        nvml.start_sampling()

    n = train_y.shape[0]
    epochs, failure = [], None
    try:
        for epoch in range(1, args.epochs + 1):
            order = torch.from_numpy(plan[f"order.{epoch}"].copy())
            if order.shape[0] != n:
                sys.exit(f"error: {args.plan}: order.{epoch} covers {order.shape[0]} examples, the data has {n}")
            energy_start = nvml.energy_mj() if nvml else None
            sync(device)
            start = time.perf_counter()
            order = order.to(device)
            loss_sum = torch.zeros((), device=device)
            hits = torch.zeros((), dtype=torch.int64, device=device)
            # Each step's loss stays on the device; read back only if the epoch's sum is not finite (as
            # the Rust frameworks do, so that every run pays the same for it).
            losses = []
            if graphed:
                graphed.start_epoch()
            for s in range(0, n, args.batch_size):
                idx = order[s:s + args.batch_size]
                if graphed and graphed.step(idx):
                    continue
                with graphed.eager(idx) if graphed else contextlib.nullcontext():
                    xs, ys = train_x.index_select(0, idx), train_y.index_select(0, idx)
                    logits = model(xs)
                    loss = F.cross_entropy(logits, ys)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    with torch.no_grad():
                        loss_sum += loss.detach() * ys.shape[0]
                        hits += (logits.argmax(-1) == ys).sum()
                    losses.append(loss.detach())
            if graphed:
                # The replays' sums beside the eager steps'.
                loss_sum += graphed.loss_sum
                hits += graphed.hits
            # When the host had queued the last step (the Rust harness records the same).
            queued_seconds = time.perf_counter() - start
            train_loss, train_hits = loss_sum.item(), hits.item()
            sync(device)
            train_seconds = time.perf_counter() - start
            energy = joules_between(energy_start, nvml.energy_mj()) if nvml else None
            if not np.isfinite(train_loss):
                if graphed:
                    losses = graphed.step_losses(losses)
                steps = torch.stack(losses).float().cpu().numpy()
                bad = np.flatnonzero(~np.isfinite(steps))
                at = ""
                if len(bad):
                    value = steps[bad[0]]
                    value = "NaN" if np.isnan(value) else ("inf" if value > 0 else "-inf")
                    at = f", first at step {bad[0] + 1} of {len(steps)} (loss {value})"
                failure = (f"the training loss became NaN or infinite in epoch {epoch}{at}; "
                           "the run stopped at the end of that epoch")
                break
            test = evaluate(model, test_x, test_y, device)
            epochs.append({"epoch": epoch, "train_loss": train_loss / n, "train_accuracy": train_hits / n,
                           "test_loss": test["loss"], "test_accuracy": test["accuracy"],
                           "train_seconds": train_seconds, "eval_seconds": test["seconds"],
                           "queued_seconds": queued_seconds, "energy_joules": energy})
            print(f"pytorch {args.model} epoch {epoch}/{args.epochs}: loss {train_loss / n:.4f}, "
                  f"train acc {100 * train_hits / n:.2f}%, test acc {100 * test['accuracy']:.2f}%, "
                  f"{train_seconds:.2f} s", file=sys.stderr, flush=True)
    except torch.cuda.OutOfMemoryError as e:
        # A batch too large for the GPU is a failed point of a sweep, named as the Rust runs name it.
        failure = f"out of device memory: pytorch: {str(e).splitlines()[0] if str(e) else 'CUDA out of memory'}"

    final_train = final_test = None
    if failure is None:
        final_test = evaluate(model, test_x, test_y, device)
        final_train = evaluate(model, train_x, train_y, device)
    gpu_process_bytes = nvml.finish_sampling() if nvml else None
    notes = [f"cudnn: {'available' if torch.backends.cudnn.is_available() else 'not available'}"]
    if use_cuda:
        notes.append(f"cudnn.benchmark: {str(torch.backends.cudnn.benchmark).lower()} (torch default)")
    report = {
        "schema": SCHEMA, "spec": spec,
        "backend": {"framework": "pytorch", "framework_version": f"torch {torch.__version__}, python {platform.python_version()}",
                    "device": "cuda" if use_cuda else "cpu", "device_name": str(device),
                    "threads": torch.get_num_threads(), "features": [], "notes": notes, "tuning": tuning},
        "environment": env, "parameters": sum(p.numel() for p in model.parameters()),
        "train_examples": n, "test_examples": int(test_y.shape[0]), "setup_seconds": setup_seconds,
        "epochs": epochs, "final_train": final_train, "final_test": final_test,
        # ru_maxrss is in KiB on Linux.
        "peak_host_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "peak_device_bytes": torch.cuda.max_memory_allocated(device) if use_cuda else None,
        "gpu_process_bytes": gpu_process_bytes,
        "failure": failure,
    }
    tmp = f"{args.out}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    os.replace(tmp, args.out)
    if failure:
        sys.exit(f"error: pytorch {args.model} failed: {failure}")


if __name__ == "__main__":
    main()
