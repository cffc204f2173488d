# burn-impl's part of a CUDA bundle's prelude (`cargo xtask bundle --cuda` puts every
# crates/*/bundle.sh there; it sees $python, $site, the machine torch's site-packages, and $here).
# burn's CUDA backend links some kernels against libdevice (CUDA's math library), which it looks for
# at $CUDA_PATH/nvvm/libdevice/libdevice.10.bc: use a toolkit that has it, else the copy that triton
# (which torch depends on) ships, laid out as burn expects in a folder beside this script.
has_libdevice() { [ -f "$1/nvvm/libdevice/libdevice.10.bc" ]; }
if [ -z "${CUDA_PATH:-}" ] || ! has_libdevice "$CUDA_PATH"; then
  for d in "$site/nvidia/cu13" "$site/nvidia/cuda_nvcc" /usr/local/cuda; do
    if has_libdevice "$d"; then
      export CUDA_PATH="$d"
      break
    fi
  done
fi
if [ -z "${CUDA_PATH:-}" ] || ! has_libdevice "$CUDA_PATH"; then
  triton="$site/triton/backends/nvidia/lib/libdevice.10.bc"
  if [ -f "$triton" ]; then
    mkdir -p "$here/cuda/nvvm/libdevice"
    ln -sf "$triton" "$here/cuda/nvvm/libdevice/libdevice.10.bc"
    export CUDA_PATH="$here/cuda"
  else
    echo "warning: no libdevice.10.bc here (set CUDA_PATH to a CUDA toolkit): burn's CUDA kernels" \
      "that need CUDA's math functions will fail" >&2
  fi
fi
