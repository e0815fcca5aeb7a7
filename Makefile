# jobhandle: `make run` serves the REST API with a worker on embedded SQLite, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test bench bench-redis clean

# One virtualenv; each target installs what it needs and no more (`make run`: jobhandle alone). A stamp file per
# set, so `make test` after `make run` still adds the dev tools; a changed pyproject.toml installs again.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(BIN)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(BIN)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

$(BIN)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	touch $@

install: $(BIN)/.installed

run: install
	@echo "jobhandle: dashboard on http://127.0.0.1:8000/, REST API on http://127.0.0.1:8000/api/v1/jobs, docs on http://127.0.0.1:8000/docs (Ctrl-C stops)"
	$(BIN)/jobhandle serve --app jobhandle.handlers --workers 4 --store sqlite:///./jobhandle.db

test: $(BIN)/.installed-dev
	$(BIN)/ruff check src
	$(BIN)/mypy src/jobhandle
	$(BIN)/pytest

bench: $(BIN)/.installed-bench
	$(BIN)/python bench/run.py
	$(BIN)/python bench/redis_peers.py
	$(BIN)/python bench/worker_start.py

bench-redis: $(BIN)/.installed-bench
	$(BIN)/python bench/redis_bench.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info jobhandle.db jobhandle.db-wal jobhandle.db-shm
