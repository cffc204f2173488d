#!/usr/bin/env bash
# The whole GPU picture (docs/results.md, docs/sweeps-and-tuning.md), for a GPU machine without Rust,
# in steps ordered by value that fit short sessions: run from the repository root with the bundle
# (`cargo xtask bundle --cuda`, in .bundle/) and an MNIST folder beside it. Every step has its own
# time limit and writes into one results folder; a step cut short leaves its finished runs, and
# running the script again (it passes --resume) runs only what is missing. With DEADLINE (seconds
# for this call), a step gets at most the time left and a step that cannot start in time is left for
# the next call, so that the script always ends by packing what it has into one file.
#
#   scripts/gpu.sh OUT MNIST_DIR [STEP...]
#
# OUT: where the results folder and results.tar.gz go. STEP (default: all of them, in this order):
#   profiles:     (a) both models on CUDA, 3 epochs, batch 32, every row in the idiomatic and the
#                 tuned profile (PyTorch, tch and Keras, and candle's and burn's captured steps with
#                 their device-side Adam), with memory, energy and the device's busy share; tag
#                 `tuned`. Each tuned report says whether its step was replayed as a CUDA graph.
#   graph-steps:  tch's tuned LeNet2 with 1, 3, 5, 15 and 25 steps per CUDA graph
#                 (LENET_TCH_GRAPH_STEPS), 3 epochs each; tags `graph-steps-K`.
#   kernels:      (b) the kernel pass of every run of `profiles` (`compare --kernels`, 2 epochs):
#                 kernels, copies and device time per step and the device floor, joined to `tuned`'s
#                 tables; the bundle's counter, liblenet_kernels.so.
#   launch-queue: how many launches CUDA queues before a launch blocks (python/launch_queue.py, a few
#                 seconds), into OUT/probes/: why the host share cannot tell who waits.
#   sweep-lenet2, sweep-lenet3: (c), (d) that model on CUDA, every row, batch sizes 32, 256, 2048 and
#                 8192, 2 epochs each, with memory, energy and busy share (burn compiles and
#                 autotunes once per batch size; its caches persist between points).
#   bench:        (e) the criterion benches on CUDA (`cargo xtask bundle --cuda --bench`, in
#                 .bundle-bench/ or $BENCH_BUNDLE: its bench.sh), into OUT/bench.
#   epochs-10:    (f) the recipe's 10 epochs, every row, both models; tag `10-epochs`.
#   threads:      (g) the CPU thread series on this machine's cores, batch 32, LeNet2: PyTorch and tch.
#   tuned-lenet2, tuned-lenet3, warm-caches, compare: earlier steps, kept for their folders:
#                 `profiles` for one model; LeNet2 again for the Rust rows with warm caches (after
#                 `profiles`); the comparison at 3 epochs in the `3-epochs` folder.
#
# Two 10-minute calls: `DEADLINE=560 scripts/gpu.sh OUT MNIST_DIR` twice (the same OUT: the second
# call resumes where the first stopped). STEP_SECONDS caps every step (default 540).
# DRY_RUN=1: the same steps on the CPU on 640 images, to try the script on a machine without a GPU
# (with BUNDLE=DIR from `scripts/cpu-bundle.sh DIR` where there is no CUDA bundle, and PYTHON=the
# Python with torch for the launch-queue step).
set -uo pipefail
all=(profiles graph-steps kernels launch-queue sweep-lenet2 sweep-lenet3 bench epochs-10 threads)
joined="${all[*]}"
usage="usage: scripts/gpu.sh OUT MNIST_DIR [${joined// /|}|tuned-lenet2|tuned-lenet3|warm-caches|compare ...]"
out="${1:?$usage}"
data="${2:?$usage}"
shift 2
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=("${all[@]}")
here="$(cd "$(dirname "$0")/.." && pwd)"
bundle="${BUNDLE:-$here/.bundle}"
bench_bundle="${BENCH_BUNDLE:-$here/.bundle-bench}"
python="${PYTHON:-python3}"
for s in "${steps[@]}"; do
  case "$s" in
    profiles | graph-steps | kernels | launch-queue | sweep-lenet2 | sweep-lenet3 | bench | epochs-10 | threads | \
      tuned-lenet2 | tuned-lenet3 | warm-caches | compare) ;;
    *) echo "error: unknown step '$s'; $usage" >&2; exit 2 ;;
  esac
  if [ "$s" = bench ]; then
    # The bench bundle may be left for a later call (it travels on its own).
    [ -x "$bench_bundle/bench.sh" ] || echo "warning: no bench bundle at $bench_bundle: step bench will be skipped" >&2
  elif [ ! -x "$bundle/run.sh" ]; then
    echo "error: no bundle at $bundle (cargo xtask bundle --cuda)" >&2
    exit 1
  fi
