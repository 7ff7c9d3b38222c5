#!/usr/bin/env bash
# Install emolib on top of NVIDIA's TensorFlow container without replacing NVIDIA's TensorFlow.
#
# 1. Freeze the image's own tensorflow / keras / numpy (and tf-keras, if any) into a constraints file.
# 2. Make a venv at $VENV that sees the image's packages (--system-site-packages).
# 3. pip install -e '.[full,dev]' into it under those constraints: no cpu/gpu extra, so no PyPI TensorFlow;
#    if emolib's ranges cannot be met by the image's versions, pip stops with a clear conflict.
# 4. Mark the venv as set up for `make` (stamp .installed-gpu), so `make test` / `make dashboard` use it.
# PIP_CONSTRAINT (devcontainer.json) points at the same file: later `pip install`s in the container respect it.
# Re-run this script after changing pyproject.toml (plain `make setup` would ask for the [gpu] extra).
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV="${VENV:-/opt/emolib-venv}"
CONSTRAINTS="${PIP_CONSTRAINT:-/opt/emolib-constraints.txt}"  # devcontainer.json sets PIP_CONSTRAINT
SYSTEM_PYTHON="$(command -v python3)"

# `pip list --format=freeze` prints name==version even for packages installed from local wheels
# (where `pip freeze` would print `name @ file://...`).
env -u PIP_CONSTRAINT "$SYSTEM_PYTHON" -m pip list --format=freeze --disable-pip-version-check \
  | grep -iE '^(tensorflow|keras|numpy|tf-keras|tf_keras)==' > "$CONSTRAINTS" || true
if ! grep -qi '^tensorflow==' "$CONSTRAINTS"; then
  echo "post-create: no tensorflow found in $SYSTEM_PYTHON; is this the NVIDIA TensorFlow image?" >&2
  exit 1
fi
echo "post-create: pinned from the image:"; sed 's/^/  /' "$CONSTRAINTS"

# --without-pip: the venv uses the image's pip through the system site-packages (and needs no python3-venv).
test -x "$VENV/bin/python" || "$SYSTEM_PYTHON" -m venv --system-site-packages --without-pip "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$CONSTRAINTS" -e '.[full,dev]'
"$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
touch "$VENV/.installed-gpu"

# The freshly installed packages must not have moved NVIDIA's versions.
env -u PIP_CONSTRAINT "$VENV/bin/python" -m pip list --format=freeze --disable-pip-version-check \
  | grep -iE '^(tensorflow|keras|numpy|tf-keras|tf_keras)==' | diff -i "$CONSTRAINTS" - \
  || { echo "post-create: NVIDIA's TensorFlow stack was changed (see diff above)" >&2; exit 1; }

"$VENV/bin/python" -m emolib doctor || true
