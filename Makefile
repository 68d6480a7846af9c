# sglang_rocm.fleet: every gate CI runs is `make test`; `make unit` is the fast inner loop.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV    ?= .venv
PY      := $(VENV)/bin/python
BIN     := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.build
export PYTHONDONTWRITEBYTECODE := 1
GATE    := tests/scripts/gate.sh

# Debian packages the toolchain and the simulated fleet need on a fresh machine.
DEB_PACKAGES := docker.io docker-registry openssh-server debootstrap iproute2 iptables \
	python3-requests procps psmisc openssl shellcheck \
	chromium

# build comes last: it must see what e2e (the demo) leaves in the checkout.
GATES := lint sanity unit compat integration e2e build

.PHONY: help deps venv collection-link unit lint sanity argspecs build compat integration e2e test demo clean

help:
	@echo "make test    everything CI runs (deps, venv, lint, sanity, unit, integration on a simulated fleet)"
	@echo "make demo    site.yml end to end on a 3-host simulated fleet; prints the fleet report and its verdict"
	@echo "make unit    fast unit tests (seconds)"
	@echo "make lint    yamllint + ansible-lint (production profile) + argument_specs/defaults check"
	@echo "make sanity  ansible-test sanity from a temporary ansible_collections tree"
	@echo "make compat  unit tests and the module-loading sanity tests against community.docker 5.x"
	@echo "make build   ansible-galaxy collection build, checked for generated artefacts"
	@echo "make integration  the simulated AMD fleet: stand-in image, molecule scenarios (root)"
	@echo "make perf    rollout time and controller CPU at 1, 4, 16 hosts vs a shell-task baseline, and the cold start through a slow upstream (root, ~2 h 15 min)"
	@echo "make clean   remove the venv, build links and generated test output"

deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "Debian packages present"; fi

$(VENV)/.stamp: requirements.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

venv: $(VENV)/.stamp

collection-link:
	@mkdir -p .build/ansible_collections/sglang_rocm
	@ln -sfn $(CURDIR) .build/ansible_collections/sglang_rocm/fleet

unit: venv collection-link
	$(BIN)/pytest -q tests/unit

argspecs: venv
	$(PY) tests/scripts/check_argspecs.py
	$(PY) tests/scripts/variables_doc.py --check
	$(PY) tests/scripts/preflight_registry.py --check

lint: venv collection-link argspecs
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint --profile production

sanity: venv
	tests/scripts/sanity.sh

# community.docker 5.x (the ansible 13 wheel's, tests/scripts/community_docker5.sh) in place of the
# venv's 4.x: the unit tests that use community.docker, and the sanity tests that load the modules
# (import, validate-modules, ansible-doc); the rest of sanity does not depend on the line.
COMPAT_SANITY := --test import --test validate-modules --test ansible-doc
compat: venv collection-link
	cd5=$$(tests/scripts/community_docker5.sh); \
	COMMUNITY_DOCKER_PATH=$$cd5 $(BIN)/pytest -q tests/unit/plugins; \
	COMMUNITY_DOCKER_PATH=$$cd5 SANITY_ARGS="$(COMPAT_SANITY)" tests/scripts/sanity.sh

build: venv
	tests/scripts/build_check.sh

# Needs root: network namespaces, dockerds and an image build (see tests/simfleet).
integration: deps venv collection-link
	tests/scripts/integration.sh

# A 3-host simulated fleet, site.yml end to end, and the fleet report (root).
demo: deps venv collection-link
	tests/scripts/demo.sh

# The demo as a gate: site.yml end to end, and the slow host must be the only outlier.
e2e: deps venv collection-link
	DEMO_EXPECT_OUTLIER=gpu03 tests/scripts/demo.sh

# The collection's rollout cost on a simulated fleet of 1, 4 and 16 hosts against a shell-task
# baseline and the floor (root; not a gate). PERF_HOSTS=1,4 for a shorter run; docs/performance.md.
.PHONY: perf
perf: deps venv collection-link
	$(PY) tests/perf/perf.py

# Every gate runs even when an earlier one fails, so one run shows every problem.
test: deps venv collection-link
	@start=$$(date +%s); failed=""; \
	for gate in $(GATES); do $(GATE) $$gate $(MAKE) --no-print-directory $$gate || failed="$$failed $$gate"; done; \
	took=$$(( $$(date +%s) - start )); \
	if [ -n "$$failed" ]; then echo "== make test: FAILED gates:$$failed (after $${took}s)"; exit 1; fi; \
	echo "== make test: all gates passed in $${took}s"

clean:
	rm -rf $(VENV) .build .pytest_cache tests/output
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
