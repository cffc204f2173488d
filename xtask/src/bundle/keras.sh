# The keras row: keras and what it imports that this machine's python lacks, from the wheels.
pysite="$(mktemp -d)"
"$python" - "$here/wheels" "$pysite" <<'PY'
import importlib.util, pathlib, sys, zipfile
wheels, site = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
site.mkdir(exist_ok=True)
here = f"cp{sys.version_info.major}{sys.version_info.minor}"
for wheel in sorted(wheels.glob("*.whl")):
    if wheel.name.split("-")[2] not in ("py3", here):
        continue  # built for another Python: this one's own copy has to do
    with zipfile.ZipFile(wheel) as z:
        top = sorted({n.split("/")[0] for n in z.namelist() if "/" in n and not n.split("/")[0].endswith((".dist-info", ".data"))})
        pinned = wheel.name.split("-")[0] in PINNED
        if pinned or any(importlib.util.find_spec(t) is None for t in top):
            z.extractall(site)
PY
export PYTHONPATH="$pysite${PYTHONPATH:+:$PYTHONPATH}"
if ! keras_versions="$(KERAS_BACKEND="${KERAS_BACKEND:-jax}" "$python" -c 'import jax, keras; print(f"keras {keras.__version__}, jax {jax.__version__} on {jax.devices()[0].platform}")' 2>&1)"; then
  echo "warning: the keras row cannot run here (it needs a jax; its rows will fail): $(echo "$keras_versions" | tail -1)" >&2
else
  echo "keras row: $(echo "$keras_versions" | tail -1)" >&2
fi
