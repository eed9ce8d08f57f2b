"""``edgeinspect review`` as its own process on a free loopback port, for browser and retraining tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from edgeinspect.core.lifecycle import wait_until

from tests.fixtures.servers import LOOPBACK, free_port


@contextmanager
def review_process(store_url: str, out: Path) -> Iterator[str]:
    """Run the review app over ``store_url`` writing into ``out``; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "edgeinspect_cloud.cli", "review", "--captures", store_url,
               "--out", str(out), "--port", str(port), "--host", LOOPBACK]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://{LOOPBACK}:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        if (
            not wait_until(lambda: up() or proc.poll() is not None, 60, interval=0.2)
            or proc.poll() is not None
        ):
            proc.kill()
            pytest.fail(f"review did not start: {proc.communicate()[0].decode(errors='replace')}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
