#!/usr/bin/env bash
# Runs the lenet-compare comparison (or, with `serve` first, the serving measurement, on the model
# files in serve-models/ beside this script) with the binaries beside this script, against this
# machine's own torch (the version the binaries link) and NVIDIA libraries.
# Usage: ./run.sh RESULTS_DIR [compare options...]
#        ./run.sh serve RESULTS_DIR [serve options...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
task=compare
task_args=()
if [ "${1:-}" = serve ]; then
  task=serve
  task_args=(--model-dir "$here/serve-models")
  shift
fi
out="${1:?usage: run.sh [serve] RESULTS_DIR [compare or serve options]}"
shift
PRELUDE
PYTHON_ROWS
exec "$here/xtask" "$task" "${task_args[@]}" --lenet "$here/lenet"LENET_FOR \
  --python "$python" --scripts "$here" --out "$out" "$@"
