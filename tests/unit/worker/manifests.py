"""Manifests for the worker's pure-logic tests (no model files needed: postprocessing reads only these)."""

from __future__ import annotations

from typing import Literal

from edgeinspect.core.package import (
    Framework,
    InputSpec,
    Manifest,
    Normalisation,
    OutputSpec,
    Resize,
    Thresholds,
    utc_now,
)

Meaning = Literal[
    "defect_probability",
    "defect_logit",
    "class_probabilities",
    "class_logits",
    "mask_probability",
    "mask_logit",
]


def manifest(
    task: Literal["classification", "segmentation"] = "classification",
    *,
    name: str = "cls",
    version: str = "1",
    meaning: Meaning | None = None,
    image: float = 0.5,
    pixel: float | None = 0.5,
    height: int = 8,
    width: int = 8,
    mode: Literal["stretch", "letterbox", "pad"] = "stretch",
) -> Manifest:
    """A valid manifest whose one output is called ``out``."""
    if meaning is None:
        meaning = "defect_probability" if task == "classification" else "mask_probability"
    shape = [1, 1] if task == "classification" else [1, 1, height, width]
    return Manifest(
        name=name,
        version=version,
        task=task,
        framework=Framework(name="torch", version="2.13.0"),
        created_at=utc_now(),
        input=InputSpec(
            name="image",
            shape=[1, 3, height, width],
            dtype="uint8",
            colour="RGB",
            resize=Resize(height=height, width=width, mode=mode),
            normalisation=Normalisation(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
            normalisation_in_graph=True,
        ),
        outputs=[OutputSpec(name="out", meaning=meaning, shape=shape)],
        thresholds=Thresholds(image=image, pixel=pixel if task == "segmentation" else None),
        dataset_fingerprint="test",
    )
