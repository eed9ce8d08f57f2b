"""Each image's extra is exactly what its code imports: nothing missing, nothing extra, no torch.

The import scan (``importscan.py``) reads the service's package and every first-party module it
reaches, lazy imports included; each third-party top-level module is mapped to the distributions
that provide it in this environment (``importlib.metadata.packages_distributions()``). An image whose
extra misses one would crash on the first frame that takes that code path; one whose extra holds
more than its code imports ships weight (and attack surface) for nothing.
"""

from __future__ import annotations

from functools import cache

import pytest

from tests.deploy.images import (
    EDGE_IMAGES,
    IMAGES,
    TRAINING_FRAMEWORKS,
    Image,
    base_dependencies,
    extra,
)
from tests.deploy.importscan import ScanResult, distributions_of, normalize, scan

OPTIONAL = {
    "harvesters": "GenICam cameras: harvesters and a vendor GenTL producer are installed by the user "
    "(services/camera/README.md), and the camera reports how when they are missing",
    "gpiod": "the box's digital I/O: the libgpiod bindings match the board's kernel, so the user installs "
    "them (services/line-io/README.md); without them the gpiod output/input reports how",
}
# engine SDKs that `edgeinspect pipeline export` imports only inside its own tool environment
# (.venv-pipelines, `make pipelines-venv`): kfp needs protobuf < 7, which the cloud image's gRPC code
# cannot share (docs/pipelines.md); the export command runs those modules there, never in the image
TOOL_ENV = {
    "kfp": "cloud/edgeinspect_cloud/pipeline/engines/",
    "sagemaker": "cloud/edgeinspect_cloud/pipeline/engines/",
}
# the GPU agent's extra is the CPU agent's with this one swap (same `onnxruntime` module)
GPU_SWAP = {"onnxruntime": "onnxruntime-gpu"}


@cache
def _scan(image: Image) -> ScanResult:
    return scan(image.start_paths())


def _needed(image: Image) -> dict[str, frozenset[str]]:
    """Third-party module -> distributions providing it, for every module the image's code imports."""
    result = _scan(image)
    required = {
        m: where
        for m, where in result.required.items()
        if not (m in TOOL_ENV and where.startswith(TOOL_ENV[m]))
    }
    unknown = [f"{m} (imported by {where})" for m, where in required.items() if not distributions_of(m)]
    assert not unknown, f"{image.name}: no installed distribution provides {unknown}; add it to an extra"
    return {module: distributions_of(module) for module in required}


def _as_installed(image: Image, dists: frozenset[str]) -> frozenset[str]:
    """The extra's names as they appear in this (CPU) environment's metadata."""
    if image.extra != "agent-gpu":
        return dists
    reverse = {gpu: cpu for cpu, gpu in GPU_SWAP.items()}
    return frozenset(reverse.get(d, d) for d in dists)


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_extra_covers_every_third_party_import(image: Image) -> None:
    available = _as_installed(image, extra(image.extra)) | base_dependencies()
    missing = {module: sorted(dists) for module, dists in _needed(image).items() if not dists & available}
    assert not missing, f"{image.name}: .[{image.extra}] + base misses {missing}"


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_extra_holds_only_what_the_code_imports(image: Image) -> None:
    imported = frozenset().union(*_needed(image).values())
    declared = _as_installed(image, extra(image.extra))
    assert declared <= imported, (
        f"{image.name}: .[{image.extra}] installs unused {sorted(declared - imported)}"
    )
    assert not declared & base_dependencies(), f"{image.name}: repeats base dependencies"


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_optional_imports_are_the_documented_ones(image: Image) -> None:
    optional = _scan(image).optional
    undocumented = {m: where for m, where in optional.items() if m not in OPTIONAL}
    assert not undocumented, f"{image.name}: optional imports with no documented reason: {undocumented}"


@pytest.mark.parametrize("image", EDGE_IMAGES, ids=lambda i: i.name)
def test_no_training_framework_in_an_edge_image(image: Image) -> None:
    installed = extra(image.extra) | base_dependencies()
    assert not installed & TRAINING_FRAMEWORKS
    assert not {normalize(m) for m in _needed(image)} & TRAINING_FRAMEWORKS


def test_gpu_agent_extra_is_the_agent_extra_with_onnxruntime_gpu() -> None:
    swapped = frozenset(GPU_SWAP.get(d, d) for d in extra("agent"))
    assert extra("agent-gpu") == swapped


def test_openvino_agent_extra_is_the_agent_extra_with_onnxruntime_openvino() -> None:
    """onnxruntime-openvino replaces onnxruntime (same import name): one or the other, never both."""
    swapped = frozenset({"onnxruntime": "onnxruntime-openvino"}.get(d, d) for d in extra("agent"))
    assert extra("agent-openvino") == swapped


def test_edge_extra_is_the_union_of_the_edge_images() -> None:
    cpu_images = [i for i in EDGE_IMAGES if i.extra != "agent-gpu"]
    union = frozenset().union(*(extra(i.extra) for i in cpu_images))
    assert union <= extra("edge"), f"edge lacks {sorted(union - extra('edge'))}"
    assert extra("edge") - union <= base_dependencies(), "edge holds something no edge image needs"


def test_cloud_image_may_train() -> None:
    assert {"torch", "tensorflow-cpu"} <= extra("cloud")


@pytest.mark.parametrize("image", IMAGES, ids=lambda i: i.name)
def test_base_dependencies_are_what_every_image_imports(image: Image) -> None:
    """A base dependency one image never imports is weight in that image: it belongs in the extras."""
    imported = frozenset().union(*_needed(image).values())
    unused = base_dependencies() - _as_installed(image, imported)
    assert not unused, (
        f"{image.name} never imports base dependencies {sorted(unused)}: move them to the extras"
    )
