"""Tiny models and images for compile/packaging tests: fast to build, deterministic, in each framework.

Importing this module imports torch; tensorflow is imported only by :func:`keras_segmenter`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from edgeinspect.core.package import InputSpec, Normalisation, Resize

SIZE = 32
NORMALISATION = Normalisation(mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])


def input_spec() -> InputSpec:
    """The manifest input of the toy models: uint8 NCHW SIZE x SIZE, normalisation in the graph."""
    return InputSpec(
        name="image",
        shape=[-1, 3, SIZE, SIZE],
        dtype="uint8",
        colour="RGB",
        resize=Resize(height=SIZE, width=SIZE, mode="stretch"),
        normalisation=NORMALISATION,
        normalisation_in_graph=True,
    )


def toy_images(
    count: int, seed: int = 0
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """uint8 NCHW images of a textured surface; every third has a bright square (label and mask)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(40, 120, (count, 3, SIZE, SIZE), dtype=np.uint8)
    labels = np.arange(count) % 3 == 0
    masks = np.zeros((count, SIZE, SIZE), bool)
    for index in np.flatnonzero(labels):
        top, left = rng.integers(2, SIZE - 10, 2)
        images[index, :, top : top + 6, left : left + 6] = 230
        masks[index, top : top + 6, left : left + 6] = True
    return images, labels, masks


class Classifier(torch.nn.Module):
    """A small CNN returning one defect logit per image (float NCHW in); module-level, so it pickles."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 1)

    def forward(self, x: Any) -> Any:
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.head(torch.amax(x, dim=(2, 3)))


def torch_classifier(seed: int = 0) -> Classifier:
    """A seeded :class:`Classifier` in eval mode."""
    torch.manual_seed(seed)
    return Classifier().eval()


def torch_branchy_classifier() -> Any:
    """A deliberately broken model: Python control flow on the data, which ONNX tracing freezes."""

    class Branchy(torch.nn.Module):
        def forward(self, x: Any) -> Any:
            if float(x.mean()) > 0:  # traced with a zero (dark) input, so ONNX always takes the else branch
                return x.mean(dim=(1, 2, 3)).unsqueeze(1) * 4.0
            return -x.mean(dim=(1, 2, 3)).unsqueeze(1) * 4.0

    return Branchy().eval()


def torch_brightness_classifier() -> Any:
    """A classifier whose logit grows with brightness: calibrating it on dark images only saturates int8."""

    class Bright(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 1, bias=False)
            with torch.no_grad():
                self.conv.weight.fill_(0.5)

        def forward(self, x: Any) -> Any:
            return torch.relu(self.conv(x)).mean(dim=(1, 2, 3)).unsqueeze(1) - 1.0

    return Bright().eval()


def keras_segmenter(seed: int = 0) -> Any:
    """A tiny encoder-decoder with a skip connection, NHWC float in, one mask logit per pixel out."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    skip = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(skip)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.UpSampling2D()(x)
    x = keras.layers.Concatenate()([x, skip])
    outputs = keras.layers.Conv2D(1, 1)(x)
    return keras.Model(inputs, outputs)
