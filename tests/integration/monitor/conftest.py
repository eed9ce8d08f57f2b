"""Monitor integration tests reuse the worker tests' production line (``line``: redis, agent, worker)."""

from tests.integration.worker.conftest import line  # noqa: F401  (a fixture, re-exported)
