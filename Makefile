# Targets the README uses. `make` alone lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Stage commands call `python` from PATH: put the project's venv first.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.DEFAULT_GOAL := help
.PHONY: help setup run test test-fast lint format bench bench-train bench-export profile report

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@# torch first and pinned: unpinned, pip would pull several GB of CUDA wheels.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed ## create .venv and install everything (CPU torch first)

run: setup ## set up, then reproduce the whole pipeline (dvc repro)
	dvc repro

# One worker per core; tests/conftest.py says which tests share a worker, and why.
test: setup ## set up, then run every test (unit + end-to-end with the real dvc CLI)
	python -m pytest -n auto --dist loadfile --no-loadscope-reorder --durations=15

test-fast: setup ## unit tests only (skips the slow end-to-end tests)
	python -m pytest -m "not slow" -n auto --dist loadfile --no-loadscope-reorder

lint: setup ## ruff and workflow linting
	ruff check .
	ruff format --check .
	actionlint

format: setup ## apply ruff formatting and safe fixes
	ruff check --fix .
	ruff format .

bench: setup ## evaluation speed: one-pass evaluator vs one evaluator per dimension
	python benchmarks/eval_speed.py

bench-train: setup ## training throughput: the train stage vs a plain trainer script
	python benchmarks/train_throughput.py --steps 4 --rounds 2

bench-export: setup ## CPU encoding throughput: PyTorch vs the ONNX, int8 and OpenVINO exports
	python benchmarks/export_speed.py

report: setup ## the PR comment body vs a base revision: make report BASE=main
	python -m embedtune.reporting.pr_comment --base-rev $(or $(BASE),main) --out pr-comment.md
	@echo "wrote pr-comment.md"

profile: setup ## switch profile: make profile PROFILE=reference-gpu (see profiles/)
	@test -n "$(PROFILE)" || { echo "usage: make profile PROFILE=<name>; one of:"; ls profiles; exit 2; }
	@# A profile holds only overrides: merged onto the defaults, written out in full.
	python -m embedtune.config --profile profiles/$(PROFILE).yaml --out params.yaml
	@echo "params.yaml is now profiles/$(PROFILE).yaml over the defaults; run: make run"
