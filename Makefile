# kdecay: set-up and entry points. Every target creates .venv on first use, and every target
# puts .venv/bin first on PATH, so the `kdecay ...` commands of dvc.yaml resolve in a plain
# shell (no activated venv). `dvc ...` by hand: `source .venv/bin/activate` first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.kdecay-installed
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: repro test test-fast lint format smoke figures bench plan clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,ray,slurm]"
	touch $(STAMP)

## run the whole reproduction (every run of both appendix tables, tables, figures):
## `kdecay check` validates params.yaml and refuses full-size runs without a GPU first;
## finished runs keep their last checkpoint until dvc.lock records them, then it is removed
repro: $(STAMP)
	kdecay check
	dvc repro
	kdecay clean-checkpoints

## the whole test suite (about 30 minutes on 2 CPU cores; 28m26s measured)
test: $(STAMP)
	python -m pytest

## the tests not marked slow (about 3 minutes): everyday work
test-fast: $(STAMP)
	python -m pytest -m "not slow"

## ruff lint + format check
lint: $(STAMP)
	ruff check src tests benchmarks
	ruff format --check src tests benchmarks

format: $(STAMP)
	ruff format src tests benchmarks
	ruff check --fix src tests benchmarks

## the whole pipeline on synthetic CIFAR archives with tiny models (a few minutes on a CPU)
smoke: $(STAMP)
	kdecay smoke --workdir smoke

## rebuild summary, tables and figures from the finished runs (DVC decides what is stale;
## --single-item: never starts training)
figures: $(STAMP)
	dvc repro --single-item aggregate tables figures

## runs, epochs, optimizer steps and estimated GPU-hours of params.yaml
plan: $(STAMP)
	kdecay plan

## GPU throughput benchmark against a standard PyTorch pipeline
bench: $(STAMP)
	kdecay bench

clean-venv:
	rm -rf $(VENV)
