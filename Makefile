# Creates the virtualenv on first use; `make quickstart` and `make test` are README's two commands.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: quickstart test test-fast lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

quickstart: $(STAMP)
	$(PY) -m framework.main --config=configs/quickstart.py --workdir=runs/quickstart

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

test: lint
	$(PY) -m pytest -q -n 2 --dist worksteal --durations=15 tests

# The edit loop: everything but the end-to-end runs marked slow.
test-fast: lint
	$(PY) -m pytest -q -n 2 --dist worksteal -m "not slow" tests

bench: $(STAMP)
	$(PY) benchmarks/train_overhead.py

clean:
	rm -rf $(VENV) runs
