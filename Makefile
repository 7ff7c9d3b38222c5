# emolib — two commands: `make dashboard` and `make test`. Both install what they need first.
# Keras backend of the environment: BACKEND=tensorflow (default, in .venv), jax (.venv-jax) or torch
# (.venv-torch). One backend per venv (they have crashed together); the venv records its own backend
# (see emolib/backend.py), so its bin/python runs it whatever ~/.keras/keras.json says.
BACKEND ?= tensorflow
BACKENDS := tensorflow jax torch
$(if $(filter $(BACKEND),$(BACKENDS)),,$(error BACKEND must be one of $(BACKENDS), not '$(BACKEND)'))
venv_of = $(if $(filter tensorflow,$(1)),.venv,.venv-$(1))
VENV    := $(call venv_of,$(BACKEND))
PYTHON  ?= python3
PY      := $(VENV)/bin/python
# CUDA builds where an NVIDIA GPU is present, CPU builds elsewhere.
DEVICE  := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
# TensorFlow build: TF=gpu|cpu (default: DEVICE); TF=none keeps a TensorFlow that is already there
# (the NVIDIA container).
TF      ?= $(DEVICE)
comma   := ,
extra_tensorflow := $(if $(filter none,$(TF)),,$(TF))
extra_jax        := $(if $(filter gpu,$(DEVICE)),jax-cuda,jax)
extra_torch      := torch
# The full install (the `full` extra: training, notebooks, dashboard) with the backend, the ONNX export
# and the test tools; `pip install emolib` alone is the light install (predict and serve on ONNX Runtime).
extras_of = full$(comma)$(if $(extra_$(1)),$(extra_$(1))$(comma))export$(comma)dev$(comma)ray
stamp_of  = $(call venv_of,$(1))/.installed-$(or $(extra_$(1)),none)
STAMP   := $(call stamp_of,$(BACKEND))
PORT    ?= 8866
# more options of `emolib dashboard` (API port, kernel culling, preheated pool), e.g. "--cull-idle 300"
DASHBOARD_ARGS ?=
export EMOLIB_SHARED ?= $(abspath ../shared)

.PHONY: setup dashboard lab test test-torch lint browser serve clean-cache

setup: $(STAMP)

# One rule per backend's venv: `make setup` builds the one BACKEND names; `make test` also builds JAX's.
define venv_rule
$(call stamp_of,$(1)): pyproject.toml
	@test -x $(call venv_of,$(1))/bin/python || $(PYTHON) -m venv $(call venv_of,$(1))
	$(call venv_of,$(1))/bin/python -m pip install -q --disable-pip-version-check -e ".[$(call extras_of,$(1))]"
	$(call venv_of,$(1))/bin/python -m emolib backend $(1)
	$(call venv_of,$(1))/bin/python -m ipykernel install --sys-prefix --name python3 --env KERAS_BACKEND $(1) >/dev/null
	@touch $$@
endef
$(foreach name,$(BACKENDS),$(eval $(call venv_rule,$(name))))

# Debian's Chromium for the browser tests (never a downloaded browser build).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium ffmpeg fonts-noto-color-emoji >/dev/null; }
	@command -v ffmpeg >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; }

dashboard: $(STAMP)
	$(PY) -m emolib dashboard --port $(PORT) $(DASHBOARD_ARGS)

# JupyterLab on the repository with the project's kernel (python3 of $(VENV), installed by setup).
LAB_PORT ?= 8888
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --no-browser --port=$(LAB_PORT) --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=$(CURDIR) \
		$(if $(filter 0,$(shell id -u)),--allow-root)

# The backend-sensitive tests (marker `backend`, see pyproject.toml) run again on JAX in `make test`,
# and on PyTorch with `make test-torch` (its CUDA-enabled wheels, 6.5 GB installed, keep it out of `make test`).
BACKEND_TESTS := -m backend tests

test: $(STAMP) $(call stamp_of,jax) browser
	$(PY) -m pytest -p no:cacheprovider --durations=30 --nbval-lax tests notebooks dashboards
	$(call venv_of,jax)/bin/python -m pytest -p no:cacheprovider --durations=15 $(BACKEND_TESTS)

test-torch: $(call stamp_of,torch)
	$(call venv_of,torch)/bin/python -m pytest -p no:cacheprovider $(BACKEND_TESTS)

lint: $(STAMP)
	$(VENV)/bin/ruff check emolib tests bench notebooks dashboards

serve: $(STAMP)
	$(PY) -m emolib serve --port 5000
