#!/usr/bin/env bash
# The whole GPU picture (docs/results.md, docs/sweeps-and-tuning.md), for a GPU machine without Rust,
# in steps ordered by value that fit one short call: run from the repository root with the bundle
# (`cargo xtask bundle --cuda`, in .bundle/) and an MNIST folder.
#
#   DEADLINE=SECONDS scripts/gpu.sh OUT MNIST_DIR [STEP...]
#
# DEADLINE (required): the seconds this call may take, counted from the script's start: the device
# time left less the machine's start and the transfers. A step gets at most the time left before
# it (less a reserve for stopping a step and packing), and one that cannot start in time is left for
# the next call. There is no fixed call length.
#
# What comes back: OUT/results.tar.gz (the results folder, the probes, the bench output, the log)
# and OUT/gpu-log.txt, nothing else. The work itself happens in WORK (default target/gpu-work), and
# the pack is rewritten the moment each step ends, so a call cut short loses at most the step then
# running. A second call, on the same machine or a fresh one, resumes from the first's pack:
#
#   RESUME=results.tar.gz DEADLINE=SECONDS scripts/gpu.sh OUT MNIST_DIR
#
# unpacks it into WORK first; a step that ended in an earlier call is not run again, and a step cut
# short runs again with `compare --resume`, which keeps every run that finished (and every run that
# failed: a failure costs its time once).
#
# STEP (default: all of them, in this order):
#   smoke:        first, about two minutes over what has never run on a GPU: LeNet2, one epoch on
#                 6,400 images, candle and burn in both profiles (their captured steps), tch tuned
#                 with 5 steps per CUDA graph, and one kernel pass (tch tuned, the kernel counter);
#                 tag `smoke`.
#   serve:        the serving measurement on CUDA (`run.sh serve`, never run on a GPU): every row
#                 that serves on CUDA, both models, from the bundle's model files (the CPU results'
#                 weights), a shorter measurement than the CPU's (1,000 single images, batch 256
#                 for 1 s, 2 cold starts), into the GPU's serve/ folder; at most SERVE_SECONDS
#                 (default 240) of the call.
#   profiles:     both models on CUDA, 3 epochs, batch 32, every row in the idiomatic and the tuned
#                 profile, with memory, energy and the device's busy share; tag `tuned`. Each tuned
#                 report says whether its step was replayed as a CUDA graph.
#   kernels:      the kernel pass of every run of `profiles` (`compare --kernels`, 2 epochs), joined
#                 to `tuned`'s tables; the bundle's counter, liblenet_kernels.so.
#   graph-steps:  tch's tuned LeNet2 with 1, 3, 5, 15 and 25 steps per CUDA graph
#                 (LENET_TCH_GRAPH_STEPS), 3 epochs each; tags `graph-steps-K`.
#   launch-queue: how many launches CUDA queues before a launch blocks (python/launch_queue.py, a few
#                 seconds), into probes/.
#   sweep-lenet2, sweep-lenet3: that model on CUDA, every row, batch sizes 32, 256, 2048 and 8192,
#                 2 epochs each (burn compiles and autotunes once per batch size).
#   bench:        the criterion benches on CUDA (`cargo xtask bundle --cuda --bench`, in
#                 .bundle-bench/ or $BENCH_BUNDLE: its bench.sh), into bench/.
#   epochs-10:    the recipe's 10 epochs, every row, both models; tag `10-epochs`.
#   threads:      the CPU thread series on this machine's cores, batch 32, LeNet2: PyTorch and tch.
#   tuned-lenet2, tuned-lenet3, warm-caches, compare: earlier steps, kept for their folders.
#
# STEP_SECONDS caps every step (default 540); RUN_SECONDS is each run's time limit (compare's
# --run-timeout; default 240, 150 in the smoke step), so that a hung run costs at most that.
# RESERVE_SECONDS (default 30) is kept free before the deadline, and a step starts only with
# MIN_STEP_SECONDS (default 60) left (the script's own test sets both small).
# DRY_RUN=1: the same steps on the CPU on 640 images, to try the script on a machine without a GPU
# (with BUNDLE=DIR from `scripts/cpu-bundle.sh DIR` where there is no CUDA bundle, and PYTHON=the
# Python with torch for the launch-queue step).
set -uo pipefail
all=(smoke serve profiles kernels graph-steps launch-queue sweep-lenet2 sweep-lenet3 bench epochs-10 threads)
joined="${all[*]}"
usage="usage: DEADLINE=SECONDS [RESUME=results.tar.gz] scripts/gpu.sh OUT MNIST_DIR [${joined// /|}|tuned-lenet2|tuned-lenet3|warm-caches|compare ...]"
out="${1:?$usage}"
data="${2:?$usage}"
shift 2
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=("${all[@]}")
case "${DEADLINE:-}" in
  '' | *[!0-9]*) echo "error: DEADLINE must be the seconds this call may take (from the device time left); $usage" >&2; exit 2 ;;
