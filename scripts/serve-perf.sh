#!/usr/bin/env bash
# Where a served prediction's time goes in one Rust row, by function: Linux `perf` samples a `lenet
# serve` that does almost nothing but predictions of BATCH images (1: single images, the latency;
# larger: one large batch again and again, the throughput) on the CPU, then keeps the 40 functions
# with the most samples (each function's own), as a probe beside the machine's serving results:
# MACHINE/probes/serve-perf-ROW-MODEL-bBATCH.txt, MACHINE being the folder of the newest serving
# report of MODEL under OUT (not a run: the results code does not read it). A probe, not a benchmark: the shares are of the process's samples over
# all its threads, its start and its data load included (a few per cent).
#
#   scripts/serve-perf.sh ROW MODEL BATCH [THREADS] [OUT]
#
# ROW: a row of `lenet serve --list-rows`, served by target/serve-bin/lenet-FEATURE (built by
# `cargo xtask serve`) where there is one, else by target/release/lenet; MODEL: lenet2 or lenet3,
# from target/serve-models (`cargo xtask serve` trains them); THREADS: 1 by default; OUT: results.
# The test images are found as `lenet` finds them (MNIST_DIR, ...).
# Needs perf (linux-perf) and kernel.perf_event_paranoid at most 2.
set -euo pipefail
usage="usage: scripts/serve-perf.sh ROW MODEL BATCH [THREADS] [OUT]"
row="${1:?$usage}"
model="${2:?$usage}"
batch="${3:?$usage}"
threads="${4:-1}"
out="${5:-results}"
root="$(cd "$(dirname "$0")/.." && pwd)"
case "$batch$threads" in
  *[!0-9]*) echo "error: BATCH and THREADS are whole numbers; $usage" >&2; exit 2 ;;
esac
command -v perf >/dev/null || { echo "error: no perf on the PATH (the linux-perf package)" >&2; exit 1; }
file="$root/target/serve-models/$model-seed0-e2.safetensors"
[ -f "$file" ] || { echo "error: no $file (cargo xtask serve trains it)" >&2; exit 1; }
lenet="$root/target/release/lenet"
for candidate in "$root"/target/serve-bin/lenet-*; do
  if [ -x "$candidate" ] && "$candidate" serve --list-rows | grep -qx "$row"; then
    lenet="$candidate"
    break
  fi
done
"$lenet" serve --list-rows | grep -qx "$row" || { echo "error: $lenet has no row '$row'" >&2; exit 2; }
machine="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
newest="$(ls -t "$out"/*/serve/serve-*-"$model"-t1.json 2>/dev/null | head -1 || true)"
[ -n "$newest" ] || { echo "error: no serving report of $model under $out (cargo xtask serve)" >&2; exit 1; }
dir="$(dirname "$(dirname "$newest")")/probes"
mkdir -p "$dir"
report="$dir/serve-perf-$row-$model-b$batch.txt"
data="$(mktemp)"
trap 'rm -f "$data"' EXIT
# About ten seconds of predictions: single images, or the batch again and again.
if [ "$batch" -eq 1 ]; then
  measure=(--latency-images 60000 --batch-sizes 1 --throughput-seconds 0)
else
  measure=(--latency-images 1 --warmup 0 --batch-sizes "$batch" --throughput-seconds 10)
fi
args=(serve --framework "$row" --load "$file" --device cpu --threads "$threads" --cold-starts 0
  --limit 1000 "${measure[@]}")
export RAYON_NUM_THREADS="$threads"
ort="$(ls "${LENET_CACHE:-$HOME/.cache/lenet-compare}"/torch-*/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | tail -1 || true)"
[ -n "$ort" ] && export ORT_DYLIB_PATH="$ort"
log="$(mktemp)"
trap 'rm -f "$data" "$log"' EXIT
if ! perf record -q -F 1999 -g -o "$data" -- "$lenet" "${args[@]}" >"$log" 2>&1; then
  echo "error: $(basename "$lenet") ${args[*]} failed:" >&2
  tail -5 "$log" >&2
  exit 1
fi
answer="$(grep ' p50 ' "$log" | tail -1)"
{
  echo "# serve-perf: where $row's served predictions of $batch image(s) spend their time ($model, $threads thread(s))"
  echo "# command: scripts/serve-perf.sh $row $model $batch $threads"
  echo "# measured: $(basename "$lenet") ${args[*]//$root\//}"
  echo "# machine: $machine, $(nproc) logical CPUs; $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# answer: $answer"
  echo "# the share of the process's samples (all threads) of each function, itself only:"
  perf report -i "$data" --no-children --sort symbol --stdio -g none 2>/dev/null |
    awk '/^ +[0-9.]+%/ && n < 40 { sub(/[ -]+$/, ""); print; n++ }'
} >"$report"
echo "wrote $report"
