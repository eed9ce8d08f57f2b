"""What stock SageMaker Edge clients send, made into what our models take (the compat API only).

Those clients (AWS's Python example, the seed application, their C++ example) build a request by
copying ``input_tensor_metadatas[0]`` from ``ListModels`` and filling it with
``x.astype(np.float32).tobytes()`` of raw 0-255 pixels, because Neo packages had fixed shapes and
float32 inputs. Three rules bridge that to our packages, and nothing else is guessed:

1. **Reported metadata** (``ListModels``/``DescribeModel``/``LoadModel``): a dynamic batch is
   reported as 1, a dynamic height/width of the image input as the manifest's resize, and a uint8
   image input as FLOAT32 (``EI_COMPAT_PIXELS=float32``, the default), so copying it back is valid.
   The extension API keeps reporting the true, dynamic spec.
2. **-1 in a request shape** where the model is dynamic: resolved from the byte length (the only
   unknown left); where the model fixes that dimension, its size is used. Two unknowns, or a byte
   length that is not a whole multiple, are INVALID_ARGUMENT saying so.
3. **Floating-point pixels for a uint8 input**: converted once, if every value is a whole number in
   0..255 (raw pixels); anything else (normalised 0..1 values, NaN, 255.5) is INVALID_ARGUMENT.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from edgeinspect.core.package import Manifest
from edgeinspect.core.tensors import dtype_of, tensor_name

from edgeinspect_inference.agent.errors import InvalidInputError, clip
from edgeinspect_inference.agent.session import TensorSpec

FLOAT_PIXELS_RULE = (
    "floating-point pixels for a uint8 input must be whole numbers in 0..255 (raw pixel values)"
)


def reported_shape(spec: TensorSpec, manifest: Manifest) -> list[int]:
    """The shape a stock client can copy: batch 1, the image input's H x W from the manifest's resize."""
    shape = list(spec.shape)
    if shape and shape[0] == -1:
        shape[0] = 1
    if spec.name == manifest.input.name and len(shape) == 4:
        resize = manifest.input.resize
        for index, size in ((2, resize.height), (3, resize.width)):
            if shape[index] == -1:
                shape[index] = size
    return shape


def reported_dtype(spec: TensorSpec, float_pixels: bool) -> np.dtype[Any]:
    """FLOAT32 for a uint8 input when stock clients are told to send float pixels, else the model's."""
    return np.dtype(np.float32) if float_pixels and spec.dtype == np.uint8 else spec.dtype


def resolve_shapes(tensors: Iterable[Any], specs: Sequence[TensorSpec]) -> None:
    """Replace -1 in each request tensor's shape, in place (the request is ours to edit, no copy)."""
    by_name = {spec.name: spec for spec in specs}
    for tensor in tensors:
        shape = list(tensor.tensor_metadata.shape)
        if -1 not in shape:
            continue
        name = tensor_name(tensor)
        spec = by_name.get(name)
        if spec is None or len(spec.shape) != len(shape):
            continue  # validation names the mismatch with the model's own spec
        nbytes = _byte_length(tensor)
        itemsize = dtype_of(tensor.tensor_metadata.data_type).itemsize
        tensor.tensor_metadata.shape[:] = _resolve(name, shape, spec.shape, nbytes, itemsize)


def _byte_length(tensor: Any) -> int:
    if tensor.WhichOneof("data") == "shared_memory_handle":
        return int(tensor.shared_memory_handle.size)
    return len(tensor.byte_data)


def _resolve(name: str, shape: list[int], model: Sequence[int], nbytes: int, itemsize: int) -> list[int]:
    resolved = [m if d == -1 and m >= 0 else d for d, m in zip(shape, model, strict=True)]
    unknown = [i for i, d in enumerate(resolved) if d == -1]
    if len(unknown) > 1:
        raise InvalidInputError(
            f"tensor {clip(name)!r}: shape {shape} leaves {len(unknown)} dynamic dimensions unknown; "
            "the byte length can resolve only one",
            hint=f"give every dimension but one (the model's shape is {list(model)})",
        )
    if not unknown:
        return resolved
    known = math.prod(d for d in resolved if d != -1) * itemsize
    if known <= 0 or nbytes % known:
        raise InvalidInputError(
            f"tensor {clip(name)!r}: {nbytes} bytes are not a whole number of {shape} elements "
            f"({known} bytes each along the -1 dimension)",
            hint="check the data_type matches the bytes sent (float32 pixels are 4 bytes each)",
        )
    resolved[unknown[0]] = nbytes // known
    return resolved


def to_model_dtypes(feeds: Mapping[str, np.ndarray], specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """Floating-point pixels -> uint8 where the model takes uint8 (rule 3); other tensors unchanged."""
    out = dict(feeds)
    for spec in specs:
        array = feeds.get(spec.name)
        if array is not None and spec.dtype == np.uint8 and array.dtype.kind == "f":
            out[spec.name] = float_pixels_to_uint8(spec.name, array)
    return out


def float_pixels_to_uint8(name: str, array: np.ndarray) -> np.ndarray:
    """One conversion, then one comparison that proves nothing was lost (NaN, fractions, range)."""
    with np.errstate(invalid="ignore", over="ignore"):
        pixels = array.astype(np.uint8)
        exact = bool(np.array_equal(pixels, array))
    if not exact:
        finite = array[np.isfinite(array)]
        seen = f"{float(finite.min()):g}..{float(finite.max()):g}" if finite.size else "no finite values"
        raise InvalidInputError(
            f"input {clip(name)!r}: {FLOAT_PIXELS_RULE}; got {array.dtype} values {seen}",
            hint="send raw pixels (0..255, no normalisation), or uint8 bytes with data_type UINT8",
        )
    return pixels
