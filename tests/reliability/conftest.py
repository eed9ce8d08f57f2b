"""Fixtures the reliability tests share with the integration tests: imported here, never copied."""

from tests.integration.model_manager.conftest import kit  # noqa: F401  (the model-manager device kit)
