"""What every edgeinspect web page needs before it trusts a request: a Host allow-list (against DNS
rebinding), a same-origin check on state-changing requests (against cross-site request forgery),
generated secrets kept in a 0600 file, and the rule that only a loopback listener may go without auth.

Plain ASGI (no web framework imported), so the live UI and the review app share one implementation:

    app = HostGuard(app, allowed_hosts(settings.ui_allowed_hosts), exempt=PROBE_PATHS)

A browser page served on any name resolves to whatever the attacker's DNS says; a name that is not
ours in the ``Host`` header is how such a request is told apart from a real one. The probes stay
exempt: kubelet and Prometheus send the pod's IP as the host, and they reveal no data.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import stat
import sys
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edgeinspect.core.errors import ConfigError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ANY_HOST = "*"


def is_loopback(host: str) -> bool:
    """True for ``127.0.0.0/8``, ``::1`` (bracketed or not) and ``localhost``; every other name,
    ``0.0.0.0`` and ``::`` included, can be reached from beyond this machine."""
    name = host.strip().lower().removeprefix("[").removesuffix("]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def listen_host(addr: str) -> str:
    """The host part of a listen address: ``0.0.0.0:50051`` -> ``0.0.0.0``, ``[::1]:1`` -> ``::1``,
    ``:50051`` (every interface) -> ``""``; a gRPC scheme (``dns:``, ``ipv4:``, ``ipv6:``) is dropped."""
    rest = addr.strip()
    for scheme in ("dns:///", "dns:", "ipv4:", "ipv6:"):
        rest = rest.removeprefix(scheme)
    if rest.startswith("["):
        return rest[1:].partition("]")[0]
    if rest.count(":") > 1:  # a bare IPv6 address without a port
        return rest
    return rest.rpartition(":")[0] if ":" in rest else rest


def require_auth_beyond_loopback(auth_off: bool, host: str, variables: str) -> None:
    """Refuse an unauthenticated listener on anything but loopback (``edgeinspect up`` may stay open)."""
    if auth_off and not is_loopback(host):
        raise ConfigError(
            f"{variables}: authentication is off while listening on {host or 'every interface'!r}, "
            "so anyone who reaches the port could use it",
            hint="turn authentication on (the default; a token is generated), or listen on 127.0.0.1 / ::1",
        )


def normalise_host(value: str) -> str:
    """``Example.COM.:8080`` -> ``example.com``; ``[::1]:8080`` -> ``[::1]``; the port never matters."""
    name = value.strip().lower()
    if name.startswith("["):
        return name.partition("]")[0] + "]"
    if name.count(":") > 1:  # an IPv6 literal without brackets (only from configuration)
        return f"[{name}]"
    return name.partition(":")[0].rstrip(".")


def allowed_hosts(configured: str | Iterable[str] = "") -> frozenset[str]:
    """The loopback names plus the configured ones (comma-separated); ``*`` switches the check off."""
    names = configured.split(",") if isinstance(configured, str) else list(configured)
    return DEFAULT_HOSTS | {normalise_host(n) for n in names if n.strip()}


def mac(secret: str, label: str) -> str:
    """A value derived from ``secret`` (HMAC-SHA256) that cannot be turned back into it: what a
    browser's session cookie carries instead of the token itself."""
    return hmac.new(secret.encode(), label.encode(), hashlib.sha256).hexdigest()


def equal(given: str, expected: str) -> bool:
    """Constant-time comparison; an empty expected value never matches."""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def cookie(header: str, name: str) -> str:
    """The value of cookie ``name`` in a ``Cookie`` header ("" when absent)."""
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


def headers_of(scope: Scope) -> dict[str, str]:
    """The request headers, lower-cased names (the last of repeated ones wins)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def cross_origin(method: str, headers: dict[str, str]) -> str:
    """Why a state-changing request looks like it came from another site's page ("" when it did not).

    Current browsers send ``Sec-Fetch-Site`` on every request, which is decisive; older ones send
    ``Origin`` on every POST (``null`` where the page's referrer policy hides it, as ours does for a
    form, so ``Sec-Fetch-Site`` comes first). API clients (curl, the CLI, tests) send neither and
    authenticate with a header, which no other page can set.
    """
    if method.upper() in SAFE_METHODS:
        return ""
    site = headers.get("sec-fetch-site")
    if site is not None:
        return "" if site in ("same-origin", "none") else f"Sec-Fetch-Site is {site!r}"
    origin = headers.get("origin")
    if origin is None:
        return ""
    host = headers.get("host", "").strip().lower()
    netloc = urlsplit(origin).netloc.lower() if origin != "null" else ""
    return "" if netloc and netloc == host else f"Origin {origin!r} is not this site ({host!r})"


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused before its body is read: status, the error and what to do."""

    status: int
    error: str
    hint: str


