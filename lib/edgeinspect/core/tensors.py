"""numpy <-> agent ``Tensor`` conversion, shared by the agent and every client so both agree on bytes.

A tensor travels as ``TensorMetadata{name, data_type, shape}`` plus either raw C-order bytes or a
``SharedMemoryHandle{size, offset, segment_id}``. Shared memory follows one rule, defined here and
nowhere else (:func:`is_posix_segment`): a ``segment_id`` below 2**31 is a System V shmid (what
``shmget`` returns, and what SageMaker Edge clients send); from 2**31 up it is our POSIX
shared-memory object ``/ei-shm-<id>`` (``/dev/shm/ei-shm-<id>`` on Linux), which the writer (the
worker) creates with :class:`ShmSegment`. Decoding bytes never copies: arrays are read-only views.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from edgeinspect.core.agentapi import sm_pb2
from edgeinspect.core.errors import MessageError

SHM_PREFIX = "ei-shm-"
"""Shared-memory objects are named ``ei-shm-<segment_id>`` (POSIX adds the leading slash)."""
POSIX_SEGMENT_MIN = 1 << 31
"""Segment ids from here up name POSIX segments; below are System V shmids (``shmget`` gives an int)."""

_DTYPES: dict[int, np.dtype[Any]] = {
    sm_pb2.UINT8: np.dtype(np.uint8),
    sm_pb2.INT16: np.dtype(np.int16),
    sm_pb2.INT32: np.dtype(np.int32),
    sm_pb2.INT64: np.dtype(np.int64),
    sm_pb2.FLOAT16: np.dtype(np.float16),
    sm_pb2.FLOAT32: np.dtype(np.float32),
    sm_pb2.FLOAT64: np.dtype(np.float64),
}
_DATA_TYPES: dict[np.dtype[Any], int] = {dtype: code for code, dtype in _DTYPES.items()}


class TensorError(MessageError):
    """A tensor's metadata and data disagree (unknown dtype, bad shape, wrong byte length, bad handle)."""


@dataclass(frozen=True)
class SharedTensor:
    """A tensor that lives in a shared-memory segment: send this instead of the array's bytes."""

    segment_id: int
    offset: int
    dtype: np.dtype[Any]
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


ShmResolver = Callable[[int, int, int], memoryview]
"""``(segment_id, offset, size) -> memoryview`` of exactly ``size`` bytes; raises ``TensorError``."""


def shm_name(segment_id: int) -> str:
    """The POSIX shared-memory name of segment ``segment_id`` (without the leading slash)."""
    return f"{SHM_PREFIX}{segment_id}"


def is_posix_segment(segment_id: int) -> bool:
    """Whether ``segment_id`` names our POSIX segment (else it is a System V shmid)."""
    return segment_id >= POSIX_SEGMENT_MIN


def dtype_of(data_type: int) -> np.dtype[Any]:
    """numpy dtype of a ``DataType`` value; ``TensorError`` for a value this API does not define."""
    try:
        return _DTYPES[data_type]
    except KeyError:
        names = ", ".join(sm_pb2.DataType.Name(code) for code in _DTYPES)
        raise TensorError(f"unknown tensor data_type {data_type}; expected one of {names}") from None


def data_type_of(dtype: np.dtype[Any] | type[Any] | str) -> int:
    """``DataType`` value of a numpy dtype; ``TensorError`` for dtypes the API cannot carry (e.g. bool)."""
    key = np.dtype(dtype)
    try:
        return _DATA_TYPES[key]
    except KeyError:
        supported = ", ".join(str(d) for d in _DTYPES.values())
        raise TensorError(f"dtype {key} cannot travel as an agent tensor; use one of {supported}") from None


def data_type_name(data_type: int) -> str:
    """Human name of a ``DataType`` (``FLOAT32``), for error messages."""
    return str(sm_pb2.DataType.Name(data_type)) if data_type in _DTYPES else f"<unknown {data_type}>"


def metadata(name: str, dtype: np.dtype[Any], shape: tuple[int, ...]) -> sm_pb2.TensorMetadata:
    """The ``TensorMetadata`` for a tensor called ``name``."""
    data_type: Any = data_type_of(dtype)
    return sm_pb2.TensorMetadata(name=name.encode(), data_type=data_type, shape=list(shape))


def to_tensor(name: str, value: np.ndarray | SharedTensor) -> sm_pb2.Tensor:
    """Encode an array as C-order bytes, or a :class:`SharedTensor` as a shared-memory handle."""
    if isinstance(value, SharedTensor):
        handle = sm_pb2.SharedMemoryHandle(
            size=value.nbytes, offset=value.offset, segment_id=value.segment_id
        )
        return sm_pb2.Tensor(
            tensor_metadata=metadata(name, value.dtype, value.shape), shared_memory_handle=handle
        )
    array = np.asarray(value)
    return sm_pb2.Tensor(
        tensor_metadata=metadata(name, array.dtype, tuple(array.shape)),
        byte_data=np.ascontiguousarray(array).tobytes(),
    )


