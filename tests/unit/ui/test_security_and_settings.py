"""Settings validation and the authentication rules (pure logic; the HTTP side is an integration test)."""

from __future__ import annotations

import base64

import pytest
from edgeinspect.core.errors import ConfigError
from edgeinspect_ui.security import Authenticator, session_value
from edgeinspect_ui.settings import UiSettings


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EI_UI_PORT", "9090")
    monkeypatch.setenv("EI_AGENT_ADDR", "unix:///run/edgeinspect/agent.sock")
    settings = UiSettings.load()
    assert settings.ui_port == 9090 and settings.agent_addr == "unix:///run/edgeinspect/agent.sock"
    assert UiSettings.load(ui_port=8080).ui_auth == "bearer", "authentication is on unless turned off"


def test_no_auth_only_on_loopback() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        assert UiSettings.load(ui_auth="none", http_host=host).ui_auth == "none"
    for host in ("0.0.0.0", "::", "192.0.2.7"):
        with pytest.raises(
            ConfigError, match="EI_UI_AUTH=none is allowed only when EI_HTTP_HOST is loopback"
        ):
            UiSettings.load(ui_auth="none", http_host=host)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"ui_auth": "basic"}, "EI_UI_PASSWORD"),
        ({"ui_lines": "ok,bad line"}, "EI_UI_LINES"),
        ({"ui_shift_starts": "06:00,25:00"}, "EI_UI_SHIFT_STARTS"),
        ({"ui_auth": "magic"}, "EI_UI_AUTH"),
    ],
)
def test_a_bad_setting_fails_naming_its_variable(overrides: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        UiSettings.load(**overrides)


def test_secrets_do_not_print() -> None:
    settings = UiSettings.load(ui_auth="bearer", ui_token="hunter2-token")
    assert "hunter2-token" not in repr(settings) and "hunter2-token" not in str(settings.model_dump())


def test_no_auth_lets_everything_through() -> None:
    assert Authenticator(UiSettings.load(ui_auth="none")).allows({})


def test_basic_auth_needs_the_exact_pair() -> None:
    auth = Authenticator(UiSettings.load(ui_auth="basic", ui_user="op", ui_password="pw"))
    good = "Basic " + base64.b64encode(b"op:pw").decode()
    assert auth.allows({"authorization": good})
    assert not auth.allows({"authorization": "Basic " + base64.b64encode(b"op:px").decode()})
    assert not auth.allows({})
    assert auth.challenge().startswith("Basic")


def test_bearer_takes_the_token_or_the_derived_session_cookie_only() -> None:
    auth = Authenticator(UiSettings.load(ui_auth="bearer", ui_token="tok"))
    assert auth.allows({"authorization": "Bearer tok"})
    assert not auth.allows({"authorization": "Bearer tokx"})
    cookie = f"theme=dark; ei_session={session_value('tok')}"
    assert auth.allows({"cookie": cookie})
    assert not auth.allows({"cookie": "ei_session=tok"}), "the raw token is not a session"
    assert auth.token_matches("tok") and not auth.token_matches("")
    assert "HttpOnly" in auth.session_cookie(secure=True) and "Secure" in auth.session_cookie(secure=True)