def host_refusal(headers: dict[str, str], hosts: frozenset[str]) -> Refusal | None:
    """421 when the ``Host`` header names a host outside ``hosts`` (``*`` in ``hosts``: any)."""
    host = normalise_host(headers.get("host", ""))
    if ANY_HOST in hosts or host in hosts:
        return None
    return Refusal(
        421,
        f"this server does not answer to the host name {host or '(none)'!r}",
        "open it by a name it knows (localhost, 127.0.0.1, [::1]), or add the name to the "
        "service's allowed-hosts setting",
    )


def bearer_refusal(method: str, headers: dict[str, str], hosts: frozenset[str], token: str) -> Refusal | None:
    """For a plain (non-ASGI) API: the Host allow-list (421), the same-origin rule (403) and
    ``Authorization: Bearer <token>`` (401; an empty ``token`` means authentication is off)."""
    refused = host_refusal(headers, hosts)
    if refused is not None:
        return refused
    reason = cross_origin(method, headers)
    if reason:
        return Refusal(
            403, f"cross-origin request refused: {reason}", "call the API directly, not from a page"
        )
    if token and not equal(headers.get("authorization", ""), f"Bearer {token}"):
        return Refusal(
            401,
            "missing or wrong bearer token",
            "send `Authorization: Bearer <token>` with the token the service printed on its first start "
            "(or the one configured for it)",
        )
    return None


class HostGuard:
    """Answers 421 to a ``Host`` outside the allow-list and 403 to a cross-origin state change;
    everything else (and the exempt probe paths) passes to ``app`` untouched."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str], exempt: frozenset[str] = PROBE_PATHS) -> None:
        self.app = app
        self.hosts = hosts
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        headers = headers_of(scope)
        refused = host_refusal(headers, self.hosts)
        if refused is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": "unknown host"})
                return
            await respond(send, refused.status, refused.error, refused.hint)
            return
        reason = cross_origin(scope.get("method", "GET"), headers) if scope["type"] == "http" else ""
        if reason:
            await respond(
                send,
                403,
                f"cross-origin request refused: {reason}",
                "use the page itself; API clients send no Origin header",
            )
            return
        await self.app(scope, receive, send)


async def respond(send: Send, status: int, error: str, hint: str, extra: Iterable[Any] = ()) -> None:
    """A small JSON error response, ``{"error": ..., "hint": ...}``."""
    body = json.dumps({"error": error, "hint": hint}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def load_or_create_secret(path: Path) -> tuple[str, bool]:
    """The secret kept in ``path``, made (32 random bytes, URL-safe, mode 0600) when missing.

    Returns ``(secret, created)``: the caller prints a created secret once, so a restart reuses the
    file silently. A file others may read is refused rather than trusted.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        if path.is_file() and not path.is_symlink():
            return _read_secret(path), False
        raise _unwritable(path, "it is not a plain file") from None
    except OSError as exc:
        raise _unwritable(path, exc.strerror or str(exc)) from exc
    secret = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret, True


def announced_secret(path: Path, service: str, what: str, usage: str) -> tuple[str, bool]:
    """:func:`load_or_create_secret`, and a created secret printed once on stderr with ``usage``."""
    secret, created = load_or_create_secret(path)
    if created:
        print(
            f"{service}: generated {what} (kept in {path}, mode 0600; printed only this once):"
            f"\n\n    {secret}\n\n{usage}",
            file=sys.stderr,
            flush=True,
        )
    return secret, created


def _unwritable(path: Path, why: str) -> ConfigError:
    return ConfigError(
        f"cannot keep a generated secret in {path}: {why}",
        hint="make the state folder writable (a volume in a container), or supply your own secret",
    )


def _read_secret(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path} holds a secret but others may read it (mode {stat.S_IMODE(mode):o})",
            hint=f"run `chmod 600 {path}` (or delete it to have a new secret generated)",
        )
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret) < 16:
        raise ConfigError(
            f"{path} holds a secret shorter than 16 characters",
            hint="delete the file to have a new secret generated, or write a longer one",
        )
    return secret
