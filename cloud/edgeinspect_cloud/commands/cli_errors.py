"""Turn a domain error into two readable lines on stderr and exit code 1, instead of a traceback.

A handler wrapped with :func:`reports_errors` prints ``error: <message>`` and ``hint: <what to do>``
for any :class:`~edgeinspect.core.errors.EdgeInspectError`; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from edgeinspect.core.errors import EdgeInspectError

Handler = Callable[[argparse.Namespace], int]


def reports_errors(handler: Handler) -> Handler:
    """Wrap a command handler so an ``EdgeInspectError`` becomes a message and exit code 1."""

    @functools.wraps(handler)
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except EdgeInspectError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            if exc.hint:
                print(f"hint: {exc.hint}", file=sys.stderr)
            return 1

    return wrapped