done
mkdir -p "$out"
log="$out/gpu-log.txt"
limit="${STEP_SECONDS:-540}"
start=$(date +%s)
# What packing the results takes at the end, kept free of the deadline.
reserve=15

device=cuda
dry=()
if [ -n "${DRY_RUN:-}" ]; then
  device=cpu
  dry=(--limit 640)
fi

# The seconds step NAME may take: its cap, or what is left before the deadline; 0 when too little is
# left to start it (under a minute: its first runs would not finish).
seconds_for() {
  local left
  if [ -z "${DEADLINE:-}" ]; then
    echo "$limit"
    return
  fi
  left=$((DEADLINE - ($(date +%s) - start) - reserve))
  if [ "$left" -lt 60 ]; then
    echo 0
  elif [ "$left" -lt "$limit" ]; then
    echo "$left"
  else
    echo "$limit"
  fi
}

limited() { # NAME COMMAND...: COMMAND under the step's time limit, logged
  local name="$1" seconds status
  shift
  seconds=$(seconds_for)
  if [ "$seconds" -eq 0 ]; then
    echo "== $name: not started, too little time left before the deadline (run the script again)" | tee -a "$log"
    return
  fi
  echo "== $name ($(date -u +%H:%M:%S), at most ${seconds} s)" | tee -a "$log"
  timeout --signal=INT --kill-after=20 "$seconds" "$@" >>"$log" 2>&1
  status=$?
  echo "== $name ended with status $status$([ $status -eq 124 ] && echo ' (its time limit: run the script again to finish it)')" | tee -a "$log"
}

step() { # NAME ARGS...: one compare, resumable
  local name="$1"
  shift
  limited "$name" "$bundle/run.sh" "$out/results" --data-dir "$data" --resume "${dry[@]}" "$@"
}

profiles() { # MODELS
  step "$1 on $device, both profiles" --device "$device" --models "$1" \
    --frameworks pytorch,tch,keras,candle,burn --profile idiomatic,tuned --epochs 3 --tag tuned
}

for s in "${steps[@]}"; do
  case "$s" in
    profiles)
      profiles lenet2,lenet3 ;;
    tuned-lenet2 | tuned-lenet3)
      profiles "${s#tuned-}" ;;
    graph-steps)
      for k in 1 3 5 15 25; do
        LENET_TCH_GRAPH_STEPS=$k step "tch tuned, $k steps per graph" --device "$device" \
          --models lenet2 --frameworks tch --profile tuned --epochs 3 --tag "graph-steps-$k"
      done ;;
    kernels)
      counter="$bundle/liblenet_kernels.so"
      step "kernel pass, both profiles" --device "$device" --models lenet2,lenet3 \
        --frameworks pytorch,tch,keras,candle,burn --profile idiomatic,tuned --epochs 2 --tag tuned \
        --kernels "$counter" ;;
    launch-queue)
      mkdir -p "$out/probes"
      limited "launch queue" "$python" "$bundle/launch_queue.py" --out "$out/probes/launch-queue.json" ;;
    sweep-lenet2 | sweep-lenet3)
      step "$s on $device" --sweep --device "$device" --models "${s#sweep-}" --batch-size 32,256,2048,8192 ;;
    bench)
      if [ -x "$bench_bundle/bench.sh" ]; then
        limited "bench" "$bench_bundle/bench.sh" "$out/bench" "$data"
      else
        echo "== bench: skipped, no bench bundle at $bench_bundle" | tee -a "$log"
      fi ;;
    epochs-10)
      step "10 epochs on $device" --device "$device" --epochs 10 --tag 10-epochs ;;
    threads)
      step "threads on the CPU" --sweep --device cpu --models lenet2 --frameworks pytorch,tch --batch-size 32 ;;
    warm-caches)
      step "LeNet2 again, caches warm" --device "$device" --models lenet2 \
        --frameworks rust --epochs 2 --tag warm-caches ;;
    compare)
      step "the comparison on $device" --device "$device" --epochs 3 --tag 3-epochs ;;
  esac
done
parts=(gpu-log.txt)
for d in results bench probes; do
  [ -d "$out/$d" ] && parts+=("$d")
done
tar -czf "$out/results.tar.gz" -C "$out" "${parts[@]}"
echo "packed $out/results.tar.gz ($(( $(date +%s) - start )) s)"
