# emolib — two commands: `make dashboard` and `make test`. Both install what they need first.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
# TensorFlow build: the CUDA one where an NVIDIA GPU is present, the CPU one elsewhere;
# TF=none keeps a TensorFlow that is already there (the NVIDIA container).
TF      ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
comma   := ,
EXTRAS  := $(if $(filter none,$(TF)),api$(comma)dev$(comma)ray,$(TF)$(comma)api$(comma)dev$(comma)ray)
STAMP   := $(VENV)/.installed-$(TF)
PORT    ?= 8866
export EMOLIB_SHARED ?= $(abspath ../shared)

.PHONY: setup dashboard test lint browser serve clean-cache

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e ".[$(EXTRAS)]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

# Debian's Chromium for the browser tests (never a downloaded browser build).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium ffmpeg fonts-noto-color-emoji >/dev/null; }
	@command -v ffmpeg >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; }

dashboard: $(STAMP)
	@echo "emolib dashboard on http://localhost:$(PORT)"
	$(VENV)/bin/voila dashboards/emotions.ipynb --no-browser --port=$(PORT) --Voila.ip=127.0.0.1

test: $(STAMP) browser
	$(PY) -m pytest -p no:cacheprovider --nbval-lax tests notebooks dashboards

lint: $(STAMP)
	$(VENV)/bin/ruff check emolib tests bench notebooks dashboards

serve: $(STAMP)
	$(PY) -m emolib serve --port 5000
