# The two commands users run: `make demo` and `make test`. Everything else is plumbing they call.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= edge,cloud,dev

.PHONY: demo test setup protos lint typecheck pytest clean bench images test-containers

# DEMO_ARGS: extra `edgeinspect demo` flags, e.g. DEMO_ARGS="--ui-port 8181"
DEMO_ARGS ?=
demo: setup
	$(VENV)/bin/edgeinspect demo $(DEMO_ARGS)

test: setup lint typecheck pytest

setup:
	@scripts/bootstrap.sh "$(VENV)" "$(EXTRAS)"

protos:
	$(PY) -m edgeinspect.core.protobuild

lint:
	$(VENV)/bin/ruff check lib services cloud tests bench
	$(VENV)/bin/ruff format --check lib services cloud tests bench

typecheck:
	$(VENV)/bin/mypy lib/edgeinspect services/*/edgeinspect_*

pytest:
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Benchmarks, one after another (minutes each; `make bench BENCH_ARGS=--quick` for a smoke run).
# Tables and plots go to bench/out/<bench>/; see bench/README.md.
BENCH_ARGS ?=
bench: setup
	$(PY) -m bench.agent_latency $(BENCH_ARGS)
	$(PY) -m bench.throughput $(BENCH_ARGS)
	$(PY) -m bench.uploader $(BENCH_ARGS)

# Containers (root, podman, runc, debootstrap; docs/deploy.md "Images"): every image on a local
# debootstrap base image, with a size/time table.
images:
	@scripts/images.sh $(IMAGES)

# docker-compose.yml run with podman-compose on those images and local Redis/Mosquitto/S3 stand-ins
test-containers: setup
	@scripts/test-containers.sh

clean:
	rm -rf $(VENV) .stamp-* .mypy_cache .ruff_cache .pytest_cache
