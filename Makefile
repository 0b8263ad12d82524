# GlucoseStream: every target sets up what it needs (virtual environment, package, tools).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast kernels lint fix docs bench clean venv
DOCS := docs/configuration.md docs/cli.md docs/data-model.md docs/metrics.md docs/architecture.md docs/privacy.md docs/exports.md
CODE := src tests benchmarks scripts

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
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/mypy
	$(BIN)/python scripts/import_layers.py
	$(BIN)/python -m glucosestream.aws.state_machine --check
	scripts/checkov.sh --directory deploy/aws --config-file deploy/aws/.checkov.yaml --quiet --compact
	$(BIN)/cog --check -I docs $(DOCS)

# numba caches the compiled metric kernels beside their sources. The warm-up loads them in a few
# seconds, or, when the cache is cold or stale (after an install, or an edit of a kernel or of a
# module whose constants they compile in), compiles them once and says so, before any test runs,
# so no test pays for it. The tests' summary names any kernel compiled during the tests.
kernels: $(STAMP)
	$(BIN)/python -m glucosestream.metrics.warmup

# Three tiers, fastest first. The fast tier (marker `fast`, assigned in tests/conftest.py by a
# rule written there: every in-process test but the exhaustive suites and those measured at
# 0.5 s or more) is a little of every module in under a minute. Then the rest of the in-process
# tests (fuzzing, the hardening findings, end-to-end pipelines). Then the slow tier (markers in
# SLOW, registered in pyproject.toml): the soak, schemathesis, a plain install, real server and
# CLI processes, the browser, S3/Ceph and PostgreSQL. Its services (a throwaway PostgreSQL and a
# Ceph S3 gateway) and the system Chromium come from Debian's packages, installed when missing
# (scripts/); services are stopped afterwards.
SLOW := soak or schemathesis or slow_install or slow

test-fast: kernels
	$(BIN)/pytest -m fast

test: lint kernels
	$(BIN)/pytest -m fast
	$(BIN)/pytest -m "not fast and not ($(SLOW))"
	scripts/browser.sh
	scripts/postgres.sh start >/dev/null
	scripts/ceph.sh start >/dev/null
	$(BIN)/pytest -m "$(SLOW)"; status=$$?; scripts/ceph.sh stop; scripts/postgres.sh stop; exit $$status

fix: $(STAMP)
	$(BIN)/ruff check --fix $(CODE)
	$(BIN)/ruff format $(CODE)

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
	rm -rf $(VENV) .venv-checkov .mypy_cache .ruff_cache .pytest_cache
