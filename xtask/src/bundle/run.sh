#!/usr/bin/env bash
# Runs the lenet-compare comparison with the binaries beside this script, against this machine's own
# torch (the version the binaries link) and NVIDIA libraries.
# Usage: ./run.sh RESULTS_DIR [compare options...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:?usage: run.sh RESULTS_DIR [compare options]}"
shift
PRELUDE
PYTHON_ROWS
exec "$here/xtask" compare --lenet "$here/lenet"LENET_FOR \
  --python "$python" --scripts "$here" --out "$out" "$@"
