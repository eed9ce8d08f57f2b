"""Who may review, and who did: every request but the probes and the sign-in form needs a reviewer.

A decision becomes a training label, so the name recorded with it is the signed-in reviewer's, never
a name the client sends. Reviewers come from ``EI_REVIEW_USERS`` (``name:token,name:token``); without
it one reviewer, ``reviewer``, gets a token generated into ``EI_REVIEW_STATE_DIR`` (mode 0600), printed
on the first start only. API clients send ``Authorization: Bearer <token>``; a browser signs in on
``/login`` and carries an HttpOnly cookie derived from its token (the token never reaches the page).
The Host allow-list and the same-origin check of POSTs are :class:`edgeinspect.core.webguard.HostGuard`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs

from edgeinspect.core.errors import ConfigError
from edgeinspect.core.observability import get_logger
from edgeinspect.core.settings import ServiceSettings
from edgeinspect.core.webguard import announced_secret, cookie, equal, headers_of, mac, respond
from pydantic import Field, SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

log = get_logger(__name__)
SESSION_COOKIE = "ei_review"
DEFAULT_REVIEWER = "reviewer"
PUBLIC_PATHS = frozenset({"/healthz", "/login"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MAX_FORM = 4096


class ReviewSettings(ServiceSettings):
    """The review app's access settings (``EI_REVIEW_*``); where it listens is ``--host``/``--port``."""

    service_name: ClassVar[str] = "edgeinspect review"

    review_users: SecretStr | None = Field(
        default=None, description="reviewers and their tokens: name:token,name:token (unset: one generated)"
    )
    review_state_dir: Path = Field(
        default=Path("~/.local/state/edgeinspect/review"),
        description="where the generated reviewer token is kept (file review-token, mode 0600)",
    )
    review_allowed_hosts: str = Field(
        default="", description="host names the page answers to besides localhost, 127.0.0.1, [::1]"
    )


def session_value(user: str, token: str) -> str:
    return f"{user}:{mac(token, 'edgeinspect-review-session-v1:' + user)}"


class Reviewers:
    """The reviewers and their tokens; answers who sent a request, holds the secrets, never shows them."""

    def __init__(self, tokens: dict[str, str]) -> None:
        if not tokens:
            raise ConfigError("EI_REVIEW_USERS names no reviewer", hint="set it to name:token[,name:token]")
        if len(set(tokens.values())) != len(tokens):
            raise ConfigError("EI_REVIEW_USERS: two reviewers share a token", hint="give each its own token")
        self._tokens = tokens

    @classmethod
    def parse(cls, text: str) -> Reviewers:
        """``ana:tok1,bob:tok2`` -> reviewers; a malformed entry names itself (without its token)."""
        tokens: dict[str, str] = {}
        for number, entry in enumerate((part.strip() for part in text.split(",")), start=1):
            if not entry:
                continue
            name, sep, token = entry.partition(":")
            if not sep or not _NAME.match(name) or len(token) < 8:
                named = f" (reviewer {name!r})" if sep and _NAME.match(name) else ""  # never the token
                raise ConfigError(
                    f"EI_REVIEW_USERS: entry {number}{named} is not name:token",
                    hint="names are letters, digits and _.@-; tokens at least 8 characters",
                )
            tokens[name] = token
        return cls(tokens)

    @classmethod
    def from_settings(cls, settings: ReviewSettings) -> Reviewers:
        """``EI_REVIEW_USERS``, or the one generated reviewer (printed once, then read back)."""
        if settings.review_users is not None:
            return cls.parse(settings.review_users.get_secret_value())
        path = settings.review_state_dir.expanduser() / "review-token"
        token, created = announced_secret(
            path,
            "review",
            f"a token for reviewer {DEFAULT_REVIEWER!r}",
            "Sign in on the page with it; set EI_REVIEW_USERS=name:token,... to give each reviewer a "
            "name of their own.",
        )
        log.info("review_token_generated" if created else "review_token_loaded", path=str(path))
        return cls({DEFAULT_REVIEWER: token})

    def sign_in(self, user: str, token: str) -> bool:
        return equal(token, self._tokens.get(user, ""))

    def who(self, headers: dict[str, str]) -> str | None:
        """The reviewer a request comes from (bearer token or session cookie), or None."""
        given = headers.get("authorization", "")
        if given.startswith("Bearer "):
            for user, token in self._tokens.items():
                if equal(given[7:], token):
                    return user
        session = cookie(headers.get("cookie", ""), SESSION_COOKIE)
        user = session.partition(":")[0]
        if user in self._tokens and equal(session, session_value(user, self._tokens[user])):
            return user
        return None

    def session_cookie(self, user: str, secure: bool) -> str:
        flags = "; Secure" if secure else ""
        value = session_value(user, self._tokens[user])
        return f"{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200{flags}"

    def login_form(self, body: bytes) -> tuple[str, str]:
        """The (user, token) of a sign-in form post."""
        form = parse_qs(body[:MAX_FORM].decode("utf-8", "replace"))
        return form.get("user", [""])[0].strip(), form.get("token", [""])[0]


class RequireReviewer:
    """Puts the signed-in reviewer in ``request.state.reviewer``; otherwise 401 (API) or the sign-in
    form (the page). The probes, the sign-in form and static files need no reviewer."""

    def __init__(self, app: ASGIApp, reviewers: Reviewers) -> None:
        self.app = app
        self.reviewers = reviewers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in PUBLIC_PATHS or path.startswith("/static/"):
            await self.app(scope, receive, send)
            return
        user = self.reviewers.who(headers_of(scope))
        if user is not None:
            scope.setdefault("state", {})["reviewer"] = user
            await self.app(scope, receive, send)
            return
        if path == "/" and scope["method"] == "GET":
            await send({"type": "http.response.start", "status": 303, "headers": [(b"location", b"/login")]})
            await send({"type": "http.response.body", "body": b""})
            return
        await respond(
            send,
            401,
            "sign in first: reviewing needs a reviewer",
            "sign in on /login, or send Authorization: Bearer <your review token>",
            [(b"www-authenticate", b'Bearer realm="edgeinspect-review"')],
        )
