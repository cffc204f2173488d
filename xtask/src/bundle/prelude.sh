python="${PYTHON:-python3}"
site="$("$python" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')"
version="$("$python" -c 'import torch; print(torch.__version__)')"
case "$version" in
  TORCH_VERSION*) ;;
  *) echo "error: $python has torch $version, the bundle needs TORCH_VERSION" >&2; exit 1 ;;
esac
libs="$site/torch/lib"
[ -d /usr/local/nvidia/lib64 ] && libs="$libs:/usr/local/nvidia/lib64"
for d in "$site"/nvidia/*/lib "$site"/nvidia/cu13/lib; do
  [ -d "$d" ] && libs="$libs:$d"
done
FRAMEWORKS
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
