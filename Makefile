# kdecay: set-up and entry points. Every target creates .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kdecay-installed

.PHONY: repro test lint format smoke figures bench clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## run the whole reproduction (every run of both appendix tables, tables, figures)
repro: $(STAMP)
	$(BIN)/dvc repro

## run the test suite
test: $(STAMP)
	$(BIN)/python -m pytest

## ruff lint + format check
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

## the whole pipeline on synthetic CIFAR archives with tiny models (a few minutes on a CPU)
smoke: $(STAMP)
	$(BIN)/kdecay smoke --workdir smoke

## rebuild summary, tables and figures from the finished runs (DVC decides what is stale;
## --single-item: never starts training)
figures: $(STAMP)
	$(BIN)/dvc repro --single-item aggregate tables figures

## GPU throughput benchmark against a standard PyTorch pipeline
bench: $(STAMP)
	$(BIN)/kdecay bench

clean-venv:
	rm -rf $(VENV)
