# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test test-vllm-contract lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall when the package definition or the pins change.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e '.[server,worker,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/parityscope demo

test: install
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

# The vLLM adapters against the released vLLM 0.8.5 and 0.18.1 wheels (docs/VLLM.md): fetches the
# wheels once into $$PARITYSCOPE_VLLM_WHEELS (default .parityscope-cache/vllm-wheels), then checks.
CONTRACT_STAMP := $(VENV)/.installed-vllm-contract
$(CONTRACT_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[worker,dev,vllm-contract]'
	touch $(CONTRACT_STAMP)

test-vllm-contract: $(CONTRACT_STAMP)
	$(BIN)/python -m tests.vllm_contract.release
	$(BIN)/python -m pytest -n 0 -m vllm_contract tests/vllm_contract $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) test-artifacts .pytest_cache
