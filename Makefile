# Everything runs from a venv this Makefile creates; nothing needs installing by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 4318

.PHONY: test lint demo bench venv clean interop

venv: $(STAMP)

# Pinned versions (constraints.txt) keep CI reproducible; pyproject.toml keeps the ranges users get.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict contextcompany

demo: $(STAMP)
	$(BIN)/python -m contextcompany dev --port $(PORT) -- sh -c '$(BIN)/python examples/weather_agent.py && $(BIN)/python examples/async_agent.py && $(BIN)/python examples/decorator_agent.py'

bench: $(STAMP)
	$(BIN)/python bench/bench_step.py

clean:
	rm -rf $(VENV) $(INTEROP) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Real backends (Arize Phoenix, MLflow) from their PyPI packages, each in a venv of its own outside the
# project's (their dependencies clash with ours and each other's); tests/interop/test_backends.py starts
# them on loopback, sends the seed scenario and reads it back through each one's client.
INTEROP         := .venv-interop
PHOENIX_VERSION ?= 20.26.1
MLFLOW_VERSION  ?= 3.17.2

$(INTEROP)/phoenix/.installed:
	$(PYTHON) -m venv $(INTEROP)/phoenix
	$(INTEROP)/phoenix/bin/python -m pip install --quiet --disable-pip-version-check 'arize-phoenix==$(PHOENIX_VERSION)'
	touch $@

$(INTEROP)/mlflow/.installed:
	$(PYTHON) -m venv $(INTEROP)/mlflow
	$(INTEROP)/mlflow/bin/python -m pip install --quiet --disable-pip-version-check 'mlflow==$(MLFLOW_VERSION)'
	touch $@

# The two installs take minutes each, mostly waiting on downloads and unpacking: run them side by side.
interop: $(STAMP)
	$(MAKE) -j2 $(INTEROP)/phoenix/.installed $(INTEROP)/mlflow/.installed
	INTEROP_VENVS=$(INTEROP) $(BIN)/python -m pytest -q -p no:cacheprovider tests/interop/test_backends.py
