# GlucoseStream: every target sets up what it needs (virtual environment, package, tools).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint fix docs bench clean venv
DOCS := docs/configuration.md docs/cli.md docs/data-model.md

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "GlucoseStream needs Python 3.11 or newer: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/python -m glucosestream.metrics.warmup
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/glucosestream demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/cog --check -I docs $(DOCS)

# Two tiers. The fast one first: unit and in-process tests and the parser fuzzing. When it
# passes, the slow one (markers in SLOW, registered in pyproject.toml): the soak, schemathesis, a
# plain install, real server and CLI processes, the browser, S3/Ceph and PostgreSQL. Its services
# (a throwaway PostgreSQL and a Ceph S3 gateway) and the system Chromium come from Debian's
# packages, installed when missing (scripts/); services are stopped afterwards.
SLOW := soak or schemathesis or slow_install or slow

test: lint
	$(BIN)/pytest -m "not ($(SLOW))"
	scripts/browser.sh
	scripts/postgres.sh start >/dev/null
	scripts/ceph.sh start >/dev/null
	$(BIN)/pytest -m "$(SLOW)"; status=$$?; scripts/ceph.sh stop; scripts/postgres.sh stop; exit $$status

fix: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

docs: $(STAMP)
	$(BIN)/cog -r -I docs $(DOCS)

# Benchmarks print figures and ratios and write JSON to benchmarks/results/ (not a test).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_synth.py
	$(BIN)/python benchmarks/bench_ingest.py
	$(BIN)/python benchmarks/bench_metrics.py
	$(BIN)/python benchmarks/bench_pipeline.py
	$(BIN)/python benchmarks/bench_maintain.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
