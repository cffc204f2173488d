"""How many kernel launches CUDA lets the host queue ahead of the device, measured.

A spin kernel (torch.cuda._sleep) holds the device for about a second; the host then launches tiny
kernels one after another, timing each launch call. While the queue has room, a launch returns in
microseconds; once it is full, the next launch waits until the spin kernel ends. The number of
launches that returned quickly is the queue's depth, as this process sees it. Repeated a few times,
with the eager element-wise kernel every framework launches and, where it works, with a captured
CUDA graph replayed (one launch for a whole graph of kernels).

Why it matters: an eager training step launches tens of kernels, so the host can be at most
depth / kernels-per-step steps ahead of the device, whoever is the bottleneck. The host's share of
an epoch (the time it took to queue every step, over the epoch) then reads close to 100% for a
device-bound row as much as for a host-bound one; only the device's own activity tells them apart.

Writes one JSON file (--out) with the machine, the versions, the command and every launch's time.
"""

import argparse
import json
import os
import platform
import sys
import time


def options():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="the JSON file to write")
    p.add_argument("--launches", type=int, default=8192, help="launches after each spin kernel")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--spin-ms", type=float, default=1000.0, help="how long the spin kernel holds the device")
    p.add_argument("--graph-kernels", type=int, default=50,
                   help="kernels in the captured graph (an eager LeNet2 step launches about this many)")
    args = p.parse_args()
    if args.launches < 1 or args.repeats < 1 or args.spin_ms <= 0 or args.graph_kernels < 1:
        p.error("--launches, --repeats, --spin-ms and --graph-kernels must be positive")
    return args


def measure(torch, args, cycles, launch):
    """Each launch's host time (ns) after a spin kernel, and how many returned before it ended."""
    torch.cuda._sleep(cycles)
    times = []
    for _ in range(args.launches):
        t0 = time.perf_counter_ns()
        launch()
        times.append(time.perf_counter_ns() - t0)
    torch.cuda.synchronize()
    # The first launch that waited for the spin kernel: far longer than any queued one.
    blocked = next((i for i, t in enumerate(times) if t > 0.25 * args.spin_ms * 1e6), None)
    return {"queued_before_blocking": blocked, "launch_ns": times}


def measure_graph(torch, args, cycles, x):
    """The measurement with a captured graph of --graph-kernels kernels replayed, and None; or None and
    why not, where graphs do not work (the eager measurement then stands alone)."""
    try:
        g = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            with torch.cuda.graph(g, stream=stream):
                for _ in range(args.graph_kernels):
                    x.add_(1)
        torch.cuda.current_stream().wait_stream(stream)
        torch.cuda.synchronize()
        return [measure(torch, args, cycles, g.replay) for _ in range(args.repeats)], None
    except Exception as e:  # a driver without graphs: the eager measurement stands alone
        return None, str(e).splitlines()[0] if str(e) else type(e).__name__


def summary(args, runs):
    """The depth each repeat measured, and the median of the launches that returned quickly."""
    depths = [r["queued_before_blocking"] for r in runs]
    quick = [t for r in runs for t in r["launch_ns"][: r["queued_before_blocking"] or args.launches]]
    quick.sort()
    return {"queued_before_blocking": depths,
            "median_quick_launch_us": quick[len(quick) // 2] / 1e3 if quick else None}


def result(torch, device, args, cycles, eager, graph, graph_error):
    """The file's content: the machine, the versions, the command, the settings and both measurements."""
    return {
        "what": "launches queued behind a spin kernel before a launch call blocked",
        "machine": {"gpu": torch.cuda.get_device_name(device), "cpu": platform.processor() or platform.machine(),
                    "logical_cpus": os.cpu_count(), "os": platform.platform()},
        "versions": {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
                     "driver": driver_version()},
        "command": [os.path.basename(sys.argv[0])] + sys.argv[1:],
        "settings": {"launches": args.launches, "repeats": args.repeats, "spin_ms": args.spin_ms,
                     "spin_cycles": cycles, "graph_kernels": args.graph_kernels},
        "eager": {"kernel": "x.add_(1) on one float", **summary(args, eager), "runs": eager},
        "graph": ({"kernels_per_launch": args.graph_kernels, **summary(args, graph), "runs": graph}
                  if graph else {"error": graph_error}),
    }


def main():
    args = options()
    try:
        import torch
    except ImportError as e:
        sys.exit(f"error: launch_queue: torch cannot be imported ({e}): run it with the Python that has torch")
    if not torch.cuda.is_available():
        sys.exit("error: launch_queue: torch finds no CUDA device (the measurement needs one)")
    device = torch.device("cuda:0")
    x = torch.zeros(1, device=device)
    x.add_(1)
    torch.cuda.synchronize()
    cycles = spin_cycles(torch, args.spin_ms)

    eager = [measure(torch, args, cycles, lambda: x.add_(1)) for _ in range(args.repeats)]
    graph, graph_error = measure_graph(torch, args, cycles, x)
    out = result(torch, device, args, cycles, eager, graph, graph_error)
    tmp = f"{args.out}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(out, f)
        f.write("\n")
    os.replace(tmp, args.out)
    print(f"eager: {out['eager']['queued_before_blocking']} launches queued before one blocked "
          f"(median quick launch {out['eager']['median_quick_launch_us']:.1f} µs)")
    if graph:
        print(f"graph of {args.graph_kernels} kernels: {out['graph']['queued_before_blocking']} replays queued")
    else:
        print(f"graph: not measured ({graph_error})")


def spin_cycles(torch, ms):
    """The spin kernel's cycle count for `ms` milliseconds on this device, timed once."""
    probe = 10_000_000
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    torch.cuda._sleep(probe)
    end.record()
    torch.cuda.synchronize()
    per_ms = probe / max(start.elapsed_time(end), 1e-3)
    return int(per_ms * ms)


def driver_version():
    try:
        import ctypes
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
        if nvml.nvmlInit_v2() != 0:
            return None
        buf = ctypes.create_string_buffer(80)
        return buf.value.decode() if nvml.nvmlSystemGetDriverVersion(buf, 80) == 0 else None
    except OSError:
        return None


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("launch_queue: interrupted", file=sys.stderr, flush=True)
        sys.exit(130)
