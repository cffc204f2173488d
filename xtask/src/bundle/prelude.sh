python="${PYTHON:-python3}"
site="$("$python" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')"
version="$("$python" -c 'import torch; print(torch.__version__)')"
case "$version" in
  2.11.0*) ;;
  *) echo "error: $python has torch $version, the bundle needs 2.11.0" >&2; exit 1 ;;
esac
libs="$site/torch/lib"
[ -d /usr/local/nvidia/lib64 ] && libs="$libs:/usr/local/nvidia/lib64"
for d in "$site"/nvidia/*/lib "$site"/nvidia/cu13/lib; do
  [ -d "$d" ] && libs="$libs:$d"
done
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
unxz() { # FILE.xz -> FILE, once
  if [ ! -e "${1%.xz}" ] || [ "$1" -nt "${1%.xz}" ]; then
    "$python" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
      "$1" "${1%.xz}.tmp"
    chmod +x "${1%.xz}.tmp"
    mv "${1%.xz}.tmp" "${1%.xz}"
  fi
}
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for packed in "$here"/*.xz; do
  unxz "$packed"
done
