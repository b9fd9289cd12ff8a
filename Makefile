# Two commands matter (see README): `make demo` sets everything up and runs the whole
# pipeline; `make test` runs the test suite. Both create the virtual environment first.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.negrec-installed

.PHONY: setup demo test lint format bench

setup: $(STAMP)

# torch first, pinned: pip then takes the CPU build from this machine's local wheel
# instead of resolving a multi-GB CUDA build for the torch range in pyproject.toml.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/negrec demo

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python benchmarks/train_step.py --json
