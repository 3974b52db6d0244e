# Everything runs from a venv this Makefile creates; nothing needs installing by hand.
# Two stamps, so each target installs only what it uses: `make demo` the package with its `cli` extra
# (what a user of the command line gets), `make test`/`lint`/`bench` also the `dev` extra (test tools,
# linters, type checker).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CLI    := $(VENV)/.installed-cli
DEV    := $(VENV)/.installed-dev
PORT   ?= 4318
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: test lint demo bench prove interop venv clean

venv: $(DEV)

# Pinned versions (constraints.txt) keep CI reproducible; pyproject.toml keeps the ranges users get.
$(CLI): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PIP) -e '.[cli]'
	touch $(CLI)

$(DEV): $(CLI)
	$(PIP) -e '.[cli,dev]'
	touch $(DEV)

test: $(DEV)
	$(BIN)/python -m pytest -q

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict contextcompany

demo: $(CLI)
	$(BIN)/python -m contextcompany dev --port $(PORT) -- sh -c '$(BIN)/python examples/weather_agent.py && $(BIN)/python examples/async_agent.py && $(BIN)/python examples/decorator_agent.py'

bench: $(DEV)
	$(BIN)/python bench/bench_step.py
	$(BIN)/python bench/bench_viewer.py

clean:
	rm -rf $(VENV) $(INTEROP) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Breaks each promise on purpose in a temporary copy and checks that the tests cited for it fail
# (prove/breaks.toml); `make prove BREAKS="id ..."` runs only those.
prove: $(DEV)
	$(BIN)/python -m prove $(BREAKS)

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
interop: $(DEV)
	$(MAKE) -j2 $(INTEROP)/phoenix/.installed $(INTEROP)/mlflow/.installed
	INTEROP_VENVS=$(INTEROP) $(BIN)/python -m pytest -q -p no:cacheprovider tests/interop/test_backends.py
