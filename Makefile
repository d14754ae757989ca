# The README's commands. Each target creates or reuses .venv and installs the pinned set.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip

.PHONY: demo test test-slow lint pytest bench constraints clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamps re-run the install whenever the dependency declarations change.
$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) install -q -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -c constraints.txt -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/appliance --home .demo-home demo

lint: $(VENV)/.installed-test
	$(BIN)/ruff check appliance tui models scripts tests
	$(BIN)/ruff format --check appliance tui models scripts tests
	$(BIN)/mypy
	$(BIN)/lint-imports

# `make test` leaves out the tests marked slow (an offline install, end-to-end training loops
# covered more cheaply elsewhere) so it stays near 15 minutes on 2 cores; `make test-slow` runs them.
# Two workers, a test file each at a time (module fixtures stay whole): much of the suite waits
# on servers, child processes and sockets rather than the CPU, so two overlap on two cores.
# Schemathesis runs on its own afterwards: under xdist its per-operation tests collapse into one
# that tries a single operation (measured: 1 of 65). --durations: the log names the slowest tests.
FUZZ := tests/hostile/test_openapi_fuzz.py
pytest: $(VENV)/.installed-test
	$(BIN)/pytest -q -m "not slow" -n 2 --dist loadfile --durations=15 --ignore=$(FUZZ)
	$(BIN)/pytest -q -m "not slow" $(FUZZ)

test: lint pytest

test-slow: $(VENV)/.installed-test
	$(BIN)/pytest -q -m slow

# MLflow is never installed in .venv: point BENCH_MLFLOW_PYTHON at a venv that has it
# (docs/benchmarks.md shows how to make one).
bench: $(VENV)/.installed-test
	$(BIN)/python scripts/bench_registry.py

constraints: $(VENV)/.installed-test
	$(PIP) freeze --exclude-editable | sed 's/+cpu$$//' > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
