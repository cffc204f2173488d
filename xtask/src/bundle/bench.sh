#!/usr/bin/env bash
# Runs the criterion benches (benches/train_step.rs: one training step at batch 32 and 256, inference
# on 1,000 images) built with the CUDA features, beside this script, against this machine's own torch
# (the version the binaries link) and NVIDIA libraries: `cargo bench` where there is no Rust
# toolchain.
#
#   ./bench.sh RESULTS_DIR MNIST_DIR [GROUP]
#
# GROUP: a regular expression on the group names (train_step_b32/lenet2, inference_b1000/lenet3, ...;
# all by default). BENCH_DEVICE=cpu measures the CPU instead of CUDA. Criterion's reports go to
# RESULTS_DIR/criterion, its console output to RESULTS_DIR/bench.txt as well.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
usage="usage: bench.sh RESULTS_DIR MNIST_DIR [GROUP]"
out="${1:?$usage}"
data="${2:?$usage}"
group="${3:-}"
[ -d "$data" ] || { echo "error: no MNIST folder at $data" >&2; exit 2; }
set -e
PRELUDE
set +e
mkdir -p "$out"
export MNIST_DIR="$(cd "$data" && pwd)" CRITERION_HOME="$out/criterion"
failed=0
bench() { # BINARY FILTER: one bench binary, its benchmarks that match FILTER
  echo "== $(basename "$1") --bench '$2'" | tee -a "$out/bench.txt"
  "$1" --bench "$2" 2>&1 | tee -a "$out/bench.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || failed=1
}
case "${BENCH_DEVICE:-cuda}" in
  cuda)
BENCH_CUDA ;;
  cpu) bench "$here/train_step" "${group}.*/cpu\$" ;;
  *) echo "error: BENCH_DEVICE is cuda or cpu, not '$BENCH_DEVICE'" >&2; exit 2 ;;
esac
exit "$failed"
