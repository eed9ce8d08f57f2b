"""The worker <-> agent fast path: a unix socket with a tiny binary header, inputs in sealed memfds.

Why: a gRPC ``Predict`` through the agent's unix socket costs ~2 ms of transport per call on a
2-core box (protobuf building and parsing, HTTP/2 framing, gRPC's thread hand-offs, a copy of the
input out of shared memory). The worker only ever needs one thing: "run alias A on the tensor in my
segment, give me the outputs". This protocol does exactly that, and nothing else:

- **Segments are memfds sealed against shrinking** (``F_SEAL_SHRINK``), passed once per connection
  with ``SCM_RIGHTS`` (``REGISTER``). The agent checks the seal and maps the segment read-only, so it
  runs ONNX Runtime on a numpy *view* of the worker's tensor (no copy) and a client that resizes its
  segment cannot make the agent touch memory past its end (no SIGBUS: the kernel refuses the shrink).
- **A predict** names the model, the frame id and each input as ``(name, dtype, shape, segment,
  offset)``; the answer carries the outputs inline after a small header (scatter-gather send, one
  receive into one buffer; arrays are views of it).
- **Auth** is the agent socket's: a unix socket guarded by its file permissions (the same rule as
  the gRPC unix socket, :mod:`edgeinspect_inference.agent.auth`); the agent never listens on TCP here.

Every message is ``HEADER`` (magic ``EIFP``, version, kind, flags, body length) + body. All integers
are little endian. A malformed message is answered with an ``ERROR`` (code ``INVALID_ARGUMENT``) and,
when the framing itself is broken (bad magic, oversize body), the connection is closed: nothing a
client sends can crash the agent. The gRPC API stays the default for every other client; the worker
falls back to it when this socket is absent (:class:`FastPathClient` raises ``UNAVAILABLE``).
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import itertools
import math
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeinspect.core.errors import AgentError, MessageError
from edgeinspect.core.tensors import data_type_of, dtype_of

MAGIC = b"EIFP"
VERSION = 1
HEADER = struct.Struct("<4sBBHI")  # magic, version, kind, flags, body length
KIND_REGISTER = 1  # body: u64 size (the fd travels as SCM_RIGHTS)
KIND_REGISTERED = 2  # body: u32 segment handle
KIND_PREDICT = 3
KIND_RESULT = 4
KIND_ERROR = 5
FLAG_WAIT_SHADOW = 1
MAX_REQUEST_BODY = 64 * 1024
"""A predict names its inputs; their bytes are in segments, so a request body is small."""
MAX_INPUTS = 16
MAX_NDIM = 8
MAX_TEXT = 1024
ROLES = ("", "primary", "shadow")
SEALS_NEEDED = getattr(fcntl, "F_SEAL_SHRINK", 0x0002)
MAX_SEGMENTS_PER_CONNECTION = 32
"""The agent keeps at most this many segments mapped per connection; the client reconnects before."""
_U8, _U16, _U32, _U64, _F64 = (struct.Struct(f"<{c}") for c in "BHIQd")
_SERIALS = itertools.count(1)


class FastPathError(MessageError):
    """A fast-path message is malformed (truncated, wrong sizes, unknown kind): INVALID_ARGUMENT."""


def fast_socket_path(agent_addr: str) -> Path | None:
    """Where the agent at ``agent_addr`` listens for the fast path: ``agent.sock`` -> ``agent.fast.sock``.

    ``None`` for a TCP address (the fast path is local only)."""
    if not agent_addr.startswith("unix:"):
        return None
    rest = agent_addr.removeprefix("unix:")
    path = Path(rest[2:] if rest.startswith("//") else rest)
    return path.with_name(f"{path.stem}.fast{path.suffix or '.sock'}")


# ---- encoding ---------------------------------------------------------------------------------


class Writer:
    """Builds a body: length-prefixed text, fixed-size integers."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def u8(self, value: int) -> Writer:
        self.parts.append(_U8.pack(value))
        return self

    def u16(self, value: int) -> Writer:
        self.parts.append(_U16.pack(value))
        return self

    def u32(self, value: int) -> Writer:
        self.parts.append(_U32.pack(value))
        return self

    def u64(self, value: int) -> Writer:
        self.parts.append(_U64.pack(value))
        return self

    def f64(self, value: float) -> Writer:
        self.parts.append(_F64.pack(value))
        return self

    def text(self, value: str, limit: int = MAX_TEXT) -> Writer:
        raw = value.encode("utf-8")
        if len(raw) > limit:
            raise FastPathError(f"text of {len(raw)} bytes is longer than the fast path's {limit}")
        self.parts.append(_U16.pack(len(raw)) + raw)
        return self

    def bytes(self) -> bytes:
        return b"".join(self.parts)


