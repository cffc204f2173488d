#!/usr/bin/env bash
# A stand-in for the GPU bundle on a machine without CUDA, to dry-run scripts/gpu.sh there: DIR/run.sh
# runs this checkout's release build (`cargo build --release --workspace`) with the Python the project
# installed, and DIR holds the kernel counter (built by `cargo xtask setup --cuda`, or a placeholder
# that is never loaded on the CPU), the Python scripts and the serving model files
# (target/serve-models, which `cargo xtask serve` trains), as the bundle does.
#
#   scripts/cpu-bundle.sh DIR [PYTHON]
#   DRY_RUN=1 BUNDLE=DIR scripts/gpu.sh OUT MNIST_DIR
set -euo pipefail
dir="${1:?usage: scripts/cpu-bundle.sh DIR [PYTHON]}"
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${2:-$(ls -d "${LENET_CACHE:-$HOME/.cache/lenet-compare}"/torch-*/bin/python 2>/dev/null | tail -1)}"
[ -x "$python" ] || { echo "error: no Python with torch (give it as PYTHON; cargo xtask setup installs one)" >&2; exit 1; }
for b in lenet xtask; do
  [ -x "$root/target/release/$b" ] || { echo "error: no target/release/$b (cargo build --release --workspace)" >&2; exit 1; }
done
mkdir -p "$dir"
counter="$root/target/kernel-counter/liblenet_kernels.so"
if [ -f "$counter" ]; then
  cp "$counter" "$dir/"
else
  echo "warning: no $counter (cargo xtask setup --cuda builds it): a placeholder, never loaded on the CPU" >&2
  echo "placeholder" >"$dir/liblenet_kernels.so"
fi
cp "$root"/python/*.py "$dir/"
mkdir -p "$dir/serve-models"
cp "$root"/target/serve-models/lenet[23]-seed0-e2.safetensors "$dir/serve-models/" ||
  { echo "error: no serving model files in target/serve-models (cargo xtask serve trains them)" >&2; exit 1; }
cat >"$dir/run.sh" <<RUN
#!/usr/bin/env bash
# scripts/cpu-bundle.sh's stand-in for the GPU bundle's run.sh.
# Usage: ./run.sh [serve] RESULTS_DIR [compare or serve options]
set -euo pipefail
task=compare
task_args=()
if [ "\${1:-}" = serve ]; then
  task=serve
  task_args=(--model-dir "$dir/serve-models")
  shift
fi
out="\${1:?usage: run.sh [serve] RESULTS_DIR [compare or serve options]}"
shift
exec "$root/target/release/xtask" "\$task" "\${task_args[@]}" --lenet "$root/target/release/lenet" \\
  --python "$python" --scripts "$dir" --out "\$out" "\$@"
RUN
chmod +x "$dir/run.sh" "$0"
echo "wrote $dir/run.sh"
