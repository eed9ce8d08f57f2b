"""A standard-library HTTP server whose threads, and the time a client may hold one, are bounded.

Why: ``ThreadingHTTPServer`` starts one thread per connection and waits forever for a request that
never finishes, so 300 half-sent requests (slowloris) hold 300 threads and their buffers. Here:

- at most ``max_connections`` connections are served at once; one more gets an immediate
  ``503`` (Retry-After) written from the accept loop, without a thread;
- each connection has ``request_deadline_s`` to deliver its request line, headers and body; a reaper
  thread shuts the socket of one that is late, which ends its blocking read, whatever it trickles
  (a per-``recv`` timeout alone is defeated by one byte every few seconds). A handler calls
  :meth:`BoundedHandler.request_received` once it has the whole request, so its own work (decoding,
  queueing) is not cut short.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_BUSY_BODY = b'{"error": "too many connections", "hint": "retry in a second"}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY
)


class BoundedHTTPServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` with a connection cap and a per-request deadline (see the module)."""

    daemon_threads = True
    request_queue_size = 128  # a burst of connects waits in the kernel, not in SYN retries of seconds

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        max_connections: int = 64,
        request_deadline_s: float = 10.0,
    ) -> None:
        self._closed = threading.Event()  # before binding: a failed bind calls server_close()
        super().__init__(address, handler)
        self.max_connections = max_connections
        self.request_deadline_s = request_deadline_s
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._deadlines: dict[int, tuple[float, socket.socket]] = {}
        self.refused = 0
        self.timed_out = 0
        self._reaper = threading.Thread(target=self._reap, name="http-deadline-reaper", daemon=True)
        self._reaper.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            with contextlib.suppress(OSError):
                request.sendall(_BUSY)
            self.shutdown_request(request)
            return
        with self._lock:
            self._deadlines[id(request)] = (time.monotonic() + self.request_deadline_s, request)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request)

    def request_received(self, request: Any) -> None:
        """The whole request is in: the deadline no longer applies to this connection."""
        with self._lock:
            self._deadlines.pop(id(request), None)

    def server_close(self) -> None:
        self._closed.set()
        super().server_close()

    def _release(self, request: Any) -> None:
        with self._lock:
            self._deadlines.pop(id(request), None)
        self._slots.release()

    def _reap(self) -> None:
        while not self._closed.wait(min(0.5, self.request_deadline_s / 4)):
            now = time.monotonic()
            with self._lock:
                late = [key for key, (deadline, _) in self._deadlines.items() if deadline <= now]
                sockets = [self._deadlines.pop(key)[1] for key in late]
            for sock in sockets:
                self.timed_out += 1
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class BoundedHandler(BaseHTTPRequestHandler):
    """A request handler for :class:`BoundedHTTPServer`; ``timeout`` also bounds each socket read."""

    timeout = 10.0
    disable_nagle_algorithm = True  # headers and body are two writes: without this, +200 ms per reply
    server: BoundedHTTPServer

    def request_received(self) -> None:
        """Call once the request (and its body) has been read in full."""
        self.server.request_received(self.request)
