"""``edgeinspect review`` as its own process on a free loopback port, for browser and retraining tests.

It runs with two named reviewers (``REVIEWERS``: name -> token) and its state folder beside ``out``,
so nothing is written to the home folder; ``sign_in`` is what a reviewer does on the page.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.messages import now_ns
from edgeinspect_cloud.data.synth import render_sample

from tests.fixtures.servers import LOOPBACK, free_port
from tests.helpers.captures import capture_of, store_captures

REVIEWERS = {"ana": "ana-token-for-tests", "retrain-test": "retrain-token-for-tests"}
USERS_ENV = ",".join(f"{name}:{token}" for name, token in REVIEWERS.items())


CAPTURE_HEIGHT, CAPTURE_WIDTH = 64, 32


def small_capture_store(redis_url: str, client: redis.Redis, line: str, tmp_path: Path) -> str:
    """A ``file://`` store with two good-part captures (``c0``, ``c1``) put there by the real uploader."""
    captures = []
    for index in range(2):
        pixels, _ = render_sample(np.random.default_rng([3, index]), CAPTURE_HEIGHT, CAPTURE_WIDTH, False)
        captures.append(
            capture_of(line, f"c{index}", pixels, ts_ns=now_ns() + index, verdict="ok", score=0.2)
        )
    url = f"file://{tmp_path / 'store'}"
    store_captures(redis_url, client, url, tmp_path / "spool", captures)
    return url


def bearer(name: str) -> dict[str, str]:
    """The header an API client sends as reviewer ``name``."""
    return {"authorization": f"Bearer {REVIEWERS[name]}"}


@contextmanager
def review_process(
    store_url: str, out: Path, *, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[str]:
    """Run the review app over ``store_url`` writing into ``out``; yields its base URL.

    ``env`` replaces the default ``EI_REVIEW_*`` settings (the two test reviewers); ``log`` keeps the
    process's output (what it printed on start) in a file.
    """
    port = free_port()
    command = [sys.executable, "-m", "edgeinspect_cloud.cli", "review", "--captures", store_url,
               "--out", str(out), "--port", str(port), "--host", LOOPBACK]  # fmt: skip
    settings = env if env is not None else {"EI_REVIEW_USERS": USERS_ENV}
    settings.setdefault("EI_REVIEW_STATE_DIR", str(out.parent / "review-state"))
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EI_")} | settings
    sink = log.open("ab") if log is not None else subprocess.PIPE
    proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=full_env)
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
            output = proc.communicate()[0] or (log.read_bytes() if log else b"")
            pytest.fail(f"review did not start: {output.decode(errors='replace')}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if log is not None and not isinstance(sink, int):
            sink.close()


def sign_in(page: Any, url: str, name: str = "ana") -> None:
    """Open the review page in the browser and sign in as ``name`` (the page asks first)."""
    page.goto(url + "/")
    page.wait_for_selector("#token")
    page.fill("#user", name)
    page.fill("#token", REVIEWERS[name])
    page.locator("button[type=submit]").click()
    page.wait_for_function(f"() => document.getElementById('reviewer')?.textContent === '{name}'")
