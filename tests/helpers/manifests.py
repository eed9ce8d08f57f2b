"""One builder of valid test manifests: every test helper that needs a ``Manifest`` starts here.

The defaults are a small 8x8 classifier, torch-exported, whose one output is ``out``; each caller
states only what its tests rely on (the package tests' letterbox resize and metrics, the ONNX test
models' dynamic batch and output names, ...). Other keyword arguments replace whole manifest fields
and go through validation like the rest, so a test can also build an invalid manifest and expect
the error:

    manifest("segmentation", name="seg", pixel=0.4)
    manifest(output="score", metrics={"auroc": 0.97})
    manifest(created_at=datetime(2024, 6, 1))  # ValidationError: not timezone-aware
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from edgeinspect.core.package import (
    Framework,
    InputSpec,
    Manifest,
    Normalisation,
    OutputSpec,
    Resize,
    Thresholds,
)
from edgeinspect.core.package.manifest import OutputMeaning

Task = Literal["classification", "segmentation", "multitask", "anomaly"]
CREATED_AT = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
TORCH = Framework(name="torch", version="2.13.0")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def manifest(
    task: Task = "classification",
    *,
    name: str = "cls",
    version: str = "1",
    height: int = 8,
    width: int = 8,
    batch: int = 1,
    output: str = "out",
    meaning: OutputMeaning | None = None,
    image: float = 0.5,
    pixel: float | None = 0.5,
    mode: Literal["stretch", "letterbox", "pad"] = "stretch",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    framework: Framework = TORCH,
    created_at: datetime = CREATED_AT,
    dataset_fingerprint: str = "test",
    **fields: object,
) -> Manifest:
    """A manifest of one uint8 RGB ``image`` input (``batch`` -1 for a dynamic batch) and one output.

    ``meaning`` defaults to the task's probability output; ``pixel`` applies to segmentation only.
    ``files`` and ``golden`` are left for ``build_package`` to fill in.
    """
    if meaning is None:
        meaning = "mask_probability" if task == "segmentation" else "defect_probability"
    out_shape = [batch, 1] if task != "segmentation" else [batch, 1, height, width]
    values: dict[str, object] = {
        "name": name,
        "version": version,
        "task": task,
        "framework": framework,
        "created_at": created_at,
        "input": InputSpec(
            name="image",
            shape=[batch, 3, height, width],
            dtype="uint8",
            colour="RGB",
            resize=Resize(height=height, width=width, mode=mode),
            normalisation=Normalisation(mean=list(mean), std=list(std)),
            normalisation_in_graph=True,
        ),
        "outputs": [OutputSpec(name=output, meaning=meaning, shape=out_shape)],
        "thresholds": Thresholds(image=image, pixel=pixel if task != "classification" else None),
        "dataset_fingerprint": dataset_fingerprint,
    }
    values.update(fields)
    return Manifest.model_validate(values)
