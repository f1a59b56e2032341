# One entry point for people and CI. Needs only python3 (with pip) on the machine:
# uv is installed into .tools/ when it is not on PATH, and everything else comes from uv.lock.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(shell $(PYTHON) -c 'import sys; print(sys.executable)')
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --frozen --no-sync

.PHONY: install demo test lint typecheck pytest bench clean

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

install: $(UV)
	$(UV) sync --frozen --compile-bytecode --quiet
	$(RUN) python -m compileall -q src

demo: install  ## the main job, end to end
	$(RUN) strata demo

lint: install
	$(RUN) ruff check src tests bench
	$(RUN) ruff format --check src tests bench

typecheck: install
	$(RUN) mypy

pytest: install
	$(RUN) pytest -n 2

test: lint typecheck pytest  ## everything CI runs

bench: install  ## side by side with Meltano and Metaxy (installed in bench/.venvs)
	$(RUN) python bench/startup.py
	$(RUN) python bench/features/compare.py
	$(RUN) python bench/ingest.py
	$(RUN) python bench/bridge.py

clean:
	rm -rf .venv .tools .mypy_cache .pytest_cache .ruff_cache