class Reader:
    """Reads a body, refusing to run past its end (every read says what it was after)."""

    def __init__(self, body: bytes | bytearray | memoryview) -> None:
        self._view = memoryview(body)
        self.pos = 0

    def _take(self, size: int, what: str) -> memoryview:
        end = self.pos + size
        if size < 0 or end > len(self._view):
            raise FastPathError(
                f"fast-path message truncated: {what} needs {size} bytes at {self.pos}, "
                f"the body has {len(self._view)}"
            )
        chunk = self._view[self.pos : end]
        self.pos = end
        return chunk

    def u8(self, what: str) -> int:
        return int(_U8.unpack(self._take(1, what))[0])

    def u16(self, what: str) -> int:
        return int(_U16.unpack(self._take(2, what))[0])

    def u32(self, what: str) -> int:
        return int(_U32.unpack(self._take(4, what))[0])

    def u64(self, what: str) -> int:
        return int(_U64.unpack(self._take(8, what))[0])

    def f64(self, what: str) -> float:
        return float(_F64.unpack(self._take(8, what))[0])

    def text(self, what: str) -> str:
        size = self.u16(f"{what} length")
        try:
            return str(self._take(size, what).tobytes().decode("utf-8"))
        except UnicodeDecodeError:
            raise FastPathError(f"fast-path {what} is not UTF-8") from None

    def raw(self, size: int, what: str) -> memoryview:
        return self._take(size, what)

    def done(self) -> None:
        if self.pos != len(self._view):
            raise FastPathError(f"fast-path message has {len(self._view) - self.pos} bytes after its end")


def header(kind: int, body_len: int, flags: int = 0) -> bytes:
    return HEADER.pack(MAGIC, VERSION, kind, flags, body_len)


