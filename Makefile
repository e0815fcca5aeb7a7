# jobhandle: `make run` starts the demo on embedded SQLite, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/jobhandle demo

test: install
	$(BIN)/ruff check src
	$(BIN)/mypy src/jobhandle
	$(BIN)/pytest

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info jobhandle.db jobhandle.db-wal jobhandle.db-shm
