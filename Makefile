# One entry point for people and CI. Needs only python3 (with pip) on the machine:
# uv is installed into .tools/ when it is not on PATH, and everything else comes from uv.lock.
# `make demo` installs what strata needs at run time (no extras, no dev tools); `make install`
# (and so `make test`) installs everything: every extra and the dev group.
# Behind a proxy with its own certificate authority, `UV_SYSTEM_CERTS=1 make demo` (older uv:
# UV_NATIVE_TLS=1): uv then trusts the system's certificate store, and so does the pip that installs uv.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(shell $(PYTHON) -c 'import sys; print(sys.executable)')
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --frozen --no-sync
SYSTEM_CA := $(firstword $(wildcard /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem))
PIP_TLS := $(if $(filter-out 0 false no,$(UV_SYSTEM_CERTS) $(UV_NATIVE_TLS)),$(if $(SYSTEM_CA),--cert $(SYSTEM_CA)))

.PHONY: runtime install demo test lint typecheck pytest bench docs-images clean

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet $(PIP_TLS) uv==$(UV_VERSION)

runtime: $(UV)  ## strata and its core dependencies in .venv (what is there already stays)
	$(UV) sync --frozen --no-dev --inexact --compile-bytecode --quiet
	$(RUN) python -m compileall -q src

install: $(UV)  ## everything: all extras and the dev group
	$(UV) sync --frozen --all-extras --compile-bytecode --quiet
	$(RUN) python -m compileall -q src

demo: runtime  ## the main job, end to end
	$(RUN) strata demo
	@echo 'strata is installed in .venv: `source .venv/bin/activate` puts it on PATH (README.md, Quick start)'

lint: install
	$(RUN) ruff check src tests bench scripts
	$(RUN) ruff format --check src tests bench scripts

typecheck: install
	$(RUN) mypy

pytest: install
	$(RUN) pytest -n 2

test: lint typecheck pytest  ## everything CI runs

bench: install  ## side by side with Meltano and Metaxy (installed in bench/.venvs)
	$(RUN) python bench/startup.py
	$(RUN) python bench/features/compare.py
	$(RUN) python bench/features/fixed_costs.py
	$(RUN) python bench/ingest.py
	$(RUN) python bench/bridge.py

docs-images: install  ## the README's pictures from a real demo run (needs chromium and graphviz's dot)
	$(RUN) python scripts/docs_images.py

clean:
	rm -rf .venv .tools .mypy_cache .pytest_cache .ruff_cache
