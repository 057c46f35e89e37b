# One task runner for everything. `make serve` and `make test` do all the set-up
# themselves (a local virtualenv in .venv), so they are the two commands a fresh
# checkout needs.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= auto

.PHONY: install serve test test-fast lint typecheck imports protos protos-check bench soak clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run the vault on the embedded default: SQLite file + generated dev keys in ./.vault-data
serve: $(STAMP)
	$(VENV)/bin/customer-vault serve

## The whole test suite (unit, integration over real gRPC, SQLite and PostgreSQL)
test: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -q

lint: $(STAMP)
	$(VENV)/bin/ruff check vault audit tests benchmarks scripts
	$(VENV)/bin/ruff format --check vault audit tests benchmarks scripts

typecheck: $(STAMP)
	$(VENV)/bin/mypy

## The layer contracts of .importlinter (docs/architecture.md): a wrong-way import fails
imports: $(STAMP)
	$(VENV)/bin/lint-imports

## Regenerate vault/api/gen from protos/ (never edit the generated files by hand)
protos: $(STAMP)
	$(PY) scripts/gen_protos.py

protos-check: $(STAMP)
	$(PY) scripts/gen_protos.py --check

bench: $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,bench]'
	$(PY) benchmarks/run.py

## Three minutes of mixed traffic from 4 client processes against a real server (SQLite;
## `make soak ARGS=--postgres` for a scratch PostgreSQL database): see docs/performance.md
soak: $(STAMP)
	$(PY) benchmarks/soak.py $(ARGS)

clean:
	rm -rf $(VENV) .vault-data .pytest_cache .mypy_cache .ruff_cache
