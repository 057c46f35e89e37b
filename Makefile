# One task runner for everything. `make serve` and `make test` do all the set-up
# themselves (a local virtualenv in .venv), so they are the two commands a fresh
# checkout needs. `make check` is the gate: what CI runs (.ci/run), and what must pass
# before anything lands.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= auto
SOURCES := vault audit tests benchmarks scripts clients/python/src
# Hashed locks (pip-tools): runtime for the image; runtime + dev + browser for this venv and CI.
LOCK     := requirements.lock
DEV_LOCK := requirements-dev.lock
PIP_COMPILE := $(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-find-links --no-emit-index-url

.PHONY: catalogs install serve console check test test-unit lint typecheck imports protos protos-check buf buf-release bench soak clean lock audit-deps clients-ts clients-test k8s-policies

# Every third-party package comes from the lock, checked against its hash; then the
# project and its slim client (clients/python, which the CLI uses) alone (--no-deps),
# built with the locked setuptools (--no-build-isolation).
# `casbin` and `phonenumbers` are uninstalled first: they were replaced by `pycasbin`
# and `phonenumberslite`, which own the same import packages (casbin/, phonenumbers/).
$(STAMP): pyproject.toml clients/python/pyproject.toml $(DEV_LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip uninstall -q -y casbin phonenumbers 2>/dev/null || true
	$(PY) -m pip install -q --disable-pip-version-check --require-hashes -r $(DEV_LOCK)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
		-e . -e clients/python
	touch $(STAMP)

install: $(STAMP)

# The TypeScript client (clients/typescript): its npm dependencies from package-lock.json
# (`npm ci`, install scripts off), then its types generated from proto/ and tsc.
TS      := clients/typescript
TS_STAMP := $(TS)/dist/.built
$(TS_STAMP): $(TS)/package.json $(TS)/package-lock.json $(TS)/tsconfig.json \
		$(wildcard $(TS)/src/*.ts $(TS)/test/*.ts $(TS)/examples/*.ts) \
		$(wildcard $(TS)/proto/*/*/*.proto)
	cd $(TS) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && npm run --silent build
	touch $(TS_STAMP)

## Build the TypeScript client (Node 20)
clients-ts: $(TS_STAMP)

## Both clients' tests against a real vault (Python: clients/python; TypeScript: node --test)
clients-test: $(STAMP) $(TS_STAMP)
	$(PY) -m pytest -q tests/integration/test_python_client.py tests/integration/test_typescript_client.py \
		tests/unit/test_python_client_package.py

## Run the vault on the embedded default: SQLite file + generated dev keys in ./.vault-data
serve: $(STAMP)
	$(VENV)/bin/customer-vault serve

## The gate, in order, stopping at the first failure: ruff check, ruff format --check,
## mypy, generated code up to date, buf lint + breaking (the gRPC contract), import
## contracts (.importlinter), the locked dependencies' known vulnerabilities (pip-audit),
## the whole suite.
check: $(STAMP)
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory typecheck
	@$(MAKE) --no-print-directory protos-check
	@$(MAKE) --no-print-directory buf
	@$(MAKE) --no-print-directory imports
	@$(MAKE) --no-print-directory audit-deps
	@$(MAKE) --no-print-directory test

## The compliance console on http://127.0.0.1:8080/ in front of `make serve`'s vault
console: $(STAMP)
	$(VENV)/bin/customer-vault console

## The whole test suite (unit, integration over real gRPC, SQLite and PostgreSQL; the
## TypeScript client is built first, its tests run against a vault from the suite)
test: $(STAMP) $(TS_STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -q

## The unit tests alone (no server, no PostgreSQL): under a minute
test-unit: $(STAMP)
	$(PY) -m pytest tests/unit -n $(PYTEST_WORKERS) -q

lint: $(STAMP)
	$(VENV)/bin/ruff check $(SOURCES)
	$(VENV)/bin/ruff format --check $(SOURCES)

typecheck: $(STAMP)
	$(VENV)/bin/mypy

## The layer contracts of .importlinter (docs/architecture.md): a wrong-way import fails
imports: $(STAMP)
	$(VENV)/bin/lint-imports

## Re-extract the privacy center's messages and merge them into each language's .po
## (the .po files are the source; the app compiles them in memory when it starts)
catalogs: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg -k N_ --no-location --omit-header -o vault/web/locale/messages.pot .
	$(VENV)/bin/pybabel update -i vault/web/locale/messages.pot -d vault/web/locale --no-fuzzy-matching

## Regenerate the generated code (customer_vault_client.gen, the TypeScript protos) from protos/ (never edit the generated files by hand)
protos: $(STAMP)
	$(PY) scripts/gen_protos.py

protos-check: $(STAMP)
	$(PY) scripts/gen_protos.py --check

# buf, the npm package @bufbuild/buf pinned in protos/tools/package-lock.json (npm ci:
# exactly the locked version, checked against its integrity hash).
BUF_TOOLS   := protos/tools
BUF         := $(BUF_TOOLS)/node_modules/.bin/buf
# The last published contract: `buf breaking` compares protos/ with it (protos/releases/).
BUF_RELEASE := protos/releases/v0.1.binpb

$(BUF): $(BUF_TOOLS)/package.json $(BUF_TOOLS)/package-lock.json
	cd $(BUF_TOOLS) && npm ci --no-audit --no-fund --loglevel=error
	touch $(BUF)

## The contract's rules (buf.yaml): `buf lint` (STANDARD + COMMENTS) and `buf breaking`
## against the last release image; the vendored google/rpc/status.proto must be the one
## protoc compiles against; buf.gen.yaml must generate (into build/buf-gen)
buf: $(BUF) $(STAMP)
	$(BUF) lint
	$(BUF) breaking --against $(BUF_RELEASE)
	$(PY) scripts/gen_protos.py --check-vendored
	$(BUF) generate

## Cut a release of the contract: `make buf-release VERSION=v0.2` writes
## protos/releases/v0.2.binpb; then point BUF_RELEASE at it (protos/releases/README.md)
buf-release: $(BUF)
	test -n "$(VERSION)" || { echo "usage: make buf-release VERSION=vX.Y"; exit 2; }
	test ! -e protos/releases/$(VERSION).binpb || { echo "$(VERSION) exists"; exit 2; }
	$(BUF) build -o protos/releases/$(VERSION).binpb

bench: $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,bench]'
	$(PY) benchmarks/run.py

## Three minutes of mixed traffic from 4 client processes against a real server (SQLite;
## `make soak ARGS=--postgres` for a scratch PostgreSQL database): see docs/performance.md
soak: $(STAMP)
	$(PY) benchmarks/soak.py $(ARGS)

## Copy policies/ into deploy/k8s/policies/, where the kustomization's ConfigMap reads
## them (kustomize loads nothing from outside deploy/k8s); tests/deploy checks the copy
k8s-policies:
	rm -f deploy/k8s/policies/*
	cp policies/* deploy/k8s/policies/

## Re-resolve both lock files from pyproject.toml (after changing a dependency)
lock: $(STAMP)
	$(PIP_COMPILE) --build-deps-for wheel --output-file $(LOCK) pyproject.toml
	$(PIP_COMPILE) --all-build-deps --extra dev --extra browser --constraint $(LOCK) \
		--output-file $(DEV_LOCK) pyproject.toml

## Known vulnerabilities in the locked dependencies (pip-audit); AUDIT_DEPS_OFFLINE=allow
## turns "advisory database unreachable" into a warning (see docs/operations.md)
audit-deps: $(STAMP)
	$(PY) scripts/audit_deps.py $(LOCK) $(DEV_LOCK)

clean:
	rm -rf $(VENV) .vault-data .pytest_cache .mypy_cache .ruff_cache .import_linter_cache \
		$(BUF_TOOLS)/node_modules build/buf-gen $(TS)/node_modules $(TS)/dist $(TS)/src/gen
