"""The agent's side of the worker fast path (protocol: :mod:`edgeinspect.core.fastpath`).

A unix socket beside the gRPC one (``agent.sock`` -> ``agent.fast.sock``), created with the gRPC
socket's file mode: the same auth model (a unix socket is guarded by its file permissions; no TCP).
One thread per connection reads a fixed header, then a small body:

- ``REGISTER`` + one fd (``SCM_RIGHTS``): the fd must be a memfd sealed against shrinking
  (``F_SEAL_SHRINK``) and at most ``EI_MAX_TENSOR_BYTES``; it is mapped read-only for the life of
  the connection. The seal is what makes a *view* safe where a POSIX segment (:mod:`.shm`) has to be
  copied: nobody can truncate the file under the mapping, so no access can SIGBUS.
- ``PREDICT``: inputs become numpy views of the mapped segments (bounds, alignment and size checked
  first) and go to :meth:`ModelTable.predict` without a copy; the outputs go back inline.

Anything malformed is answered with ``ERROR`` (``INVALID_ARGUMENT`` and a message saying what was
wrong); a broken framing (bad magic/version, oversize body) also closes that connection. Errors of
the model table carry the same status names as gRPC (:func:`.errors.status_name`). A connection's
failure never reaches another connection or the agent.

``batch_window_ms`` > 0: predicts for the same model that arrive within the window (from several
lines' workers) run as one ``predict_batch`` (one ``session.run`` when the model has a dynamic batch
axis); 0 (default) runs each at once.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import mmap
import os
import socket
import stat
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.fastpath import (
    HEADER,
    KIND_PREDICT,
    KIND_REGISTER,
    KIND_REGISTERED,
    MAX_INPUTS,
    MAX_REQUEST_BODY,
    MAX_SEGMENTS_PER_CONNECTION,
    SEALS_NEEDED,
    FastPathError,
    OutputWriter,
    PredictRequest,
    Reader,
    decode_predict,
    encode_error,
    encode_result,
    header,
    parse_header,
    recv_exact,
    send_all,
)
from edgeinspect.core.observability import get_logger

from edgeinspect_inference.agent.errors import describe, status_name
from edgeinspect_inference.agent.records import PredictCall, PredictOutcome
from edgeinspect_inference.agent.table import ModelTable

log = get_logger(__name__)
_FD_SPACE = socket.CMSG_SPACE(4 * array.array("i").itemsize)


class _Closed(Exception):
    """The peer went away (or the server is stopping): end this connection quietly."""


@dataclass
class _Segment:
    map: mmap.mmap
    size: int
    writable: bool


@dataclass
class _Connection:
    sock: socket.socket
    segments: dict[int, _Segment] = field(default_factory=dict)
    next_handle: int = 1


class FastPathServer:
    """Serves fast-path connections on ``path`` until :meth:`stop`."""

    def __init__(
        self,
        path: Path,
        table: ModelTable,
        *,
        max_segment_bytes: int,
        max_connections: int = 64,
        batch_window_ms: float = 0.0,
        mode_of: Path | None = None,
    ) -> None:
        self.path = path
        self._table = table
        self._max_segment = max_segment_bytes
        self._max_connections = max_connections
        self._mode_of = mode_of
        self._batcher = _Batcher(table, batch_window_ms / 1000.0) if batch_window_ms > 0 else None
        self._listener: socket.socket | None = None
        self._connections: dict[int, tuple[socket.socket, threading.Thread]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._acceptor: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FastPathServer:
        """Bind (replacing a socket a killed agent left), take the gRPC socket's mode, start accepting."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_socket():
            self.path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        if self._mode_of is not None and self._mode_of.is_socket():
            os.chmod(self.path, stat.S_IMODE(self._mode_of.stat().st_mode))
        listener.listen(self._max_connections)
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept_loop, name="fastpath-accept", daemon=True)
        self._acceptor.start()
        log.info("fastpath_serving", path=str(self.path), batch_window_ms=self._batch_window_ms())
        return self

    def _batch_window_ms(self) -> float:
        return 0.0 if self._batcher is None else self._batcher.window_s * 1000.0

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting; connections finish the request they are in, then close (up to ``grace_s``)."""
        self._stopping.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        with self._lock:
            connections = list(self._connections.values())
        for sock, _thread in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD)  # an idle reader wakes up; a busy one still answers
        deadline = time.monotonic() + grace_s  # one grace for all: a stop is bounded by it, not n times it
        for _sock, thread in connections:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._acceptor is not None:
            self._acceptor.join(max(0.0, deadline - time.monotonic()))

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed: stopping
            with self._lock:
                full = len(self._connections) >= self._max_connections
            if full:
                with contextlib.suppress(OSError):
                    sock.sendall(
                        encode_error(
                            "RESOURCE_EXHAUSTED",
                            f"the fast path serves at most {self._max_connections} connections "
                            "(EI_FAST_PATH_MAX_CONNECTIONS); use gRPC or fewer worker threads",
                        )
                    )
                sock.close()
                continue
            thread = threading.Thread(target=self._serve, args=(sock,), name="fastpath-conn", daemon=True)
            with self._lock:
                self._connections[id(sock)] = (sock, thread)
            thread.start()

    # ---- one connection -------------------------------------------------------------------------

    def _serve(self, sock: socket.socket) -> None:
        conn = _Connection(sock)
        key = id(sock)  # not the fd: a closed fd's number is reused by the next connection
        try:
            while True:  # stop() shuts the read side: the next read ends the loop
                self._one_message(conn)
        except _Closed:
            pass
        except Exception:  # a bug must close one connection, never the agent
            log.exception("fastpath_connection_failed")
        finally:
            for segment in conn.segments.values():
                with contextlib.suppress(BufferError):  # a view still alive: the GC unmaps with it
                    segment.map.close()
            conn.segments.clear()
            sock.close()
            with self._lock:
                self._connections.pop(key, None)

    def _one_message(self, conn: _Connection) -> None:
        """Read one message and answer it; raise :class:`_Closed` when the connection must end."""
        raw, fds = self._receive_header(conn.sock)
        try:
            try:
                kind, flags, size = parse_header(raw, MAX_REQUEST_BODY)
            except FastPathError as exc:
                self._refuse(conn.sock, exc)
                raise _Closed from None  # the stream is out of step: nothing after this can be trusted
            body = recv_exact(conn.sock, size, "body") if size else bytearray()
            if kind == KIND_REGISTER:
                self._register(conn, body, fds)
                fds = []  # owned (and closed) by _register
            elif kind == KIND_PREDICT:
                self._predict(conn, body, flags)
            else:
                self._refuse(conn.sock, FastPathError(f"unknown fast-path message kind {kind}"))
        except OSError:  # the peer went away mid-answer (ConnectionError, EPIPE): not a bug
            raise _Closed from None
        finally:
            for fd in fds:
                os.close(fd)

    def _receive_header(self, sock: socket.socket) -> tuple[bytearray, list[int]]:
        """The fixed header, and any fds that came with its first byte (closed by the caller)."""
        try:
            data, ancillary, flags, _ = sock.recvmsg(HEADER.size, _FD_SPACE)
        except OSError:
            raise _Closed from None
        fds: list[int] = []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % array.array("i").itemsize
                fds.extend(array.array("i", payload[:usable]))
        if flags & socket.MSG_CTRUNC:  # more fds than we take: the kernel closed the rest
            log.warning("fastpath_fds_truncated")
        if not data:
            for fd in fds:
                os.close(fd)
            raise _Closed
        raw = bytearray(data)
        if len(raw) < HEADER.size:
            try:
                raw += recv_exact(sock, HEADER.size - len(raw), "header")
            except (ConnectionError, OSError):
                for fd in fds:
                    os.close(fd)
                raise _Closed from None
        return raw, fds

    def _refuse(self, sock: socket.socket, exc: BaseException, model: str = "") -> None:
        """Answer with the error's status name and message (counted against the model when known)."""
        if model:
            self._table.count_error(model, exc)
        code = status_name(exc)
        if code == "INTERNAL" and not isinstance(exc, EdgeInspectError):
            log.exception("fastpath_request_failed", exc_info=exc)
        else:
            log.warning("fastpath_request_refused", code=code, error=describe(exc)[:300])
        sock.sendall(encode_error(code, describe(exc)))

    def _register(self, conn: _Connection, body: bytearray, fds: list[int]) -> None:
        try:
            segment = self._map_segment(conn, body, fds)
        except FastPathError as exc:
            self._refuse(conn.sock, exc)
            return
        finally:
            for fd in fds:
                os.close(fd)
        handle = conn.next_handle
        conn.next_handle += 1
        conn.segments[handle] = segment
        conn.sock.sendall(header(KIND_REGISTERED, 4) + handle.to_bytes(4, "little"))

    def _map_segment(self, conn: _Connection, body: bytearray, fds: list[int]) -> _Segment:
        """Check the fd (one, a sealed memfd within the size limit) and map it read-only."""
        Reader(body).u64("segment size")  # the client's claim; the file's real size decides
        if len(fds) != 1:
            raise FastPathError(
                f"REGISTER carries {len(fds)} file descriptors; send exactly one (SCM_RIGHTS)"
            )
        if len(conn.segments) >= MAX_SEGMENTS_PER_CONNECTION:
            raise FastPathError(
                f"this connection already has {len(conn.segments)} segments; reconnect to start afresh"
            )
        fd = fds[0]
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FastPathError("the registered fd is not a memfd (not a regular file)")
        try:
            seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        except OSError:
            raise FastPathError(
                "the registered fd does not support seals; create it with memfd_create(MFD_ALLOW_SEALING)"
            ) from None
        if not seals & SEALS_NEEDED:
            raise FastPathError(
                "the registered memfd is not sealed against shrinking; add F_SEAL_SHRINK before sending it"
            )
        if info.st_size <= 0 or info.st_size > self._max_segment:
            raise FastPathError(
                f"segment of {info.st_size} bytes: a segment must hold 1 to {self._max_segment} bytes "
                "(EI_MAX_TENSOR_BYTES)"
            )
        try:  # writable when the client allows it (an output area); else read-only
            mapped = mmap.mmap(fd, info.st_size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
            return _Segment(mapped, info.st_size, writable=True)
        except (OSError, ValueError):
            pass
        try:
            mapped = mmap.mmap(fd, info.st_size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        except (OSError, ValueError) as exc:
            raise FastPathError(f"the registered segment cannot be mapped: {exc}") from None
        return _Segment(mapped, info.st_size, writable=False)

    def _predict(self, conn: _Connection, body: bytearray, flags: int) -> None:
        model = ""
        try:
            request = decode_predict(body, flags)
            model = request.model
            feeds = self._feeds(conn, request)
            place = self._output_area(conn, request)
            outcome = self._run(request, feeds)
        except Exception as exc:  # every refusal is an answer; the connection goes on
            self._refuse(conn.sock, exc, model)
            return
        shadow = None
        if outcome.shadow is not None:
            shadow = (outcome.shadow.version, outcome.shadow.latency_ms, outcome.shadow.outputs)
        buffers = encode_result(
            outcome.name, outcome.version, outcome.latency_ms, outcome.role, outcome.outputs, shadow, place
        )
        send_all(conn.sock, buffers)

    @staticmethod
    def _output_area(conn: _Connection, request: PredictRequest) -> OutputWriter | None:
        """A writer into the request's output area (checked now: a bad area is refused before the run)."""
        area = request.output
        if area is None:
            return None
        segment = conn.segments.get(area.segment)
        if segment is None:
            raise FastPathError(f"output area: segment {area.segment} is not registered on this connection")
        if not segment.writable:
            raise FastPathError("output area: the segment was registered read-only; send a writable memfd")
        if area.offset + area.capacity > segment.size:
            raise FastPathError(
                f"output area of {area.capacity} bytes at offset {area.offset} runs past the end of its "
                f"{segment.size}-byte segment"
            )
        cursor = area.offset
        end = area.offset + area.capacity

        def place(array: np.ndarray) -> int | None:
            nonlocal cursor
            start = -(-cursor // 64) * 64  # 64-byte aligned, as numpy and ORT like it
            if start + array.nbytes > end:
                return None  # goes inline
            target = np.frombuffer(segment.map, dtype=np.uint8, count=array.nbytes, offset=start)
            target[:] = array.reshape(-1).view(np.uint8)
            cursor = start + array.nbytes
            return start - area.offset

        return place

    def _feeds(self, conn: _Connection, request: PredictRequest) -> dict[str, np.ndarray]:
        """Read-only views of the named segments; every bound checked before any view is made."""
        feeds: dict[str, np.ndarray] = {}
        if len(request.inputs) > MAX_INPUTS:
            raise FastPathError(f"at most {MAX_INPUTS} inputs")
        for ref in request.inputs:
            segment = conn.segments.get(ref.segment)
            if segment is None:
                raise FastPathError(
                    f"input {ref.name!r}: segment {ref.segment} is not registered on this connection"
                )
            if ref.name in feeds:
                raise FastPathError(f"input {ref.name!r} is given twice")
            if ref.offset % ref.dtype.itemsize:
                raise FastPathError(f"input {ref.name!r}: offset {ref.offset} is not aligned to {ref.dtype}")
            if ref.offset + ref.nbytes > segment.size:
                raise FastPathError(
                    f"input {ref.name!r}: {ref.nbytes} bytes at offset {ref.offset} run past the end of "
                    f"its {segment.size}-byte segment"
                )
            count = ref.nbytes // ref.dtype.itemsize
            view = np.frombuffer(segment.map, dtype=ref.dtype, count=count, offset=ref.offset)
            feeds[ref.name] = view.reshape(ref.shape)
        return feeds

    def _run(self, request: PredictRequest, feeds: dict[str, np.ndarray]) -> PredictOutcome:
        """Predict on views of the client's memory: a shadow that reads them after we answer gets the
        copy the shadow runner takes when it queues the run (before the primary returns)."""
        if self._batcher is not None and not request.wait_shadow:
            return self._batcher.submit(PredictCall(request.model, feeds, request.frame_id))
        return self._table.predict(request.model, feeds, wait_shadow=request.wait_shadow)


class _Batcher:
    """Collects predicts for the same model for ``window_s``, then runs them as one ``predict_batch``.

    The first caller of a window waits the window out and runs the batch; the others wait for its
    result. When the batch fails, each call is run again on its own: one line's bad frame (a wrong
    shape, a wrong dtype) fails only that line's call, with its own error, and the other lines'
    frames in the window are still answered.
    """

    def __init__(self, table: ModelTable, window_s: float) -> None:
        self.window_s = window_s
        self._table = table
        self._lock = threading.Lock()
        self._open: dict[str, list[tuple[PredictCall, Future[PredictOutcome]]]] = {}

    def submit(self, call: PredictCall) -> PredictOutcome:
        future: Future[PredictOutcome] = Future()
        with self._lock:
            waiting = self._open.get(call.model)
            leader = waiting is None
            if waiting is None:
                waiting = self._open[call.model] = []
            waiting.append((call, future))
        if leader:
            threading.Event().wait(self.window_s)
            with self._lock:
                batch = self._open.pop(call.model)
            self._run(batch)
        return future.result()

    def _run(self, batch: list[tuple[PredictCall, Future[PredictOutcome]]]) -> None:
        try:
            outcomes = self._table.predict_batch([call for call, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            frames = [call.frame_id for call, _ in batch]
            log.warning(
                "fastpath_batch_failed", model=batch[0][0].model, frame_ids=frames, error=str(exc)[:200]
            )
            for one in batch:  # alone, each call gets its own answer or its own error
                self._run([one])
            return
        except BaseException as exc:  # interpreter shutdown: nobody is left waiting for an answer
            for _, future in batch:
                future.set_exception(exc)
            raise
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            future.set_result(outcome)


def connection_count(server: FastPathServer) -> int:
    """How many connections are open (tests)."""
    with server._lock:
        return len(server._connections)
