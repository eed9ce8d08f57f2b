"""The trigger's auth (the UI's model): a bearer token, generated once (0600, printed once) when none
is configured; a Host allow-list; no cross-site browser POSTs; no auth only on loopback. Every refusal
happens before the body is read, and nothing refused reaches the stream."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest
import redis
from edgeinspect.core.errors import ConfigError
from edgeinspect.core.images import encode
from edgeinspect.core.lifecycle import wait_until
from edgeinspect_line_io.trigger import CameraTrigger, TriggerFailed
from pydantic import ValidationError

from tests.fixtures.servers import free_port
from tests.integration.camera.conftest import StartCamera, frames
from tests.unit.camera.helpers import make_image, settings, write_folder

PNG = encode(make_image(30), "png")


def _camera(start_camera: StartCamera, **overrides: object) -> str:
    port = free_port()
    camera = start_camera(source=f"http://127.0.0.1:{port}", **overrides)
    assert wait_until(lambda: camera.source_up, timeout=10)
    return f"http://127.0.0.1:{port}"


def test_without_the_token_nothing_reaches_the_line(
    start_camera: StartCamera, redis_client: redis.Redis, line_id: str
) -> None:
    url = _camera(start_camera, trigger_auth="bearer", trigger_token="s3cret-trigger-token-123")

    missing = httpx.post(f"{url}/frames", content=PNG)
    wrong = httpx.post(f"{url}/frames", content=PNG, headers={"Authorization": "Bearer nope"})
    capture = httpx.post(f"{url}/capture")

    for reply in (missing, wrong, capture):
        assert reply.status_code == 401, reply.text
        assert reply.headers["www-authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in reply.json()["hint"]
    good = httpx.post(
        f"{url}/frames", content=PNG, headers={"Authorization": "Bearer s3cret-trigger-token-123"}
    )
    assert good.status_code == 202, good.text
    assert wait_until(lambda: len(frames(redis_client, line_id)) == 1, timeout=10)
    assert [f.frame_id for f in frames(redis_client, line_id)] == [good.json()["frame_id"]]


def test_a_foreign_host_or_a_cross_site_page_is_refused_even_with_the_token(
    start_camera: StartCamera, redis_client: redis.Redis, line_id: str
) -> None:
    token = {"Authorization": "Bearer s3cret-trigger-token-123"}
    url = _camera(
        start_camera,
        trigger_auth="bearer",
        trigger_token="s3cret-trigger-token-123",
        trigger_allowed_hosts="camera",
    )

    rebinding = httpx.post(f"{url}/frames", content=PNG, headers={**token, "Host": "attacker.example"})
    cross_site = httpx.post(f"{url}/frames", content=PNG, headers={**token, "Sec-Fetch-Site": "cross-site"})
    by_name = httpx.post(f"{url}/frames", content=PNG, headers={**token, "Host": "camera:8090"})

    assert rebinding.status_code == 421 and "attacker.example" in rebinding.json()["error"]
    assert cross_site.status_code == 403
    assert by_name.status_code == 202, by_name.text
    assert wait_until(lambda: len(frames(redis_client, line_id)) == 1, timeout=10)


def test_a_generated_token_is_0600_printed_once_and_reused(
    start_camera: StartCamera, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "camera-state"
    url = _camera(start_camera, trigger_auth="bearer", trigger_state_dir=str(state))
    token_file = state / "trigger-token"
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert token in capfd.readouterr().err
    assert httpx.post(f"{url}/capture").status_code == 401

    url = _camera(start_camera, trigger_auth="bearer", trigger_state_dir=str(state))
    assert token not in capfd.readouterr().err  # printed only the first time
    reply = httpx.post(f"{url}/frames", content=PNG, headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 202, reply.text


def test_the_line_io_sends_the_token(start_camera: StartCamera, tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    write_folder(folder, 2)
    url = _camera(
        start_camera,
        trigger_auth="bearer",
        trigger_token="s3cret-trigger-token-123",
        trigger_source=f"folder://{folder}",
    )

    assert CameraTrigger(url, 5.0, "s3cret-trigger-token-123").capture("part-1").part_id == "part-1"
    with pytest.raises(TriggerFailed, match="401"):
        CameraTrigger(url, 5.0).capture("part-2")


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "[::]"])
def test_no_auth_is_refused_beyond_loopback(host: str) -> None:
    with pytest.raises((ValidationError, ConfigError), match="EI_TRIGGER_AUTH=none"):
        settings(source=f"http://{host}:8090", trigger_auth="none")
    assert settings(source="http://127.0.0.1:8090", trigger_auth="none").trigger_auth == "none"
