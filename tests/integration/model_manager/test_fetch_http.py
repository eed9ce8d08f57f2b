"""Package downloads over http(s): verified, size-limited, and resumed with Range from a kept ``.part``.

A real HTTP server on loopback (``http.server`` on a thread, with Range support that can be switched
off) serves the bytes; production URLs are ``https://`` (presigned S3 URLs), which take the same path.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from edgeinspect.core.errors import StorageError
from edgeinspect.core.storage import ObjectNotFoundError
from edgeinspect_model_manager.errors import DeployError
from edgeinspect_model_manager.fetch import download, open_source, remote_size

from tests.fixtures.servers import LOOPBACK

BODY = bytes(range(256)) * 400  # 102400 bytes
SHA = hashlib.sha256(BODY).hexdigest()


class PackageServer:
    """Serves ``BODY`` at ``/pkg.tar.gz``; records the Range headers it was sent."""

    def __init__(self) -> None:
        self.honour_range = True
        self.ranges: list[str | None] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self._answer(head=True)

            def do_GET(self) -> None:
                self._answer(head=False)

            def _answer(self, head: bool) -> None:
                if self.path != "/pkg.tar.gz":
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                wanted = self.headers.get("Range")
                owner.ranges.append(wanted)
                start = 0
                found = re.fullmatch(r"bytes=(\d+)-", wanted or "")
                if found and owner.honour_range:
                    start = int(found.group(1))
                    if start >= len(BODY):
                        self.send_response(416)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(BODY) - 1}/{len(BODY)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(BODY) - start))
                self.end_headers()
                if not head:
                    self.wfile.write(BODY[start:])

            def log_message(self, *_args: object) -> None:
                return

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server.server_address[1]}/pkg.tar.gz"


@pytest.fixture
def http_server() -> Iterator[PackageServer]:
    server = PackageServer()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def fetch(url: str, dest: Path, sha: str | None = SHA, limit: int = 1 << 20) -> str:
    source = open_source(url, {}, allow_plain_http=True)
    return download(source, dest, sha, limit, lambda _done: None, timeout_s=5)


def test_a_package_downloads_whole_and_verified(http_server: PackageServer, tmp_path: Path) -> None:
    dest = tmp_path / "pkg.tar.gz"
    assert fetch(http_server.url, dest) == SHA
    assert dest.read_bytes() == BODY and not (tmp_path / "pkg.tar.gz.part").exists()
    assert remote_size(open_source(http_server.url, {}, True), 5) == len(BODY)


def test_a_kept_part_resumes_with_a_range_request(http_server: PackageServer, tmp_path: Path) -> None:
    dest = tmp_path / "pkg.tar.gz"
    (tmp_path / "pkg.tar.gz.part").write_bytes(BODY[:40000])  # what an interrupted download left
    assert fetch(http_server.url, dest) == SHA
    assert http_server.ranges == ["bytes=40000-"] and dest.read_bytes() == BODY


def test_a_server_without_range_support_restarts_from_zero(
    http_server: PackageServer, tmp_path: Path
) -> None:
    http_server.honour_range = False
    dest = tmp_path / "pkg.tar.gz"
    (tmp_path / "pkg.tar.gz.part").write_bytes(BODY[:40000])
    assert fetch(http_server.url, dest) == SHA and dest.read_bytes() == BODY


def test_a_wrong_sha256_keeps_nothing(http_server: PackageServer, tmp_path: Path) -> None:
    dest = tmp_path / "pkg.tar.gz"
    with pytest.raises(StorageError, match="sha256 mismatch"):
        fetch(http_server.url, dest, sha="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_more_bytes_than_the_limit_are_refused(http_server: PackageServer, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="more than the limit of 1000 bytes"):
        fetch(http_server.url, tmp_path / "pkg.tar.gz", limit=1000)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_package_is_reported_as_such(http_server: PackageServer, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFoundError, match="HTTP 404"):
        fetch(http_server.url.replace("pkg", "nope"), tmp_path / "x.tar.gz")


def test_plain_http_is_refused_unless_allowed() -> None:
    with pytest.raises(DeployError, match="plain http"):
        open_source("http://example.invalid/p.tar.gz", {}, allow_plain_http=False)
