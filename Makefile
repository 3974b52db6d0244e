# Everything runs from a venv this Makefile creates; nothing needs installing by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 4318

.PHONY: test lint demo bench prove venv clean

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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Breaks each promise on purpose in a temporary copy and checks that the tests cited for it fail
# (prove/breaks.toml); `make prove BREAKS="id ..."` runs only those.
prove: $(STAMP)
	$(BIN)/python -m prove $(BREAKS)
