"""The one JSON parser for bytes that came from the network: bounded in size and in nesting depth.

Why not ``json.loads`` directly: it recurses once per nesting level, so ``[`` repeated 100,000 times
raises ``RecursionError`` (not ``ValueError``), which escapes every ``except ValueError`` and kills the
thread that parsed it; and it happily builds a gigabyte of objects from a gigabyte of input. Here the
size is checked before decoding and the depth is counted by a flat scan (no recursion) before
``json.loads`` ever sees the text, so the only errors are :class:`JsonInputError` (a ``ValueError``
and a ``MessageError``) saying which limit was hit and what to do.

    >>> loads(b'{"a": [1, 2]}')
    {'a': [1, 2]}
    >>> loads(b"[" * 100_000)
    Traceback (most recent call last):
    ...
    edgeinspect.core.safejson.JsonLimitError: payload nests deeper than 64 levels ...
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from edgeinspect.core.errors import MessageError

MAX_BYTES = 1 << 20
"""Default size cap: far above any job document (AWS caps them at 32 KB) or stream record field."""
MAX_DEPTH = 64
"""Default nesting cap: our documents nest 3-4 levels; Python's parser recurses up to ~1000."""
QUOTE_CHARS = 100
"""How much of a client-supplied value an error message may quote (see :func:`clip`)."""

_STRINGS = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)  # possessive: linear, no backtracking
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class JsonInputError(MessageError, ValueError):
    """Bytes that are not acceptable JSON: over a limit, not UTF-8, or not JSON at all.

    A ``ValueError`` too, so code that already caught ``json.JSONDecodeError``/``ValueError`` keeps
    catching it.
    """


class JsonLimitError(JsonInputError):
    """The input is larger or deeper than allowed; ``limit`` is ``"bytes"`` or ``"depth"``."""

    def __init__(self, message: str, *, limit: str, maximum: int, hint: str) -> None:
        super().__init__(message, hint=hint)
        self.limit = limit
        self.maximum = maximum


def clip(value: object, limit: int = QUOTE_CHARS) -> str:
    """``repr`` of a client-supplied value, cut to ``limit`` characters for quoting in an error.

    Why: an error that echoes a 1 MiB field becomes a 1 MiB log line or reply (a NOT_FOUND turned into
    a transport error that way); the first hundred characters identify the value well enough.
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} chars)"


def nesting_depth(data: bytes) -> int:
    """The deepest ``[``/``{`` nesting of ``data`` outside strings, found without recursion.

    A running sum of +1 per opener and -1 per closer, its maximum taken: over the valid prefix that
    ``json.loads`` would ever recurse into, this is exactly its recursion depth, so it is a safe upper
    bound; invalid input gives some number and ``json.loads`` reports its syntax error later.
    """
    brackets = _STRINGS.sub(b"", data).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == 0x5B) | (codes == 0x7B), 1, -1).astype(np.int32)  # [ { versus ] }
    return max(int(np.cumsum(steps).max()), 0)


def check_limits(
    data: bytes, *, what: str = "payload", max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH
) -> None:
    """Raise :class:`JsonLimitError` when ``data`` is over ``max_bytes`` or nests over ``max_depth``."""
    if len(data) > max_bytes:
        raise JsonLimitError(
            f"{what} is {len(data)} bytes, over the limit of {max_bytes}",
            limit="bytes",
            maximum=max_bytes,
            hint="send a smaller document; nothing this large is expected here",
        )
    depth = nesting_depth(data)
    if depth > max_depth:
        raise JsonLimitError(
            f"{what} nests deeper than {max_depth} levels ({depth})",
            limit="depth",
            maximum=max_depth,
            hint="flatten the document; no edgeinspect message nests that deep",
        )


def loads(
    data: bytes | str, *, what: str = "payload", max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH
) -> Any:
    """Parse JSON from an untrusted source; :class:`JsonInputError` on any problem, never RecursionError.

    ``what`` names the input in the message ("job document", "notify-next payload").
    """
    raw = data.encode("utf-8", errors="surrogatepass") if isinstance(data, str) else bytes(data)
    check_limits(raw, what=what, max_bytes=max_bytes, max_depth=max_depth)
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise JsonInputError(f"{what} is not valid UTF-8: {exc}", hint="send UTF-8 encoded JSON") from exc
    except RecursionError as exc:  # only if the scan above and the parser ever disagree
        raise JsonLimitError(
            f"{what} nests too deeply", limit="depth", maximum=max_depth, hint="flatten the document"
        ) from exc
    except ValueError as exc:  # JSONDecodeError, and int() of a number with too many digits
        raise JsonInputError(
            f"{what} is not valid JSON: {str(exc)[:QUOTE_CHARS]}", hint="send valid JSON"
        ) from exc
