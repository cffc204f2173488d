#!/usr/bin/env bash
# The GPU sweep of the README's "Sweeps", for a GPU machine without Rust, in steps that fit short
# sessions: run from the repository root with the bundle (`cargo xtask bundle --cuda`, in .bundle/)
# and an MNIST folder beside it. Every step has its own time limit and writes into one results
# folder; a step cut short leaves its finished points, and running the script again (with --resume,
# which it passes) runs only what is missing. At the end everything is packed into one file.
#
#   scripts/gpu-sweep.sh OUT MNIST_DIR [STEP...]
#
# OUT: where the results folder and results.tar.gz go. STEP: any of lenet2, lenet3, threads
# (default: all three, in that order: the most useful first).
#   lenet2, lenet3: that model on CUDA, every compared framework (PyTorch, tch, candle, burn), batch
#                   sizes 32, 256, 2048 and 8192, 2 epochs each (burn compiles and autotunes once per
#                   batch size; its caches persist between points).
#   threads:        the CPU thread series on this machine's cores, batch 32, LeNet2: PyTorch and tch
#                   (burn-rayon and candle need builds of their own; see the README).
set -uo pipefail
out="${1:?usage: scripts/gpu-sweep.sh OUT MNIST_DIR [lenet2|lenet3|threads ...]}"
data="${2:?usage: scripts/gpu-sweep.sh OUT MNIST_DIR [lenet2|lenet3|threads ...]}"
shift 2
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(lenet2 lenet3 threads)
here="$(cd "$(dirname "$0")/.." && pwd)"
bundle="${BUNDLE:-$here/.bundle}"
[ -x "$bundle/run.sh" ] || { echo "error: no bundle at $bundle (cargo xtask bundle --cuda)" >&2; exit 1; }
mkdir -p "$out"
log="$out/sweep-log.txt"
# Seconds per step: a 10-minute session fits one model's CUDA sweep.
limit="${STEP_SECONDS:-540}"

step() { # NAME ARGS...: one compare, under its time limit, logged
  local name="$1"
  shift
  echo "== $name ($(date -u +%H:%M:%S), at most ${limit} s)" | tee -a "$log"
  timeout --signal=INT --kill-after=20 "$limit" "$bundle/run.sh" "$out/results" \
    --data-dir "$data" --resume "$@" >>"$log" 2>&1
  echo "== $name ended with status $?" | tee -a "$log"
}

for s in "${steps[@]}"; do
  case "$s" in
    lenet2 | lenet3)
      step "$s on CUDA" --sweep --device cuda --models "$s" --batch-size 32,256,2048,8192 ;;
    threads)
      step "threads on the CPU" --sweep --device cpu --models lenet2 --frameworks pytorch,tch \
        --batch-size 32 ;;
    *) echo "error: unknown step '$s' (lenet2, lenet3, threads)" >&2; exit 2 ;;
  esac
done
tar -czf "$out/results.tar.gz" -C "$out" results sweep-log.txt
echo "packed $out/results.tar.gz"
