"""Model versions compared as versions, never as strings or floats: "10" > "9" and "1.10" > "1.9".

A version is one or more segments of letters and digits joined by ``.`` or ``-`` ("7", "1.10",
"2024-06-01", "2.0-rc1"): safe in a file name, an S3 key and an MQTT job document. Each segment splits
into runs of digits (compared as integers) and runs of letters (compared as text); at the same
position text sorts before a number ("1.a" < "1.1"), and a version that is a prefix of another sorts
first ("1" < "1.0"). Two versions are equal only when their text is equal; "1.01" and "1.1" order by
their text as a last resort, so the order is total and agrees with equality.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from edgeinspect.core.errors import PackageError

VERSION_PATTERN = r"^[0-9A-Za-z]+([.-][0-9A-Za-z]+)*$"
_VERSION_RE = re.compile(VERSION_PATTERN)
_TOKEN_RE = re.compile(r"[0-9]+|[A-Za-z]+")

Token = tuple[int, int, str]
"""One comparable token: ``(0, 0, text)`` for letters, ``(1, number, "")`` for digits."""


@dataclass(frozen=True, order=True)
class Version:
    """A parsed model version; build one with :func:`parse_version`. ``str(v)`` gives the text back."""

    key: tuple[tuple[Token, ...], ...] = field(repr=False)
    text: str

    def __str__(self) -> str:
        return self.text


def _segment_key(segment: str) -> tuple[Token, ...]:
    return tuple(
        (1, int(token), "") if token.isdigit() else (0, 0, token) for token in _TOKEN_RE.findall(segment)
    )


def parse_version(text: str) -> Version:
    """Parse ``text`` into a comparable :class:`Version`, raising ``PackageError`` if it is malformed.

    Example: ``parse_version("1.10") > parse_version("1.9")`` is ``True``.
    """
    if not _VERSION_RE.match(text):
        raise PackageError(
            f"invalid model version {text!r}: use letters and digits joined by '.' or '-'",
            hint="e.g. '7', '1.10' or '2024-06-01'",
        )
    segments = re.split(r"[.-]", text)
    return Version(key=tuple(_segment_key(segment) for segment in segments), text=text)
