#!/usr/bin/env bash
# The GPU measurements of the docs (docs/results.md, docs/sweeps-and-tuning.md), for a GPU machine without Rust, in steps that fit short
# sessions: run from the repository root with the bundle (`cargo xtask bundle --cuda`, in .bundle/)
# and an MNIST folder beside it. Every step has its own time limit and writes into one results
# folder; a step cut short leaves its finished runs, and running the script again (with --resume,
# which it passes) runs only what is missing. At the end everything is packed into one file.
#
#   scripts/gpu.sh OUT MNIST_DIR [STEP...]
#
# OUT: where the results folder and results.tar.gz go. STEP (default: sweep-lenet2 sweep-lenet3
# threads, the sweep of docs/sweeps-and-tuning.md, the most useful first):
#   sweep-lenet2, sweep-lenet3: that model on CUDA, every compared framework (PyTorch, Keras, tch, candle,
#                   burn), batch sizes 32, 256, 2048 and 8192, 2 epochs each (burn compiles and
#                   autotunes once per batch size; its caches persist between points).
#   threads:        the CPU thread series on this machine's cores, batch 32, LeNet2: PyTorch and tch
#                   (burn-rayon and candle need builds of their own; see the README).
#   tuned-lenet2, tuned-lenet3: that model on CUDA, 3 epochs, batch 32 (docs/sweeps-and-tuning.md, "Each framework at
#                   its fastest"): PyTorch, tch and Keras in the idiomatic and the tuned profile,
#                   candle and burn (whose tuned settings are CPU ones) in the idiomatic one.
#   warm-caches:    LeNet2 again for every Rust row (`--frameworks rust`), 2 epochs, after a step that ran them on
#                   this machine (tuned-lenet2): their first epoch with burn's autotune cache and
#                   CUDA's kernel cache warm, beside the cold first runs (docs/cost.md).
#   compare:        the comparison on CUDA, every compared framework (keras included: JAX on the GPU),
#                   both models, 3 epochs, batch 32, into the 3-epochs folder.
#   bench:          the criterion benches on CUDA (`cargo xtask bundle --cuda --bench`, in
#                   .bundle-bench/ or $BENCH_BUNDLE: its bench.sh), into OUT/bench.
set -uo pipefail
usage="usage: scripts/gpu.sh OUT MNIST_DIR [sweep-lenet2|sweep-lenet3|threads|tuned-lenet2|tuned-lenet3|warm-caches|compare|bench ...]"
out="${1:?$usage}"
data="${2:?$usage}"
shift 2
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(sweep-lenet2 sweep-lenet3 threads)
here="$(cd "$(dirname "$0")/.." && pwd)"
bundle="${BUNDLE:-$here/.bundle}"
bench_bundle="${BENCH_BUNDLE:-$here/.bundle-bench}"
for s in "${steps[@]}"; do
  if [ "$s" = bench ]; then
    [ -x "$bench_bundle/bench.sh" ] ||
      { echo "error: no bench bundle at $bench_bundle (cargo xtask bundle --cuda --bench)" >&2; exit 1; }
  elif [ ! -x "$bundle/run.sh" ]; then
    echo "error: no bundle at $bundle (cargo xtask bundle --cuda)" >&2
    exit 1
  fi
done
mkdir -p "$out"
log="$out/gpu-log.txt"
# Seconds per step: a 10-minute session fits one model's CUDA sweep.
limit="${STEP_SECONDS:-540}"

# DRY_RUN=1: the same steps on the CPU on 640 images, to try the script on a machine without a GPU.
device=cuda
dry=()
if [ -n "${DRY_RUN:-}" ]; then
  device=cpu
  dry=(--limit 640)
fi

step() { # NAME ARGS...: one compare, under its time limit, logged
  local name="$1"
  shift
  echo "== $name ($(date -u +%H:%M:%S), at most ${limit} s)" | tee -a "$log"
  timeout --signal=INT --kill-after=20 "$limit" "$bundle/run.sh" "$out/results" \
    --data-dir "$data" --resume "${dry[@]}" "$@" >>"$log" 2>&1
  echo "== $name ended with status $?" | tee -a "$log"
}

for s in "${steps[@]}"; do
  case "$s" in
    sweep-lenet2 | sweep-lenet3)
      step "$s on CUDA" --sweep --device "$device" --models "${s#sweep-}" --batch-size 32,256,2048,8192 ;;
    threads)
      step "threads on the CPU" --sweep --device cpu --models lenet2 --frameworks pytorch,tch \
        --batch-size 32 ;;
    warm-caches)
      step "LeNet2 again, caches warm" --device "$device" --models lenet2 \
        --frameworks rust --epochs 2 --tag warm-caches ;;
    tuned-lenet2 | tuned-lenet3)
      # candle's and burn's tuned settings are CPU ones (docs/sweeps-and-tuning.md's table): on CUDA their tuned
      # run would repeat the idiomatic one, so they run in the idiomatic profile alone.
      step "$s on CUDA" --device "$device" --models "${s#tuned-}" --frameworks pytorch,tch,keras \
        --profile idiomatic,tuned --epochs 3 --tag tuned
      step "$s on CUDA (candle, burn)" --device "$device" --models "${s#tuned-}" \
        --frameworks candle,burn --epochs 3 --tag tuned ;;
    compare)
      step "the comparison on CUDA" --device "$device" --epochs 3 --tag 3-epochs ;;
    bench)
      echo "== bench ($(date -u +%H:%M:%S), at most ${limit} s)" | tee -a "$log"
      timeout --signal=INT --kill-after=20 "$limit" "$bench_bundle/bench.sh" "$out/bench" "$data" \
        >>"$log" 2>&1
      echo "== bench ended with status $?" | tee -a "$log" ;;
    *) echo "error: unknown step '$s'; $usage" >&2; exit 2 ;;
  esac
done
parts=(gpu-log.txt)
for d in results bench; do
  [ -d "$out/$d" ] && parts+=("$d")
done
tar -czf "$out/results.tar.gz" -C "$out" "${parts[@]}"
echo "packed $out/results.tar.gz"
