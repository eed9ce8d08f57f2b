"""Fixtures of the UI's integration tests: a Streams on the session's redis-server, the UI served."""

from tests.integration.ui.support import streams, ui

__all__ = ["streams", "ui"]  # fixtures, shared with the browser tests
