"""What the Python rows of lenet-compare share (python/reference.py, PyTorch, and python/keras_reference.py,
Keras): the options of a run (the same as `lenet train`'s, `RunSpec::to_args` on the Rust side), the
data files and the plan file that `lenet plan` writes, the epoch loop's bookkeeping around each row's
own training (the plan's orders, the GPU's own counters, the NaN check, the epoch records, the progress
lines, the step losses), the machine probe and the report file (from `lenet_report.py`). Only the
standard library and numpy: no framework is imported here, so each script imports its own framework
after its options are read.
"""

import argparse
import ctypes
import gzip
import json
import os
import sys
import threading

import numpy as np

# The report's records and the machine probe, given to the rows from here.
from lenet_report import (SCHEMA, backend_info, environment, epoch_record, eval_record, failed_report,  # noqa: F401
                          HOST_MEMORY, peak_host_bytes, portable_command, run_report, run_spec, tuning_record, write_report)

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


def limit_cores(row, threads):
    """Lets this process run on the first `threads` of its cores (none: all of them), for a backend
    that sizes its thread pools from the cores it may use (XLA's CPU backend has no other switch);
    to be called before the backend is imported."""
    if threads:
        cores = sorted(os.sched_getaffinity(0))
        if threads > len(cores):
            sys.exit(f"error: {row}: --threads {threads}, but this process may use {len(cores)} cores")
        os.sched_setaffinity(0, cores[:threads])


def hide_gpu(backend):
    """Hides the GPU from a Keras backend (for `--device cpu`); to be called before it is imported."""
    if backend == "jax":
        os.environ["JAX_PLATFORMS"] = "cpu"
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


def arguments(framework, description, profile_help):
    """The options of one run, as `lenet train` takes them (`--framework` is always this script's)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--plan", required=True, help="safetensors file written by `lenet plan`")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--framework", choices=[framework], default=framework,
                   help=f"always {framework} (taken so that a run's options are the same as lenet train's)")
    p.add_argument("--model", choices=["lenet2", "lenet3"], required=True)
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist",
                   help="recorded in the report (the files are read from --data-dir)")
    p.add_argument("--init", choices=["shared", "native"], default="shared",
                   help=f"shared: the plan's weights; native: {framework}'s own initialisers, seeded with --seed")
    p.add_argument("--epochs", type=positive, default=10)
    p.add_argument("--batch-size", type=positive, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's (the recipe's is 0.001)")
    p.add_argument("--limit", type=positive)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=positive)
    p.add_argument("--profile", choices=["idiomatic", "tuned"], default="idiomatic", help=profile_help)
    p.add_argument("--out", required=True)
    p.add_argument("--logits", metavar="FILE",
                   help="check: write the logits of the first 64 test images from the initial weights "
                        "(JSON) and stop before training")
    p.add_argument("--initial-weights", metavar="FILE",
                   help="check: write the initial weights in the shared layout (safetensors) and go on")
    p.add_argument("--step-losses", metavar="FILE",
                   help="check: write each training step's loss, per epoch (JSON)")
    p.add_argument("--kernels", metavar="LIB",
                   help="a kernel pass: load the kernel counter (liblenet_kernels.so) before the first CUDA "
                        "call and mark each epoch's training in its records (--kernel-records); "
                        "`cargo xtask compare --kernels` gives both and reads the records back")
    p.add_argument("--kernel-records", metavar="FILE", help="where the kernel counter writes its records")
    return p


def check_kernel_args(parser, args):
    """--kernels and --kernel-records go together, and the counter must exist."""
    if bool(args.kernels) != bool(args.kernel_records):
        parser.error("--kernels and --kernel-records go together")
    if args.kernels and not os.path.isfile(args.kernels):
        parser.error(f"--kernels {args.kernels}: no such file (the kernel counter's library, built by "
                     "`cargo xtask setup --cuda`)")


class KernelCounter:
    """The kernel counter (crates/meters/cupti/kernel_counter.c) loaded into this process for a kernel
    pass, as `lenet train --kernels` loads it: started before the framework's first CUDA call, each
    epoch's training marked, its records flushed at the end. Never on the CPU (`--device cpu`)."""

    @classmethod
    def start(cls, args):
        """The counter recording into --kernel-records, or None (no pass, a CPU run, or a counter that
        cannot record here: its records then stay missing and the report says so)."""
        if not args.kernels or args.device == "cpu":
            return None
        try:
            lib = ctypes.CDLL(os.path.abspath(args.kernels))
        except OSError as e:
            print(f"warning: cannot load the kernel counter {args.kernels}: {e}", file=sys.stderr, flush=True)
            return None
        lib.lenet_kernels_start.argtypes = [ctypes.c_char_p]
        lib.lenet_kernels_mark.argtypes = [ctypes.c_int, ctypes.c_uint32]
        if lib.lenet_kernels_start(os.fsencode(args.kernel_records)) == 0:
            print(f"warning: the kernel counter cannot record into {args.kernel_records}", file=sys.stderr,
                  flush=True)
            return None
        counter = cls()
        counter.lib = lib
        return counter

    def mark(self, begin, epoch):
        """Marks the beginning (`begin`) or the end of an epoch's training."""
        self.lib.lenet_kernels_mark(1 if begin else 0, epoch)

    def finish(self):
        """Stops recording and flushes the records."""
        self.lib.lenet_kernels_finish()


