"""Browser tests: the real page in headless Chromium against the UI served over a real Redis."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.ui.support import LiveUi, streams, ui

__all__ = ["panel", "streams", "ui"]  # streams and ui are the UI integration tests' fixtures


@pytest.fixture
def panel(ui: LiveUi, page: Any) -> Any:
    """The browser page, torn down (and screenshotted) while the UI it shows is still up."""
    return page
