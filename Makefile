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

.PHONY: test lint demo bench venv clean

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

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
