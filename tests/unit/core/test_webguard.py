"""The web pages' guards as pure logic: which hosts are loopback, which names a page answers to,
which POSTs came from another site, and how a generated secret is kept."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from edgeinspect.core.errors import ConfigError
from edgeinspect.core.webguard import (
    allowed_hosts,
    bearer_refusal,
    cross_origin,
    is_loopback,
    listen_host,
    load_or_create_secret,
    normalise_host,
    require_auth_beyond_loopback,
)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.0.2.7", "edge-1", "localhost.attacker.test"])
def test_hosts_reachable_from_elsewhere(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize(
    ("addr", "host"),
    [
        ("0.0.0.0:50051", "0.0.0.0"),
        ("127.0.0.1:50051", "127.0.0.1"),
        ("[::1]:50051", "::1"),
        ("[::]:50051", "::"),
        (":50051", ""),
        ("dns:///localhost:50051", "localhost"),
        ("ipv4:127.0.0.1:1", "127.0.0.1"),
    ],
)
def test_listen_host(addr: str, host: str) -> None:
    assert listen_host(addr) == host


def test_auth_may_be_off_on_loopback_only() -> None:
    require_auth_beyond_loopback(True, "127.0.0.1", "EI_X")
    require_auth_beyond_loopback(False, "0.0.0.0", "EI_X")
    with pytest.raises(ConfigError, match=r"EI_X: authentication is off while listening on '0\.0\.0\.0'"):
        require_auth_beyond_loopback(True, "0.0.0.0", "EI_X")


def test_host_names_are_compared_without_port_case_or_final_dot() -> None:
    assert normalise_host("Edge-UI.Factory.:8080") == "edge-ui.factory"
    assert normalise_host("[::1]:8080") == "[::1]"
    assert normalise_host("::1") == "[::1]"
    hosts = allowed_hosts("edge-ui.factory, 10.0.0.5:30080,")
    assert hosts == {"localhost", "127.0.0.1", "[::1]", "edge-ui.factory", "10.0.0.5"}
    assert allowed_hosts() == {"localhost", "127.0.0.1", "[::1]"}


def test_cross_origin_posts_are_told_apart() -> None:
    same = {"host": "127.0.0.1:8080", "origin": "http://127.0.0.1:8080"}
    assert cross_origin("POST", same) == ""
    assert cross_origin("POST", {"host": "127.0.0.1:8080"}) == "", "API clients send no Origin"
    assert cross_origin("GET", {"host": "a", "origin": "http://b"}) == "", "reads are not state changes"
    assert "not this site" in cross_origin("POST", {"host": "127.0.0.1:8080", "origin": "http://127.0.0.1:9"})
    assert "not this site" in cross_origin("POST", {"host": "127.0.0.1:8080", "origin": "null"})
    assert "cross-site" in cross_origin("POST", {"host": "h", "sec-fetch-site": "cross-site"})
    assert "same-site" in cross_origin("DELETE", {"host": "h", "sec-fetch-site": "same-site"})
    # a same-origin form under `Referrer-Policy: no-referrer`: Chromium sends Origin null
    assert cross_origin("POST", {"host": "h", "origin": "null", "sec-fetch-site": "same-origin"}) == ""
    assert "cross-site" in cross_origin(
        "POST", {"host": "h", "origin": "http://h", "sec-fetch-site": "cross-site"}
    )


def test_a_generated_secret_is_kept_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "token"
    secret, created = load_or_create_secret(path)
    assert created and len(secret) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_or_create_secret(path) == (secret, False)


def test_a_secret_others_may_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("x" * 40)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="others may read it") as caught:
        load_or_create_secret(path)
    assert "chmod 600" in caught.value.hint


def test_an_unwritable_state_folder_says_what_to_do(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "state"
    not_a_folder.write_text("")
    with pytest.raises(ConfigError, match="cannot keep a generated secret") as caught:
        load_or_create_secret(not_a_folder / "token")
    assert "writable" in caught.value.hint
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="not a plain file"):
        load_or_create_secret(tmp_path / "link")


def test_bearer_refusal_checks_host_then_origin_then_token() -> None:
    hosts = allowed_hosts("camera")
    ok = {"host": "camera:8090", "authorization": "Bearer tok-1234567890"}

    assert bearer_refusal("POST", ok, hosts, "tok-1234567890") is None
    assert bearer_refusal("POST", {"host": "127.0.0.1"}, hosts, "") is None  # auth off
    foreign = bearer_refusal("POST", {**ok, "host": "evil.example"}, hosts, "tok-1234567890")
    assert foreign is not None and foreign.status == 421
    page = bearer_refusal("POST", {**ok, "sec-fetch-site": "cross-site"}, hosts, "tok-1234567890")
    assert page is not None and page.status == 403
    missing = bearer_refusal("POST", {"host": "camera"}, hosts, "tok-1234567890")
    assert missing is not None and missing.status == 401 and "Bearer" in missing.hint
    wrong = bearer_refusal("GET", {**ok, "authorization": "Bearer tok"}, hosts, "tok-1234567890")
    assert wrong is not None and wrong.status == 401
