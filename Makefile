# The two commands users run: `make demo` and `make test`. Everything else is plumbing they call.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= edge,cloud,dev

.PHONY: demo demo-models test setup protos lint typecheck pytest clean bench pipelines-venv images test-containers

# DEMO_ARGS: extra `edgeinspect demo` flags, e.g. DEMO_ARGS="--ui-port 8181"
DEMO_ARGS ?=
demo: setup
	$(VENV)/bin/edgeinspect demo $(DEMO_ARGS)

test: setup lint typecheck pytest

# Regenerate the demo's trained models (cloud/edgeinspect_cloud/stack/demo_models/) with the project's
# own pipeline and its `demo` profile: minutes on 2 cores. `make demo` uses the committed ones.
demo-models: setup
	$(PY) -m edgeinspect_cloud.stack.demo_models

setup:
	@scripts/bootstrap.sh "$(VENV)" "$(EXTRAS)"

# The Kubeflow/SageMaker SDKs pin protobuf < 7, so `edgeinspect pipeline export` uses its own environment
# (made on first use too); docs/pipelines.md.
pipelines-venv:
	python3 -m venv .venv-pipelines
	.venv-pipelines/bin/pip install -q -r cloud/edgeinspect_cloud/pipeline/engines/requirements.txt

protos:
	$(PY) -m edgeinspect.core.protobuild

lint:
	$(VENV)/bin/ruff check lib services cloud tests bench
	$(VENV)/bin/ruff format --check lib services cloud tests bench

typecheck:
	$(VENV)/bin/mypy lib/edgeinspect services/*/edgeinspect_* cloud/edgeinspect_cloud

pytest:
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Benchmarks, one after another (minutes each; `make bench BENCH_ARGS=--quick` for a smoke run).
# Tables and plots go to bench/out/<bench>/; see bench/README.md.
BENCH_ARGS ?=
bench: setup
	$(PY) -m bench.agent_latency $(BENCH_ARGS)
	$(PY) -m bench.throughput $(BENCH_ARGS)
	$(PY) -m bench.uploader $(BENCH_ARGS)
	$(PY) -m bench.line_io $(BENCH_ARGS)

# Containers (root, podman, runc, debootstrap; docs/deploy.md "Images"): every image on a local
# debootstrap base image, with a size/time table.
images:
	@scripts/images.sh $(IMAGES)

# docker-compose.yml run with podman-compose on those images and local Redis/Mosquitto/S3 stand-ins
test-containers: setup
	@scripts/test-containers.sh

clean:
	rm -rf $(VENV) .stamp-* .mypy_cache .ruff_cache .pytest_cache