def positive(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def load_split(args, images, labels):
    """A split's images normalised as every row normalises them ((x / 255 - 0.5) / 0.5, float32,
    [n, 28, 28]) and its labels (int64), cut to `--limit`."""
    x, y = read_idx(args.data_dir, FILES[images]), read_idx(args.data_dir, FILES[labels])
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    x = (x.astype(np.float32) / np.float32(255.0) - np.float32(0.5)) / np.float32(0.5)
    return x, y.astype(np.int64)


def epoch_order(plan, args, epoch, n):
    """The plan's batch order of `epoch`, checked against the data's size."""
    order = plan.get(f"order.{epoch}")
    if order is None:
        sys.exit(f"error: {args.plan}: no order.{epoch} (the plan covers fewer epochs than --epochs {args.epochs})")
    if order.shape[0] != n:
        sys.exit(f"error: {args.plan}: order.{epoch} covers {order.shape[0]} examples, the data has {n}")
    return order


def nan_failure(epoch, steps, total=None, numbers=None):
    """The failure of an epoch whose loss sum is not finite, naming the first bad step of `steps`
    (each step's loss, in order; the Rust harness words it the same). `total` is the epoch's number
    of steps where `steps` stops early, `numbers` each value's step number where it is not its
    position (1-based)."""
    steps = np.asarray(steps, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(steps))
    at = ""
    if len(bad):
        value = steps[bad[0]]
        value = "NaN" if np.isnan(value) else ("inf" if value > 0 else "-inf")
        step = numbers[bad[0]] if numbers else bad[0] + 1
        first = numbers[bad[0] - 1] + 1 if numbers and bad[0] > 0 else 1 if numbers else step
        where = f"step {step}" if first == step else f"steps {first}..{step}"
        at = f", first at {where} of {total or len(steps)} (loss {value})"
    return (f"the training loss became NaN or infinite in epoch {epoch}{at}; "
            "the run stopped at the end of that epoch")


LOGIT_IMAGES = 64


def write_logits(path, logits):
    """The `--logits` check's file: the logits of the first LOGIT_IMAGES test images, row by row."""
    write_report(path, {"images": LOGIT_IMAGES, "logits": np.asarray(logits, np.float64).ravel().tolist()})


def announce(args, record):
    """The progress line of an epoch, as the Rust runs print it."""
    print(f"{args.framework} {args.model} epoch {record['epoch']}/{args.epochs}: loss {record['train_loss']:.4f}, "
          f"train acc {100 * record['train_accuracy']:.2f}%, test acc {100 * record['test_accuracy']:.2f}%, "
          f"{record['train_seconds']:.2f} s", file=sys.stderr, flush=True)


def out_of_memory(framework, error):
    """The failure of a run whose device memory ran out (a batch too large for the GPU: a failed
    point of a sweep), named as the Rust runs name it."""
    text = str(error)
    return f"out of device memory: {framework}: {text.splitlines()[0] if text else 'out of memory'}"


class EpochTraining:
    """One epoch's training as a row measured it: the mean loss and accuracy over its steps, its
    clock (`seconds`, to the device's end of the last step) and when the host had queued its last
    step (`queued`, None where the row cannot tell), and `steps()`, which reads back each step's loss
    (only for the check or to name the first bad step) as (losses, their step numbers or None where
    they are the positions, the epoch's steps or None where they are all there)."""

    def __init__(self, loss, accuracy, seconds, queued, steps):
        self.loss, self.accuracy, self.seconds, self.queued, self.steps = loss, accuracy, seconds, queued, steps


def train_epochs(args, plan, n, row, nvml, counter):
    """The epoch loop of every Python row, around the row's own training: each epoch's order from the
    plan, the GPU's energy and busy share around its training, the step losses (for --step-losses, or
    to name the first bad step of an epoch whose loss is not finite: the run stops there), the test
    evaluation, the epoch's record and progress line; the kernel counter finished and the step losses
    written at the end. `row` gives `prepare(epoch, order)` (what comes before the meters start),
    `train(epoch, prepared)` (the epoch's training, an EpochTraining, marked for `counter` by the row),
    `test()` (the test evaluation) and `out_of_memory(error)` (whether an error is the device's memory
    running out: the run then fails with it, any other error is raised). Returns (epochs, failure)."""
    epochs, failure, step_losses = [], None, {}
    try:
        for epoch in range(1, args.epochs + 1):
            prepared = row.prepare(epoch, epoch_order(plan, args, epoch, n))
            HOST_MEMORY.epoch_started()
            energy_start = nvml.energy_mj() if nvml else None
            busy_start = nvml.busy_snapshot() if nvml else None
            trained = row.train(epoch, prepared)
            energy = joules_between(energy_start, nvml.energy_mj()) if nvml else None
            busy = nvml.busy_since(busy_start) if nvml else None
            finite = np.isfinite(trained.loss)
            if args.step_losses or not finite:
                # Read back only for the check, or to name the first bad step.
                steps, numbers, total = trained.steps()
                step_losses[epoch] = steps
            if not finite:
                failure = nan_failure(epoch, steps, total=total, numbers=numbers)
                break
            test = row.test()
            epochs.append(epoch_record(epoch, trained.loss, trained.accuracy, test, trained.seconds,
                                       trained.queued, energy, busy, HOST_MEMORY.epoch_finished()))
            announce(args, epochs[-1])
    except Exception as e:  # the frameworks' out-of-memory errors have no common type
        if not row.out_of_memory(e):
            raise
        failure = out_of_memory(args.framework, e)
    if counter:
        counter.finish()
    if args.step_losses:
        write_report(args.step_losses, {str(e): v for e, v in step_losses.items()})
    return epochs, failure


def report(args, backend, environment, parameters, train_examples, test_examples, setup_seconds, epochs,
           failure, evaluate, peak_device_bytes, gpu_process_bytes):
    """The run's report (results::RunReport). `evaluate(split)` ("test", "train") gives the final
    evaluations, made only when the run did not fail; the device's peak memory is read after them
    (a callable, or None off the GPU)."""
    final_test = final_train = None
    if failure is None:
        final_test, final_train = evaluate("test"), evaluate("train")
    return run_report(run_spec(args), backend, environment, parameters, train_examples, test_examples,
                      setup_seconds, epochs, final_train, final_test, peak_host_bytes(),
                      peak_device_bytes() if peak_device_bytes else None,
                      gpu_process_bytes() if gpu_process_bytes else None, failure)


def finish(args, report):
    """Writes the run's report; a failed run then exits with its reason on stderr."""
    write_report(args.out, report)
    if report["failure"]:
        sys.exit(f"error: {args.framework} {args.model} failed: {report['failure']}")


def fail_before_start(args, reason):
    """A run that cannot start (its framework cannot be imported, say) leaves a failed report with
    the reason, as the Rust runs do, so that a comparison's table says why; then exits."""
    finish(args, failed_report(args, environment(sys.argv), reason))


def run_main(main, framework):
    """Runs a row's main(); Ctrl-C (or the SIGINT of a time limit) ends it with one line, not a
    traceback, and the status 130 of a process ended by SIGINT."""
    try:
        main()
    except KeyboardInterrupt:
        print(f"{framework}: interrupted", file=sys.stderr, flush=True)
        sys.exit(130)


def write_safetensors(path, tensors):
    """float32 tensors by name, in the safetensors format (for checks: a model's weights)."""
    header, offset, blobs = {}, 0, []
    for name, value in tensors.items():
        raw = np.ascontiguousarray(value, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(value.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for raw in blobs:
            f.write(raw)
    os.replace(tmp, path)


def tuning_entry(framework, setting, value, applied, note):
    """One setting of the tuned profile, as the Rust runs record it (common::harness::Tuning), and
    said on stderr as they say it."""
    print(f"{framework} tuned: {setting}: {value} ({'applied' if applied else 'fell back'}: {note})", file=sys.stderr)
    return tuning_record(setting, value, applied, note)


class Nvml:
    """The GPU's own counters through its driver's NVML (libnvidia-ml.so.1, through ctypes), as the
    Rust runs read them (`meters::gpu`): the GPU memory this process holds and the GPU's utilization
    (the share of time a kernel was running), sampled every 20 ms from a thread, and the GPU's
    energy counter. `open` gives None where there is no NVML."""

    NOT_AVAILABLE = 0xFFFFFFFFFFFFFFFF
    INSUFFICIENT_SIZE = 7

    class Utilization(ctypes.Structure):
        # nvmlUtilization_t: percent of the last sample period a kernel ran, and memory was accessed.
        _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]

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
        nvml.busy_sum, nvml.busy_count = 0, 0
        return nvml

    def utilization(self):
        value = self.Utilization()
        if self.lib.nvmlDeviceGetUtilizationRates(self.handle, ctypes.byref(value)) != 0:
            return None
        return value.gpu

    def busy_snapshot(self):
        """The utilization readings so far (sum in percent, count), for `busy_since`."""
        return self.busy_sum, self.busy_count

    def busy_since(self, snapshot):
        """The mean utilization (0 to 1) of the readings taken since `snapshot`; None without one."""
        total, count = self.busy_sum - snapshot[0], self.busy_count - snapshot[1]
        return total / count / 100.0 if count else None

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
            busy = self.utilization()
            if busy is not None:
                self.busy_sum, self.busy_count = self.busy_sum + busy, self.busy_count + 1
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

