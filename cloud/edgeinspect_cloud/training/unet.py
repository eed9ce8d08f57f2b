"""The segmenter: a U-Net in Keras 3 whose graph follows the model contract end to end.

The model takes what the edge sends, ``image`` uint8 ``[N, 3, H, W]`` RGB, and returns
``mask_probability`` float32 ``[N, 1, H, W]``. Everything between is inside the graph, so the exported
ONNX needs no preprocessing beyond :mod:`edgeinspect.core.preprocess`:

1. cast to float, NCHW -> NHWC (Keras convolutions are channels-last on CPU);
2. ``(pixel * scale - mean) / std`` (the manifest's normalisation, folded in);
3. zero-pad bottom/right to sides divisible by ``2**depth`` (4 poolings need 16), U-Net, crop back;
4. sigmoid, NHWC -> NCHW.

Import this module only where TensorFlow is wanted: it imports keras at the top.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import layers, ops

INPUT_NAME = "image"
OUTPUT_NAME = "mask_probability"


@keras.saving.register_keras_serializable(package="edgeinspect")
class UInt8Normalise(layers.Layer):  # type: ignore[misc]
    """uint8 NCHW pixels -> normalised float32 NHWC: the manifest's normalisation, inside the graph."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], scale: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]
        self.scale = float(scale)

    def call(self, inputs: Any) -> Any:
        """Cast, transpose to channels-last, scale and normalise per channel."""
        pixels = ops.transpose(ops.cast(inputs, "float32"), (0, 2, 3, 1))
        mean = ops.convert_to_tensor(self.mean, dtype="float32")
        std = ops.convert_to_tensor(self.std, dtype="float32")
        return (pixels * self.scale - mean) / std

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, so a checkpoint reloads with the same normalisation."""
        return {**super().get_config(), "mean": self.mean, "std": self.std, "scale": self.scale}


def _block(x: Any, filters: int, name: str) -> Any:
    """Two 3x3 conv + batch norm + ReLU: the U-Net's unit at every level."""
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = layers.ReLU(name=f"{name}_relu{i}")(x)
    return x


def _padding(size: int, multiple: int) -> int:
    return (-size) % multiple


def build_unet(
    height: int,
    width: int,
    *,
    base_filters: int = 16,
    depth: int = 4,
    mean: Sequence[float] = (0.5, 0.5, 0.5),
    std: Sequence[float] = (0.25, 0.25, 0.25),
    scale: float = 1.0 / 255.0,
) -> keras.Model:
    """A U-Net for ``height x width`` inputs (any size: padded to a multiple of ``2**depth`` inside)."""
    inputs = keras.Input(shape=(3, height, width), dtype="uint8", name=INPUT_NAME)
    x = UInt8Normalise(mean, std, scale, name="normalise")(inputs)
    pad_h, pad_w = _padding(height, 2**depth), _padding(width, 2**depth)
    if pad_h or pad_w:
        x = layers.ZeroPadding2D(((0, pad_h), (0, pad_w)), name="pad")(x)
    skips = []
    for level in range(depth):
        x = _block(x, base_filters * 2**level, f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = _block(x, base_filters * 2**depth, "bottom")
    for level in reversed(range(depth)):
        x = layers.Conv2DTranspose(base_filters * 2**level, 2, strides=2, name=f"up{level}")(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _block(x, base_filters * 2**level, f"dec{level}")
    x = layers.Conv2D(1, 1, name="head")(x)
    if pad_h or pad_w:
        x = layers.Cropping2D(((0, pad_h), (0, pad_w)), name="crop")(x)
    x = layers.Activation("sigmoid", name="sigmoid")(x)
    outputs = layers.Permute((3, 1, 2), name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name="unet")
