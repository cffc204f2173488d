"""The run report as the Python rows write it, in the Rust rows' format (`reports::RunReport`, with
`common::harness`'s `RunSpec`, `BackendInfo`, `Tuning`, `EpochRecord` and `EvalRecord`): each record
built from given values, the machine probe, and the file written whole. Only the standard library, so
that `crates/reports/tests/schema.rs` can build a report with any python3 and hold its fields to the
ones the Rust rows write; `lenet_common.py` gives all of it to the rows.
"""

import json
import os
import platform
import resource
import socket
import subprocess
import time

SCHEMA = 1


def run_spec(args):
    """The run's settings as the report records them (common::harness::RunSpec)."""
    return {"framework": args.framework, "model": args.model, "dataset": args.dataset, "init": args.init,
            "device": args.device, "epochs": args.epochs, "batch_size": args.batch_size,
            "learning_rate": args.learning_rate, "seed": args.seed, "limit": args.limit,
            "threads": args.threads, "profile": args.profile}


def eval_record(loss, accuracy, examples, seconds):
    """A pass over a whole split without training (common::harness::EvalRecord)."""
    return {"loss": loss, "accuracy": accuracy, "examples": examples, "seconds": seconds}


def epoch_record(epoch, train_loss, train_accuracy, test, train_seconds, queued_seconds, energy_joules,
                 device_busy=None, peak_host_bytes=None):
    """One epoch of the report (common::harness::EpochRecord): the mean training loss and accuracy,
    the test evaluation's loss, accuracy and time, and the epoch's clocks, energy, the share of it the
    GPU was busy and the most host memory the process held during it (the last two left out where
    not measured, as the Rust rows leave them out)."""
    record = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy,
              "test_loss": test["loss"], "test_accuracy": test["accuracy"],
              "train_seconds": train_seconds, "eval_seconds": test["seconds"],
              "queued_seconds": queued_seconds, "energy_joules": energy_joules}
    if device_busy is not None:
        record["device_busy"] = device_busy
    if peak_host_bytes is not None:
        record["peak_host_bytes"] = peak_host_bytes
    return record


def tuning_record(setting, value, applied, note):
    """One setting of the tuned profile (common::harness::Tuning)."""
    return {"setting": setting, "value": value, "applied": applied, "note": note}


def backend_info(framework, framework_version, device, device_name, threads, features, notes, tuning):
    """What the row says about itself and the device it ran on (common::harness::BackendInfo)."""
    return {"framework": framework, "framework_version": framework_version, "device": device,
            "device_name": device_name, "threads": threads, "features": features, "notes": notes,
            "tuning": tuning}


def run_report(spec, backend, environment, parameters, train_examples, test_examples, setup_seconds, epochs,
               final_train, final_test, peak_host_bytes, peak_device_bytes, gpu_process_bytes, failure):
    """The whole report (reports::RunReport) from its parts."""
    return {
        "schema": SCHEMA, "spec": spec, "backend": backend, "environment": environment,
        "parameters": int(parameters), "train_examples": int(train_examples), "test_examples": int(test_examples),
        "setup_seconds": setup_seconds, "epochs": epochs, "final_train": final_train, "final_test": final_test,
        "peak_host_bytes": peak_host_bytes, "peak_device_bytes": peak_device_bytes,
        "gpu_process_bytes": gpu_process_bytes, "failure": failure,
    }


def failed_report(args, environment, reason):
    """The report of a run that failed before it could train (reports::RunReport::failed)."""
    parameters = {"lenet2": 61706, "lenet3": 121994}[args.model]
    return run_report(run_spec(args), None, environment, parameters, 0, 0, 0.0, [], None, None, None, None,
                      None, reason)


def high_water_mark():
    """The process's high-water mark of its resident set (VmHWM), in bytes; None where unreadable."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _larger(a, b):
    return b if a is None else a if b is None else max(a, b)


class HostMemory:
    """Each epoch's peak host memory, as the Rust rows' meter (meters::host) measures it: the
    high-water mark reset as the epoch starts (writing 5 to /proc/self/clear_refs) and read as it
    ends; where it cannot be reset, no epoch gets one. The run's peak is the largest mark read."""

    def __init__(self):
        self.run, self.resets, self.epochs = None, False, 0

    def epoch_started(self):
        self.run = _larger(self.run, high_water_mark())
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
                f.write("5")
            reset = True
        except OSError:
            reset = False
        self.resets = reset and (self.resets or self.epochs == 0)
        self.epochs += 1

    def epoch_finished(self):
        mark = high_water_mark()
        self.run = _larger(self.run, mark)
        return mark if self.resets else None

    def run_peak(self):
        # ru_maxrss is in KiB on Linux; after a reset it may be below a mark read earlier.
        rusage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return _larger(_larger(self.run, high_water_mark()), rusage)


HOST_MEMORY = HostMemory()


def peak_host_bytes():
    return HOST_MEMORY.run_peak()


def write_report(path, report):
    """Writes the report to a temporary file and renames it: never half a file."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


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
    """Where the run runs (reports::Environment), probed now."""
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
