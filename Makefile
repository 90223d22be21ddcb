# Two entry points for a fresh machine: `make pipeline` (the whole pipeline, builtin corpus) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel of torch; pip takes it from local disk where a machine has one. Users with CUDA install their own.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup pipeline test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test,bench]"
	touch $@

setup: $(VENV)/.installed

pipeline: setup
	@test -d .git || git init -q
	@test -d .dvc || $(BIN)/dvc init -q
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: setup
	$(BIN)/python -m pytest -n 2 --dist loadgroup

bench: setup
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .cache