def parse_header(raw: bytes | bytearray, max_body: int) -> tuple[int, int, int]:
    """``(kind, flags, body length)``; ``FastPathError`` for a bad magic, version or oversize body."""
    magic, version, kind, flags, size = HEADER.unpack(raw)
    if magic != MAGIC:
        raise FastPathError(f"not a fast-path message (magic {bytes(magic)!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise FastPathError(f"fast-path version {version} is not supported (this side speaks {VERSION})")
    if size > max_body:
        raise FastPathError(f"fast-path message body of {size} bytes is larger than the limit {max_body}")
    return kind, flags, size


@dataclass(frozen=True)
class InputRef:
    """One input of a predict: ``shape`` of ``dtype`` at ``offset`` in registered segment ``segment``."""

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    segment: int
    offset: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


@dataclass(frozen=True)
class OutputArea:
    """Where the agent may write the outputs: ``capacity`` bytes at ``offset`` of segment ``segment``."""

    segment: int
    offset: int
    capacity: int


@dataclass(frozen=True)
class PredictRequest:
    model: str
    frame_id: str
    inputs: tuple[InputRef, ...]
    wait_shadow: bool = False
    output: OutputArea | None = None


def encode_predict(request: PredictRequest) -> bytes:
    """Header + body of a predict."""
    if len(request.inputs) > MAX_INPUTS:
        raise FastPathError(f"{len(request.inputs)} inputs; the fast path carries at most {MAX_INPUTS}")
    body = Writer().text(request.model).text(request.frame_id).u8(len(request.inputs))
    for ref in request.inputs:
        body.text(ref.name).u8(data_type_of(ref.dtype)).u8(len(ref.shape))
        for dim in ref.shape:
            body.u32(dim)
        body.u32(ref.segment).u64(ref.offset)
    if request.output is None:
        body.u8(0)
    else:
        body.u8(1).u32(request.output.segment).u64(request.output.offset).u64(request.output.capacity)
    raw = body.bytes()
    return header(KIND_PREDICT, len(raw), FLAG_WAIT_SHADOW if request.wait_shadow else 0) + raw


def decode_predict(body: bytes | bytearray | memoryview, flags: int) -> PredictRequest:
    """A predict body; ``FastPathError`` (saying what) for anything malformed."""
    reader = Reader(body)
    model = reader.text("model name")
    frame_id = reader.text("frame id")
    count = reader.u8("input count")
    if count > MAX_INPUTS:
        raise FastPathError(f"predict names {count} inputs; at most {MAX_INPUTS}")
    inputs = []
    for index in range(count):
        name = reader.text(f"input {index} name")
        dtype = _dtype(reader.u8(f"input {name!r} dtype"), f"input {name!r}")
        ndim = reader.u8(f"input {name!r} rank")
        if ndim > MAX_NDIM:
            raise FastPathError(f"input {name!r} has rank {ndim}; at most {MAX_NDIM}")
        shape = tuple(reader.u32(f"input {name!r} dimension") for _ in range(ndim))
        inputs.append(InputRef(name, dtype, shape, reader.u32("segment"), reader.u64("offset")))
    output = None
    if reader.u8("output area flag"):
        output = OutputArea(reader.u32("output segment"), reader.u64("output offset"), reader.u64("capacity"))
    reader.done()
    return PredictRequest(model, frame_id, tuple(inputs), bool(flags & FLAG_WAIT_SHADOW), output)


def _dtype(code: int, what: str) -> np.dtype[Any]:
    try:
        return dtype_of(code)
    except MessageError as exc:
        raise FastPathError(f"{what}: {exc.message}") from None


def _tensor_meta(body: Writer, name: str, value: np.ndarray, placed: int | None) -> None:
    """Name, dtype, shape, size, then where the bytes are: inline (0) or at an offset of the area (1)."""
    body.text(name).u8(data_type_of(value.dtype)).u8(value.ndim)
    for dim in value.shape:
        body.u32(dim)
    body.u64(value.nbytes)
    if placed is None:
        body.u8(0)
    else:
        body.u8(1).u64(placed)


OutputWriter = Callable[[np.ndarray], int | None]
"""Writes an output into the caller's output area; its offset there, or None when it does not fit."""


def encode_result(
    name: str,
    version: str,
    latency_ms: float,
    role: str,
    outputs: Mapping[str, np.ndarray],
    shadow: tuple[str, float, Mapping[str, np.ndarray]] | None,
    place: OutputWriter | None = None,
) -> list[bytes | memoryview]:
    """Header + body of an answer as buffers to send with ``sendmsg`` (output bytes are not joined).

    ``place``: outputs it accepts are written into the caller's output area (only their offsets
    travel); the rest go inline after the metadata.
    """
    body = Writer().text(name).text(version).f64(latency_ms).u8(ROLES.index(role) if role in ROLES else 0)
    inline: list[np.ndarray] = []

    def describe(items: Mapping[str, np.ndarray]) -> None:
        body.u8(len(items))
        for key, value in items.items():
            array = np.ascontiguousarray(value)
            placed = place(array) if place is not None and array.nbytes else None
            if placed is None:
                inline.append(array)
            _tensor_meta(body, key, array, placed)

    describe(outputs)
    if shadow is None:
        body.u8(0)
    else:
        body.u8(1).text(shadow[0]).f64(shadow[1])
        describe(shadow[2])
    meta = body.bytes()
    blobs = [a.reshape(-1).view(np.uint8).data for a in inline if a.nbytes]
    size = len(meta) + sum(b.nbytes for b in blobs)
    return [header(KIND_RESULT, size), meta, *blobs]


@dataclass(frozen=True)
class FastResult:
    """The answer to a predict: outputs (read-only views of the received buffer), who answered."""

    name: str
    version: str
    latency_ms: float
    role: str
    outputs: dict[str, np.ndarray]
    shadow: tuple[str, float, dict[str, np.ndarray]] | None


_Meta = tuple[str, np.dtype[Any], tuple[int, ...], int, int | None]


def _read_metas(reader: Reader, what: str) -> list[_Meta]:
    count = reader.u8(f"{what} count")
    metas = []
    for _ in range(count):
        name = reader.text(f"{what} name")
        dtype = _dtype(reader.u8(f"{what} dtype"), f"{what} {name!r}")
        ndim = reader.u8(f"{what} rank")
        if ndim > MAX_NDIM:
            raise FastPathError(f"{what} {name!r} has rank {ndim}; at most {MAX_NDIM}")
        shape = tuple(reader.u32(f"{what} dimension") for _ in range(ndim))
        size = reader.u64(f"{what} size")
        if size != math.prod(shape) * dtype.itemsize:
            raise FastPathError(f"{what} {name!r}: {size} bytes do not fit shape {list(shape)} of {dtype}")
        placed = reader.u64(f"{what} offset") if reader.u8(f"{what} placement") else None
        metas.append((name, dtype, shape, size, placed))
    return metas


def decode_result(body: bytearray, area: memoryview | None = None) -> FastResult:
    """An answer; inline arrays are views of ``body`` (which the caller hands over), arrays the agent
    wrote into the output area ``area`` are copied out of it (the caller reuses the area)."""
    reader = Reader(body)
    name, version = reader.text("model name"), reader.text("version")
    latency_ms = reader.f64("latency")
    role_index = reader.u8("role")
    metas = _read_metas(reader, "output")
    shadow_meta: tuple[str, float, list[Any]] | None = None
    if reader.u8("shadow flag"):
        shadow_meta = (
            reader.text("shadow version"),
            reader.f64("shadow latency"),
            _read_metas(reader, "output"),
        )

    def arrays(items: list[_Meta]) -> dict[str, np.ndarray]:
        out = {}
        for key, dtype, shape, size, placed in items:
            if placed is None:
                data = reader.raw(size, f"output {key!r} data")
                out[key] = np.frombuffer(data, dtype=dtype).reshape(shape)
                continue
            if area is None or placed + size > area.nbytes or placed % dtype.itemsize:
                raise FastPathError(f"output {key!r} was placed outside the output area")
            out[key] = np.frombuffer(area[placed : placed + size], dtype=dtype).reshape(shape).copy()
        return out

    outputs = arrays(metas)
    shadow = None
    if shadow_meta is not None:
        shadow = (shadow_meta[0], shadow_meta[1], arrays(shadow_meta[2]))
    reader.done()
    role = ROLES[role_index] if role_index < len(ROLES) else ""
    return FastResult(name, version, latency_ms, role, outputs, shadow)


def encode_error(code: str, message: str) -> bytes:
    raw = Writer().text(code, 64).text(message[:4000], 16_000).bytes()
    return header(KIND_ERROR, len(raw)) + raw


def decode_error(body: bytes | bytearray) -> AgentError:
    reader = Reader(body)
    return AgentError(reader.text("error code"), reader.text("error message"))


# ---- sockets ------------------------------------------------------------------------------------


def recv_exact(sock: socket.socket, size: int, what: str) -> bytearray:
    """Exactly ``size`` bytes; ``ConnectionError`` when the peer closes first."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    done = 0
    while done < size:
        got = sock.recv_into(view[done:], size - done)
        if got == 0:
            raise ConnectionError(f"fast-path peer closed the connection during {what} ({done}/{size} bytes)")
        done += got
    return buffer


def send_all(sock: socket.socket, buffers: Sequence[bytes | memoryview]) -> None:
    """``sendmsg`` the buffers (scatter-gather), resuming after partial sends."""
    pending = [memoryview(b).cast("B") for b in buffers if len(b)]
    while pending:
        sent = sock.sendmsg(pending)
        while sent:
            head = pending[0]
            if sent >= head.nbytes:
                sent -= head.nbytes
                pending.pop(0)
            else:
                pending[0] = head[sent:]
                sent = 0


# ---- the client (worker side) -------------------------------------------------------------------


class SealedSegment:
    """A memfd the worker writes tensors into, sealed so it can never shrink (what the agent demands)."""

    def __init__(self, size: int, name: str = "ei-fast") -> None:
        import mmap

        self.size = size
        self.serial = next(_SERIALS)  # identifies it on a connection (ids of freed objects recur)
        self.fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.ftruncate(self.fd, size)
        fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, SEALS_NEEDED | fcntl.F_SEAL_GROW)
        self._map = mmap.mmap(self.fd, size)

    def view(self, dtype: np.dtype[Any], shape: tuple[int, ...], offset: int = 0) -> np.ndarray:
        """A writable array over the segment (preprocess writes the tensor here: no staging copy)."""
        if offset < 0 or offset + math.prod(shape) * np.dtype(dtype).itemsize > self.size:
            raise FastPathError(
                f"{list(shape)} of {dtype} at {offset} does not fit a {self.size}-byte segment"
            )
        return np.ndarray(shape, dtype=dtype, buffer=self._map, offset=offset)

    def write(self, value: np.ndarray, offset: int = 0) -> SegmentTensor:
        """Copy ``value`` in at ``offset`` (one copy, any memory layout) and return what to send."""
        np.copyto(self.view(value.dtype, tuple(value.shape), offset), value, casting="no")
        return SegmentTensor(self, offset, value.dtype, tuple(value.shape))

    def close(self) -> None:
        with contextlib.suppress(BufferError):  # a view is still alive somewhere; the GC unmaps with it
            self._map.close()
        os.close(self.fd)


@dataclass(frozen=True)
class SegmentTensor:
    """A tensor written into a :class:`SealedSegment`: what a fast-path predict sends for an input."""

    segment: SealedSegment
    offset: int
    dtype: np.dtype[Any]
    shape: tuple[int, ...]


class _Connection:
    """One socket to the agent and the segments registered on it (one call at a time)."""

    def __init__(self, path: Path, timeout_s: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout_s)
        try:
            self.sock.connect(str(path))
        except OSError:
            self.sock.close()
            raise
        self.handles: dict[int, int] = {}  # SealedSegment.serial -> the agent's handle

    def handle(self, segment: SealedSegment) -> int:
        key = segment.serial
        if key not in self.handles:
            message = header(KIND_REGISTER, 8) + _U64.pack(segment.size)
            fds = array.array("i", [segment.fd])
            self.sock.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
            kind, body = self.receive()
            if kind != KIND_REGISTERED:
                raise _unexpected(kind, body, "REGISTERED")
            self.handles[key] = Reader(body).u32("segment handle")
        return self.handles[key]

    def receive(self) -> tuple[int, bytearray]:
        kind, _flags, size = parse_header(recv_exact(self.sock, HEADER.size, "header"), 1 << 31)
        return kind, recv_exact(self.sock, size, "body")

    def close(self) -> None:
        self.sock.close()


def _unexpected(kind: int, body: bytearray, wanted: str) -> AgentError:
    if kind == KIND_ERROR:
        return decode_error(body)
    return AgentError("INTERNAL", f"fast path: the agent answered kind {kind}, expected {wanted}")


class FastPathClient:
    """Predictions over the agent's fast-path socket; thread-safe (a pool of connections).

    Transport failures raise :class:`AgentError` ``UNAVAILABLE`` (the caller falls back to gRPC);
    the agent's refusals raise :class:`AgentError` with the same codes gRPC would carry.
    """

    def __init__(self, path: Path, *, timeout_s: float = 10.0) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def available(self) -> bool:
        """Whether the socket file exists (cheap; a connect may still fail)."""
        return self.path.is_socket()

    @contextmanager
    def _connection(self) -> Iterator[_Connection]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is not None and len(conn.handles) >= MAX_SEGMENTS_PER_CONNECTION - MAX_INPUTS:
            conn.close()  # segments were replaced (grown) often: start afresh, the agent unmaps the old
            conn = None
        if conn is None:
            try:
                conn = _Connection(self.path, self.timeout_s)
            except OSError as exc:
                raise AgentError(
                    "UNAVAILABLE",
                    f"fast path {self.path}: cannot connect: {exc.strerror or exc}",
                    hint="is the agent running with EI_FAST_PATH=true on the same host?",
                ) from None
        try:
            yield conn
        except TimeoutError:
            conn.close()
            raise AgentError(
                "DEADLINE_EXCEEDED", f"fast path {self.path}: no answer within {self.timeout_s}s"
            ) from None
        except (OSError, FastPathError) as exc:
            conn.close()  # the stream is out of step or gone: never reuse it
            raise AgentError("UNAVAILABLE", f"fast path {self.path}: {exc}") from None
        except BaseException:
            conn.close()
            raise
        with self._lock:
            if self._closed:
                conn.close()
            else:
                self._idle.append(conn)

    def predict(
        self,
        model: str,
        inputs: Mapping[str, SegmentTensor],
        frame_id: str = "",
        *,
        wait_shadow: bool = False,
        output: tuple[SealedSegment, int, int] | None = None,
    ) -> FastResult:
        """Run ``model`` on inputs already written into segments (:meth:`SealedSegment.write`).

        ``output``: ``(segment, offset, capacity)`` the agent may write the outputs into (one copy,
        no socket traffic for a big mask); outputs that do not fit come inline."""
        with self._connection() as conn:
            refs = tuple(
                InputRef(name, t.dtype, t.shape, conn.handle(t.segment), t.offset)
                for name, t in inputs.items()
            )
            area = None
            if output is not None:
                area = OutputArea(conn.handle(output[0]), output[1], output[2])
            conn.sock.sendall(encode_predict(PredictRequest(model, frame_id, refs, wait_shadow, area)))
            kind, body = conn.receive()
            if kind == KIND_RESULT:
                if output is None:
                    return decode_result(body)
                view = output[0].view(np.dtype(np.uint8), (output[2],), output[1])
                return decode_result(body, view.data)
            error = _unexpected(kind, body, "RESULT")
        raise error

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conn in self._idle:
                conn.close()
            self._idle.clear()
