"""The images the repository builds: Dockerfile, target, the extra it must install, the code it runs.

One table shared by the Dockerfile tests and the extras tests, so "the camera image installs
``.[camera]``" and "``.[camera]`` covers the camera's imports" are checked against the same row.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from packaging.requirements import Requirement

from tests.deploy.importscan import ROOT, normalize

CLOUD_PKG = ROOT / "cloud" / "edgeinspect_cloud"
# `edgeinspect up`/`demo` supervise the edge services and local servers from a development checkout
# (`.[edge,cloud]`); they are not part of the cloud image, so its scan leaves them out.
CLOUD_NOT_IN_IMAGE = {CLOUD_PKG / "stack", CLOUD_PKG / "commands" / "stack.py", CLOUD_PKG / "__pycache__"}


def _cloud_starts() -> list[Path]:
    starts = [p for p in CLOUD_PKG.iterdir() if p not in CLOUD_NOT_IN_IMAGE and p.name != "commands"]
    commands = CLOUD_PKG / "commands"
    return starts + [p for p in commands.glob("*.py") if p not in CLOUD_NOT_IN_IMAGE]


@dataclass(frozen=True)
class Image:
    name: str
    dockerfile: str
    target: str
    extra: str
    starts: tuple[str, ...]
    build_args: tuple[tuple[str, str], ...] = field(default=())
    edge: bool = True

    def start_paths(self) -> list[Path]:
        if self.starts == ("<cloud>",):
            return _cloud_starts()
        return [ROOT / s for s in self.starts]


INFERENCE = "services/inference/edgeinspect_inference"
IMAGES = (
    Image(
        "camera", "services/camera/Dockerfile", "camera", "camera", ("services/camera/edgeinspect_camera",)
    ),
    Image(
        "inference-worker",
        "services/inference/Dockerfile",
        "worker",
        "inference",
        (f"{INFERENCE}/__init__.py", f"{INFERENCE}/worker"),
    ),
    Image(
        "agent",
        "services/inference/Dockerfile",
        "agent",
        "agent",
        (f"{INFERENCE}/__init__.py", f"{INFERENCE}/agent"),
    ),
    Image(
        "agent-jetson",
        "services/inference/Dockerfile",
        "agent",
        "agent-gpu",
        (f"{INFERENCE}/__init__.py", f"{INFERENCE}/agent"),
        build_args=(("VARIANT", "jetson"),),
    ),
    Image(
        "model-manager",
        "services/model-manager/Dockerfile",
        "model-manager",
        "model-manager",
        ("services/model-manager/edgeinspect_model_manager",),
    ),
    Image(
        "uploader",
        "services/uploader/Dockerfile",
        "uploader",
        "uploader",
        ("services/uploader/edgeinspect_uploader",),
    ),
    Image("ui", "services/ui/Dockerfile", "ui", "ui", ("services/ui/edgeinspect_ui",)),
    Image(
        "line-io",
        "services/line-io/Dockerfile",
        "line-io",
        "line-io",
        ("services/line-io/edgeinspect_line_io",),
    ),
    Image(
        "fleet",
        "cloud/Dockerfile",
        "fleet",
        "fleet",
        (
            "cloud/edgeinspect_cloud/cli.py",
            "cloud/edgeinspect_cloud/commands/fleet.py",
            "cloud/edgeinspect_cloud/fleet",
        ),
        edge=False,
    ),
    Image("cloud", "cloud/Dockerfile", "cloud", "cloud", ("<cloud>",), edge=False),
)
EDGE_IMAGES = tuple(i for i in IMAGES if i.edge)
DOCKERFILES = sorted({i.dockerfile for i in IMAGES})
TRAINING_FRAMEWORKS = frozenset({"torch", "tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "torchvision"})


@cache
def pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


def _names(requirements: list[str]) -> frozenset[str]:
    return frozenset(normalize(Requirement(r).name) for r in requirements)


def base_dependencies() -> frozenset[str]:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    return _names(project["dependencies"])


def extra(name: str) -> frozenset[str]:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    extras = project["optional-dependencies"]
    assert name in extras, f"pyproject.toml has no extra {name!r}"
    return _names(extras[name])
