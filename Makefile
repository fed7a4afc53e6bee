# Conveyor: `make demo` runs the typical flow on the embedded SQLite store;
# `make test` installs what it needs and runs lint, types and the whole test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck services bench faults docs clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/quickstart/demo.py

services:
	bash scripts/services.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench examples

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict

test: $(STAMP) services lint typecheck
	$(VENV)/bin/pytest -q -p no:cacheprovider

# The long versions of the fault matrix (docs/reliability.md); `make test` runs the short ones.
faults: $(STAMP) services
	FAULTS_LONG=1 FAULTS_RESULTS=$${FAULTS_RESULTS:-faults-results.jsonl} \
		$(VENV)/bin/pytest -q -p no:cacheprovider -rs --timeout 3600 tests/faults

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict -d site

bench: $(STAMP) services
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache demo-out faults-results.jsonl site