esac
here="$(cd "$(dirname "$0")/.." && pwd)"
bundle="${BUNDLE:-$here/.bundle}"
bench_bundle="${BENCH_BUNDLE:-$here/.bundle-bench}"
python="${PYTHON:-python3}"
work="${WORK:-$here/target/gpu-work}"
for s in "${steps[@]}"; do
  case "$s" in
    smoke | serve | profiles | graph-steps | kernels | launch-queue | sweep-lenet2 | sweep-lenet3 | bench | epochs-10 | threads | \
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
start=$(date +%s)
mkdir -p "$out" "$work"
if [ -n "${RESUME:-}" ]; then
  tar -xzf "$RESUME" -C "$work" || { echo "error: cannot unpack RESUME=$RESUME" >&2; exit 1; }
fi
log="$work/gpu-log.txt"
done_file="$work/steps-done.txt"
touch "$done_file"
echo "== call at $(date -u +%Y-%m-%dT%H:%M:%SZ), DEADLINE=$DEADLINE s${RESUME:+, resuming from $RESUME}" | tee -a "$log"
limit="${STEP_SECONDS:-540}"
run_seconds="${RUN_SECONDS:-240}"
# Kept free before the deadline: a step stopped at its limit gets 20 s to write its summary, then
# the pack.
reserve="${RESERVE_SECONDS:-30}"
min_start="${MIN_STEP_SECONDS:-60}"

device=cuda
dry=()
smoke_limit=(--limit 6400)
if [ -n "${DRY_RUN:-}" ]; then
  device=cpu
  dry=(--limit 640)
  smoke_limit=(--limit 640)
fi

# The pack: what every step so far finished, rewritten whole (through a temporary file, so that a
# call cut short mid-pack keeps the previous one).
pack() {
  local parts=() d
  for d in results probes bench gpu-log.txt steps-done.txt; do
    [ -e "$work/$d" ] && parts+=("$d")
  done
  tar -czf "$out/results.tar.gz.tmp" -C "$work" "${parts[@]}" && mv "$out/results.tar.gz.tmp" "$out/results.tar.gz"
  cp "$log" "$out/gpu-log.txt"
}

# The seconds a step may take: its cap, or what is left before the deadline; 0 when too little is
# left to start it (under MIN_STEP_SECONDS: its first runs would not finish).
seconds_for() {
  local left
  left=$((DEADLINE - ($(date +%s) - start) - reserve))
  if [ "$left" -lt "$min_start" ]; then
    echo 0
  elif [ "$left" -lt "$limit" ]; then
    echo "$left"
  else
    echo "$limit"
  fi
}

# NAME COMMAND...: COMMAND under the step's time limit, logged; returns 124 when it was cut short
# or could not start.
limited() {
  local name="$1" seconds status
  shift
  seconds=$(seconds_for)
  if [ "$seconds" -eq 0 ]; then
    echo "== $name: not started, too little time left before the deadline (a later call runs it)" | tee -a "$log"
    return 124
  fi
  echo "== $name ($(date -u +%H:%M:%S), at most ${seconds} s)" | tee -a "$log"
  timeout --signal=INT --kill-after=20 "$seconds" "$@" >>"$log" 2>&1
  status=$?
  echo "== $name ended with status $status$([ $status -eq 124 ] && echo ' (its time limit: a later call finishes it)')" | tee -a "$log"
  return $status
}

# NAME ARGS...: one compare, resumable, each run under its own limit.
compare() {
  local name="$1"
  shift
  limited "$name" "$bundle/run.sh" "$work/results" --data-dir "$data" --resume \
    --run-timeout "$run_seconds" "${dry[@]}" "$@"
}

profiles() { # MODELS
  compare "$1 on $device, both profiles" --device "$device" --models "$1" \
    --frameworks pytorch,tch,keras,candle,burn --profile idiomatic,tuned --epochs 3 --tag tuned
}

