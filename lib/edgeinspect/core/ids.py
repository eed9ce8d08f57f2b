"""Identifiers that arrive from the network and end up in file paths, checked in one place.

Why: a job id, model name or version becomes a folder name (staging, install, spool). A deploy job with
``jobId`` ``..`` once made the staging cleanup delete every installed model. So every such id is
checked against a strict pattern the moment it arrives, and every path built from one goes through
:func:`safe_join`, which refuses to leave its base folder whatever the id says (defence in depth).

The rules:

- job id: AWS IoT's own rule, ``[a-zA-Z0-9_-]{1,64}``;
- thing name: AWS IoT's rule, ``[a-zA-Z0-9:_-]{1,128}``;
- model name: letters and digits joined by single or repeated ``-``, at most 63 (a package name);
- model version: letters and digits joined by ``.`` or ``-`` ("7", "1.10", "2024-06-01", "2.0-rc1"),
  at most 64, so never ``.`` or ``..``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.safejson import clip

JOB_ID_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
THING_PATTERN = r"^[a-zA-Z0-9:_-]{1,128}$"
MODEL_NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$"
MODEL_NAME_MAX = 63
MODEL_VERSION_PATTERN = r"^[0-9A-Za-z]+([.-][0-9A-Za-z]+)*$"
MODEL_VERSION_MAX = 64

_RULES: dict[str, tuple[re.Pattern[str], int, str]] = {
    "job id": (re.compile(JOB_ID_PATTERN), 64, "use 1-64 letters, digits, '_' or '-' (AWS IoT's rule)"),
    "thing name": (re.compile(THING_PATTERN), 128, "use 1-128 letters, digits, ':', '_' or '-'"),
    "model name": (
        re.compile(MODEL_NAME_PATTERN),
        MODEL_NAME_MAX,
        "use letters and digits joined by '-', at most 63 characters",
    ),
    "model version": (
        re.compile(MODEL_VERSION_PATTERN),
        MODEL_VERSION_MAX,
        "use letters and digits joined by '.' or '-' (e.g. '7', '1.10'), at most 64 characters",
    ),
}


class IdentifierError(EdgeInspectError, ValueError):
    """An id that may not be used (as a path part, a topic level, a key); names the rule broken.

    A ``ValueError`` too, so a pydantic validator may raise it as is.
    """


class PathEscapeError(EdgeInspectError, ValueError):
    """A path built from ids would leave its base folder; a bug or an attack, never a valid request."""


def check_id(kind: str, value: object) -> str:
    """``value`` if it is a valid ``kind`` (``"job id"``, ``"thing name"``, ``"model name"``,
    ``"model version"``); :class:`IdentifierError` quoting at most 100 characters of it otherwise."""
    pattern, longest, rule = _RULES[kind]
    if not isinstance(value, str) or len(value) > longest or not pattern.fullmatch(value):
        raise IdentifierError(f"invalid {kind} {clip(value)}", hint=rule)
    return value


def check_job_id(value: object) -> str:
    """A job id by AWS IoT's rule ``[a-zA-Z0-9_-]{1,64}``."""
    return check_id("job id", value)


def check_thing_name(value: object) -> str:
    """A thing name by AWS IoT's rule ``[a-zA-Z0-9:_-]{1,128}``."""
    return check_id("thing name", value)


def check_model_name(value: object) -> str:
    """A model (package) name: letters and digits joined by '-', at most 63."""
    return check_id("model name", value)


def check_model_version(value: object) -> str:
    """A model version: letters and digits joined by '.' or '-', at most 64 (never '.' or '..')."""
    return check_id("model version", value)


def is_valid(kind: str, value: object) -> bool:
    """Whether ``value`` is a valid ``kind`` (see :func:`check_id`)."""
    try:
        check_id(kind, value)
    except IdentifierError:
        return False
    return True


def safe_join(base: str | Path, *parts: str) -> Path:
    """``base/part/...``, refused with :class:`PathEscapeError` unless it stays strictly inside ``base``.

    Each part must be a plain name (no separator, not empty, not ``.``/``..``, no NUL); the result is
    also resolved (following links already on disk) and must still lie under the resolved base. The
    base itself is never returned, so deleting the result can never delete the base.
    """
    root = Path(base)
    for part in parts:
        if (
            not isinstance(part, str)
            or part in ("", ".", "..")
            or "/" in part
            or "\\" in part
            or "\x00" in part
            or (os.altsep is not None and os.altsep in part)
        ):
            raise PathEscapeError(
                f"refusing to build a path under {root} from {clip(part)}",
                hint="ids used as file names must be plain names; validate them where they arrive",
            )
    joined = root.joinpath(*parts)
    real_root = root.resolve()
    real = joined.resolve()
    if real == real_root or real_root not in real.parents:
        raise PathEscapeError(
            f"{joined} resolves to {real}, outside {real_root}",
            hint="a link or an id points outside its folder; remove the link or fix the id",
        )
    return joined
