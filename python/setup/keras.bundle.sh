# The keras row in run.sh: whether this machine's python imports keras on its own jax (a CUDA jax
# on a GPU machine), with the wheels on the path; a machine without a jax gets one line that says
# so, and the keras rows fail as rows with their reason.
if ! keras_versions="$(KERAS_BACKEND="${KERAS_BACKEND:-jax}" "$python" -c 'import jax, keras; print(f"keras {keras.__version__}, jax {jax.__version__} on {jax.devices()[0].platform}")' 2>&1)"; then
  echo "warning: the keras row cannot run here (it needs a jax; its rows will fail): $(echo "$keras_versions" | tail -1)" >&2
else
  echo "keras row: $(echo "$keras_versions" | tail -1)" >&2
fi
