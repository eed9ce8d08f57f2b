"""Secure headers on every response and the optional authentication, as plain ASGI middleware
(streaming-safe: the SSE stream passes through untouched).

Authentication (``EI_UI_AUTH``): ``bearer``, the default (API clients send ``Authorization: Bearer``;
a browser signs in once on ``/login`` and gets an HttpOnly cookie derived from the token, so the token
itself is never stored in or sent to the page; without ``EI_UI_TOKEN`` a token is generated once into
``EI_UI_STATE_DIR`` and printed once); ``basic`` (the browser asks for user and password); ``none``,
only for a loopback listener (``edgeinspect up``). The Host allow-list and the same-origin check of
POSTs are :class:`edgeinspect.core.webguard.HostGuard`, shared with the review app.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from edgeinspect.core.observability import get_logger
from edgeinspect.core.webguard import announced_secret, cookie, equal, mac
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgeinspect_ui.settings import UiSettings

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURE_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/login"})
SESSION_COOKIE = "ei_session"
log = get_logger(__name__)


class SecureHeaders:
    """Adds ``SECURE_HEADERS`` (and ``no-store`` on API JSON) to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _SECURE_NAMES]
                headers.extend(SECURE_HEADERS)
                if path.startswith("/api/") and not _has(headers, b"cache-control"):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


_SECURE_NAMES = frozenset(name for name, _ in SECURE_HEADERS)


def _has(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bool:
    return any(k.lower() == name for k, _ in headers)


def session_value(token: str) -> str:
    """The cookie a signed-in browser carries: derived from the token, useless for the API header."""
    return mac(token, "edgeinspect-ui-session-v1")


def bearer_token(settings: UiSettings) -> str:
    """``EI_UI_TOKEN``, or (bearer mode without one) the token generated into the state folder: made
    and printed on the first start only, read back on every later one."""
    if settings.ui_token is not None:
        return settings.ui_token.get_secret_value()
    if settings.ui_auth != "bearer":
        return ""
    path = settings.token_file()
    token, created = announced_secret(
        path,
        "edgeinspect-ui",
        "an access token",
        "Sign in on the page with it, or send `Authorization: Bearer <token>`.",
    )
    log.info("ui_token_generated" if created else "ui_token_loaded", path=str(path))
    return token


class Authenticator:
    """Decides whether a request may pass; holds the secrets, never renders them."""

    def __init__(self, settings: UiSettings, token: str | None = None) -> None:
        self.mode = settings.ui_auth
        if token is None:
            token = settings.ui_token.get_secret_value() if settings.ui_token else ""
        self._token = token
        user, password = settings.ui_user, settings.ui_password
        pair = f"{user}:{password.get_secret_value() if password else ''}".encode()
        self._basic = base64.b64encode(pair).decode()
        self._session = session_value(self._token) if self._token else ""

    def allows(self, headers: dict[str, str]) -> bool:
        if self.mode == "none":
            return True
        given = headers.get("authorization", "")
        if self.mode == "basic":
            return equal(given, f"Basic {self._basic}")
        if equal(given, f"Bearer {self._token}"):
            return True
        return equal(cookie(headers.get("cookie", ""), SESSION_COOKIE), self._session)

    def token_matches(self, token: str) -> bool:
        return self.mode == "bearer" and equal(token, self._token)

    def session_cookie(self, secure: bool) -> str:
        flags = "; Secure" if secure else ""
        return f"{SESSION_COOKIE}={self._session}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200{flags}"

    def challenge(self) -> str:
        return (
            'Basic realm="edgeinspect", charset="UTF-8"'
            if self.mode == "basic"
            else 'Bearer realm="edgeinspect"'
        )


class RequireAuth:
    """Lets public paths through; otherwise 401 (API) or a redirect to ``/login`` (the page, bearer mode)."""

    def __init__(self, app: ASGIApp, auth: Authenticator) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.auth.mode == "none" or _public(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.auth.allows(headers):
            await self.app(scope, receive, send)
            return
        if self.auth.mode == "bearer" and scope["path"] == "/" and scope["method"] == "GET":
            await _respond(send, 303, b"", [(b"location", b"/login")])
            return
        body = b'{"error":"authentication required","hint":"sign in, or send the Authorization header"}'
        await _respond(
            send,
            401,
            body,
            [(b"content-type", b"application/json"), (b"www-authenticate", self.auth.challenge().encode())],
        )


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith("/static/")


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
