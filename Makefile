# kdecay: set-up and entry points. Every target creates .venv on first use, and every target
# puts .venv/bin first on PATH, so the `kdecay ...` commands of dvc.yaml resolve in a plain
# shell (no activated venv). `dvc ...` by hand: `source .venv/bin/activate` first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.kdecay-installed
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: repro test test-fast test-python lint format smoke smoke-figures figures bench proof \
        proof-cpu plan clean-venv

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "make: kdecay needs Python >= 3.11, but PYTHON=$(PYTHON) is $$($(PYTHON) -V 2>/dev/null || echo 'not found'); pick another: make PYTHON=python3.12 $(MAKECMDGOALS)" >&2; \
	  exit 2; }
	@test -x $(BIN)/python || { \
	  echo "creating $(VENV) with $$($(PYTHON) -V) ($(PYTHON))"; \
	  $(PYTHON) -m venv $(VENV) || { \
	    echo "make: '$(PYTHON) -m venv' failed; on Debian/Ubuntu: apt install python3-venv" >&2; \
	    rm -rf $(VENV); exit 2; }; }
	@echo "installing kdecay and its dependencies into $(VENV): torch (the CUDA build is several GB) and DVC take minutes the first time; pip's progress follows"
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev,ray,slurm]"
	touch $(STAMP)

## run the whole reproduction (every run of both appendix tables, tables, figures):
## `kdecay check` validates params.yaml and refuses full-size runs without a GPU first; then
## look after look (docs/statistics.md): train, `kdecay look --apply` (exit 3: it added seeds
## to the undecided claims), train again, until every claim is decided or at its last look.
## TRAIN="kdecay sweep" (Ray) or TRAIN="kdecay sweep --engine slurm ..." trains each look on
## an engine. Finished runs keep their last checkpoint until dvc.lock records them.
TRAIN ?= dvc repro
repro: $(STAMP)
	kdecay check
	$(TRAIN)
	@while :; do \
	  kdecay look --apply; status=$$?; \
	  [ $$status = 3 ] || break; \
	  echo "make repro: training the next look ($(TRAIN))"; \
	  $(TRAIN) || exit $$?; \
	done; [ $$status = 0 ] || exit $$status
	kdecay clean-checkpoints

# two pytest workers, each test file on one (its module fixtures are built once): the slow
# tests wait on subprocesses, DVC, Ray and SLURM much of the time; the longest files start
# first (tests/conftest.py LONGEST_FIRST)
PYTEST := python -m pytest -n 2 --dist loadfile --no-loadscope-reorder

## the whole test suite (its duration: README, "Quick start"); SLURM, LaTeX and GPU tests
## skip in one line where the machine lacks them (CI has SLURM and LaTeX)
test: $(STAMP)
	$(PYTEST)

## the tests not marked slow: everyday work
test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

## what CI runs on each further Python (make test-python PYTHON=python3.13 VENV=.venv-3.13):
## the front door (make repro, make figures in a fresh copy) and the CLI and params tests;
## the rest of the suite runs once, on Debian's own Python, in make test
FRONT_DOOR_TESTS := tests/test_front_door.py tests/test_cli.py tests/test_config.py
test-python: $(STAMP)
	$(PYTEST) -m "not slow or front_door" $(FRONT_DOOR_TESTS)

## ruff lint + format check
lint: $(STAMP)
	ruff check src tests benchmarks
	ruff format --check src tests benchmarks

format: $(STAMP)
	ruff format src tests benchmarks
	ruff check --fix src tests benchmarks

## the whole pipeline on synthetic CIFAR archives with tiny models, in the scratch workspace
## smoke/ (duration: README); a rerun resumes it, and does nothing when it is up to date
smoke: $(STAMP)
	kdecay smoke --workdir smoke --fuse 4

## rebuild the smoke workspace's summary, tables and figures from its finished runs
smoke-figures: $(STAMP)
	@test -f smoke/dvc.lock || { echo "make smoke-figures: no smoke workspace yet: run 'make smoke'" >&2; exit 2; }
	cd smoke && dvc repro --single-item aggregate tables figures

## rebuild summary, tables and figures from the finished runs (DVC decides what is stale;
## --single-item: never starts training)
figures: $(STAMP)
	@test -d results/runs || { \
	  echo "make figures: no finished runs in results/runs yet: 'make repro' trains them (GPU);" \
	    "'make smoke' runs the whole pipeline on synthetic data (figures in smoke/paper_figures)" >&2; \
	  exit 2; }
	dvc repro --single-item aggregate tables figures

## runs, epochs, optimizer steps and estimated GPU-hours of params.yaml
plan: $(STAMP)
	kdecay plan

## GPU throughput benchmark against a standard PyTorch pipeline
bench: $(STAMP)
	kdecay bench

## on a GPU machine: the CUDA checks and the benchmark of every model in one call, the report
## written after each step to results/proof/ (README "The GPU proof")
proof: $(STAMP)
	kdecay proof --out results/proof

## the same sequence on this CPU with tiny sizes: a dry run of the proof (results/proof-cpu/)
proof-cpu: $(STAMP)
	kdecay proof --device cpu --out results/proof-cpu

clean-venv:
	rm -rf $(VENV)