def tensor_name(tensor: sm_pb2.Tensor) -> str:
    """The tensor's name as text (the wire carries bytes)."""
    try:
        return tensor.tensor_metadata.name.decode()
    except UnicodeDecodeError:
        raise TensorError(f"tensor name {tensor.tensor_metadata.name!r} is not UTF-8") from None


def from_tensor(tensor: sm_pb2.Tensor, resolve_shm: ShmResolver | None = None) -> tuple[str, np.ndarray]:
    """Decode a tensor into ``(name, read-only array)`` without copying its data.

    Raises ``TensorError`` saying what was expected when the byte length does not match
    ``shape x itemsize``, the shape has a negative dimension, or the data is missing.
    """
    name = tensor_name(tensor)
    meta = tensor.tensor_metadata
    dtype = dtype_of(meta.data_type)
    shape = tuple(int(d) for d in meta.shape)
    if any(d < 0 for d in shape):
        raise TensorError(f"tensor {name!r}: shape {list(shape)} has a negative dimension")
    expected = math.prod(shape) * dtype.itemsize
    source = tensor.WhichOneof("data")
    if source == "shared_memory_handle":
        buffer = _shm_buffer(name, tensor.shared_memory_handle, expected, resolve_shm)
    elif source == "byte_data" or expected == 0:
        buffer = memoryview(tensor.byte_data)
    else:
        raise TensorError(f"tensor {name!r} has neither byte_data nor shared_memory_handle")
    if buffer.nbytes != expected:
        raise TensorError(
            f"tensor {name!r}: expected {expected} bytes for shape {list(shape)} of "
            f"{data_type_name(meta.data_type)}, got {buffer.nbytes}"
        )
    return name, np.frombuffer(buffer, dtype=dtype).reshape(shape)


def _shm_buffer(
    name: str, handle: sm_pb2.SharedMemoryHandle, expected: int, resolve_shm: ShmResolver | None
) -> memoryview:
    if resolve_shm is None:
        raise TensorError(f"tensor {name!r} uses shared memory, which this endpoint does not accept")
    if handle.size != expected:
        raise TensorError(
            f"tensor {name!r}: shared_memory_handle.size is {handle.size}, "
            f"but its shape and data_type need {expected} bytes"
        )
    return resolve_shm(handle.segment_id, handle.offset, handle.size)


def from_tensors(tensors: Any, resolve_shm: ShmResolver | None = None) -> dict[str, np.ndarray]:
    """Decode repeated tensors into a name -> array dict; a repeated name is a ``TensorError``."""
    arrays: dict[str, np.ndarray] = {}
    for tensor in tensors:
        name, array = from_tensor(tensor, resolve_shm)
        if name in arrays:
            raise TensorError(f"tensor {name!r} is given twice")
        arrays[name] = array
    return arrays


class ShmSegment:
    """A shared-memory segment the writer owns: write arrays once, send :class:`SharedTensor` refs.

    The agent maps the segment by name and reads in place, so a large frame crosses no socket. The
    owner must not overwrite a region while a request that references it is in flight.
    """

    def __init__(self, segment_id: int, size: int) -> None:
        if not is_posix_segment(segment_id):
            raise TensorError(
                f"POSIX segment id {segment_id} is below {POSIX_SEGMENT_MIN}, where ids mean System V shmids",
                hint="add core.tensors.POSIX_SEGMENT_MIN to the id",
            )
        self.segment_id = segment_id
        self._shm = shared_memory.SharedMemory(name=shm_name(segment_id), create=True, size=size)

    @property
    def size(self) -> int:
        return int(self._shm.size)

    def write(self, array: np.ndarray, offset: int = 0) -> SharedTensor:
        """Copy ``array`` into the segment at ``offset`` and return the reference to send."""
        source = np.ascontiguousarray(array)
        if offset < 0 or offset + source.nbytes > self.size:
            raise TensorError(
                f"{source.nbytes} bytes at offset {offset} do not fit segment {self.segment_id} "
                f"of {self.size} bytes"
            )
        view = np.ndarray(source.shape, dtype=source.dtype, buffer=self._shm.buf, offset=offset)
        view[...] = source
        del view  # release the export so close() can unmap
        return SharedTensor(self.segment_id, offset, source.dtype, tuple(source.shape))

    def close(self) -> None:
        """Unmap and remove the segment (readers that mapped it keep their mapping until they drop it)."""
        self._shm.close()
        self._shm.unlink()

    def __enter__(self) -> ShmSegment:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
