# The Python rows' wheels (python/setup/*.bundle.txt): each package that this machine's python
# lacks, and those marked `always` (PINNED) whatever it has, on the Python path.
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
ROWS