# Runs step NAME; returns 124 when any part of it was cut short (it is then not marked done).
run_step() {
  local s="$1" cut=0
  case "$s" in
    smoke)
      # Its own limit: the size below replaces the others' --limit.
      local dry=()
      run_seconds="${RUN_SECONDS:-150}" compare "smoke: candle and burn, both profiles" \
        --device "$device" --models lenet2 --frameworks candle,burn --profile idiomatic,tuned \
        --epochs 1 "${smoke_limit[@]}" --tag smoke || [ $? -ne 124 ] || cut=1
      LENET_TCH_GRAPH_STEPS=5 run_seconds="${RUN_SECONDS:-150}" compare "smoke: tch tuned, 5 steps per graph" \
        --device "$device" --models lenet2 --frameworks tch --profile tuned --epochs 1 \
        "${smoke_limit[@]}" --tag smoke || [ $? -ne 124 ] || cut=1
      LENET_TCH_GRAPH_STEPS=5 run_seconds="${RUN_SECONDS:-150}" compare "smoke: kernel pass of tch tuned" \
        --device "$device" --models lenet2 --frameworks tch --profile tuned --epochs 1 \
        "${smoke_limit[@]}" --tag smoke --kernels "$bundle/liblenet_kernels.so" || [ $? -ne 124 ] || cut=1 ;;
    serve)
      # Its own cap (bash's locals are seen by the functions it calls).
      local limit="${SERVE_SECONDS:-240}"
      limited "serve on $device" "$bundle/run.sh" serve "$work/results" --data-dir "$data" \
        --device "$device" --latency-images 1000 --batch-sizes 256 --throughput-seconds 1 \
        --cold-starts 2 "${dry[@]}" || [ $? -ne 124 ] || cut=1 ;;
    profiles)
      profiles lenet2,lenet3 || [ $? -ne 124 ] || cut=1 ;;
    tuned-lenet2 | tuned-lenet3)
      profiles "${s#tuned-}" || [ $? -ne 124 ] || cut=1 ;;
    graph-steps)
      for k in 1 3 5 15 25; do
        LENET_TCH_GRAPH_STEPS=$k compare "tch tuned, $k steps per graph" --device "$device" \
          --models lenet2 --frameworks tch --profile tuned --epochs 3 --tag "graph-steps-$k" || [ $? -ne 124 ] || cut=1
      done ;;
    kernels)
      compare "kernel pass, both profiles" --device "$device" --models lenet2,lenet3 \
        --frameworks pytorch,tch,keras,candle,burn --profile idiomatic,tuned --epochs 2 --tag tuned \
        --kernels "$bundle/liblenet_kernels.so" || [ $? -ne 124 ] || cut=1 ;;
    launch-queue)
      mkdir -p "$work/probes"
      limited "launch queue" "$python" "$bundle/launch_queue.py" --out "$work/probes/launch-queue.json" || [ $? -ne 124 ] || cut=1 ;;
    sweep-lenet2 | sweep-lenet3)
      compare "$s on $device" --sweep --device "$device" --models "${s#sweep-}" --batch-size 32,256,2048,8192 || [ $? -ne 124 ] || cut=1 ;;
    bench)
      if [ -x "$bench_bundle/bench.sh" ]; then
        limited "bench" "$bench_bundle/bench.sh" "$work/bench" "$data" || [ $? -ne 124 ] || cut=1
      else
        echo "== bench: skipped, no bench bundle at $bench_bundle" | tee -a "$log"
        cut=1
      fi ;;
    epochs-10)
      compare "10 epochs on $device" --device "$device" --epochs 10 --tag 10-epochs || [ $? -ne 124 ] || cut=1 ;;
    threads)
      compare "threads on the CPU" --sweep --device cpu --models lenet2 --frameworks pytorch,tch --batch-size 32 || [ $? -ne 124 ] || cut=1 ;;
    warm-caches)
      compare "LeNet2 again, caches warm" --device "$device" --models lenet2 \
        --frameworks rust --epochs 2 --tag warm-caches || [ $? -ne 124 ] || cut=1 ;;
    compare)
      compare "the comparison on $device" --device "$device" --epochs 3 --tag 3-epochs || [ $? -ne 124 ] || cut=1 ;;
  esac
  [ $cut -eq 0 ] || return 124
}

for s in "${steps[@]}"; do
  if grep -qx "$s" "$done_file"; then
    echo "== $s: ended in an earlier call, not run again" | tee -a "$log"
    continue
  fi
  if run_step "$s"; then
    echo "$s" >>"$done_file"
  fi
  pack
done
pack
echo "packed $out/results.tar.gz ($(($(date +%s) - start)) s)" | tee -a "$log"
cp "$log" "$out/gpu-log.txt"
