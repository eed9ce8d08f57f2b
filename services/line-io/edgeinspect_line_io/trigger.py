"""Asking the camera for exactly one frame: ``POST {EI_CAMERA_URL}/capture?part_id=...``.

The camera's HTTP trigger answers ``202 {"frame_id", "ts_ns"}`` at once (see services/camera), so a
trigger costs one loopback request. With ``token`` (``EI_CAMERA_TOKEN``) every request carries
``Authorization: Bearer <token>``, the camera's trigger auth. Nothing is retried here: a second POST
would be a second frame, and a PLC trigger must give exactly one; a refused trigger is reported to the
caller instead.
"""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from edgeinspect.core.errors import EdgeInspectError


class TriggerFailed(EdgeInspectError):
    """The camera did not take the frame (down, queue full, no capture source)."""


@dataclass(frozen=True, slots=True)
class Triggered:
    """The frame the camera promised: its id and capture time (the reject gate is timed from it)."""

    frame_id: str
    ts_ns: int
    part_id: str


class CameraTrigger:
    """The camera's trigger server, one request at a time."""

    def __init__(self, url: str, timeout_s: float, token: str = "") -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise EdgeInspectError(
                f"EI_CAMERA_URL {url!r} is not an http://HOST:PORT URL",
                hint="point it at the camera's trigger server (its EI_SOURCE=http://HOST:PORT)",
            )
        self._host = parts.hostname
        self._port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout_s
        self._headers = {"Content-Length": "0"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None

    def capture(self, part_id: str) -> Triggered:
        """One frame now, tagged ``part_id``; ``TriggerFailed`` says why the camera refused."""
        path = f"{self._prefix}/capture?part_id={quote(part_id, safe='')}"
        with self._lock:
            try:
                status, body = self._post(path)
            except (OSError, http.client.HTTPException) as exc:
                self._reset()
                raise TriggerFailed(
                    f"camera trigger at {self._host}:{self._port} unreachable: {exc}",
                    hint="is the camera running with EI_SOURCE=http://HOST:PORT and EI_TRIGGER_SOURCE set?",
                ) from exc
        if status != 202:
            raise TriggerFailed(
                f"camera refused the trigger ({status}): {body.get('error', body)}",
                hint=str(body.get("hint", "")),
            )
        return Triggered(str(body["frame_id"]), int(str(body["ts_ns"])), part_id)

    def _post(self, path: str) -> tuple[int, dict[str, object]]:
        # The camera's server speaks HTTP/1.0 (one request per connection); a fresh connection also
        # means a failed request was never half-sent on a stale socket, so it cannot double a frame.
        self._reset()
        self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        self._conn.request("POST", path, body=b"", headers=self._headers)
        reply = self._conn.getresponse()
        raw = reply.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"error": raw[:200].decode("utf-8", "replace")}
        return reply.status, body if isinstance(body, dict) else {"error": body}

    def _reset(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._reset()
