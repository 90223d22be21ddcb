# Two entry points for a fresh machine: `make pipeline` (both pipelines, builtin corpus) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel of torch; pip takes it from local disk where a machine has one. Users with CUDA install their own.
TORCH_SPEC ?= torch==2.13.0

LOCK_VENV := .cache/lock-venv

.PHONY: setup pipeline test bench lock clean recipe

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The locked versions (requirements.lock), then the project itself without re-resolving anything.
$(VENV)/.installed: pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip check
	touch $@

setup: $(VENV)/.installed

pipeline: setup
	@test -d .git || git init -q
	@test -d .dvc || $(BIN)/dvc init -q
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro --all-pipelines

# The whole pipeline on a dataset, as one DVC experiment: make recipe RECIPE=imdb (recipes/imdb.yaml; the data
# under data/external/, see docs/recipes.md). RECIPE_ARGS: e.g. --dry-run, --name imdb-2, --set key=value.
recipe: setup
	@test -n "$(RECIPE)" || { echo "usage: make recipe RECIPE=<name of a file in recipes/, e.g. imdb>"; exit 2; }
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m lmpipe.cli.recipe recipes/$(RECIPE).yaml $(RECIPE_ARGS)

test: setup
	$(BIN)/python -m pytest -n 2 --dist loadfile

bench: setup
	$(BIN)/python -m bench.run

# Re-resolve requirements.lock from pyproject.toml's ranges in a fresh environment (then run `make test`).
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q "$(TORCH_SPEC)"
	$(LOCK_VENV)/bin/pip install -q ".[test,bench]"
	{ sed -n '/^#/p' requirements.lock; $(LOCK_VENV)/bin/pip freeze --exclude-editable | grep -v -e '^torch==' -e '^lmpipe'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock
	rm -rf $(LOCK_VENV)

clean:
	rm -rf $(VENV) .cache
