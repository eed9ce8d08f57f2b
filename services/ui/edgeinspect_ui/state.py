"""Everything the UI's handlers share, built by the app factory from its dependencies."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from edgeinspect.core.observability import Health
from edgeinspect.core.streams import Streams
from starlette.requests import Request

from edgeinspect_ui.feed.frames import FrameLocator
from edgeinspect_ui.feed.hub import Feed
from edgeinspect_ui.feed.watcher import ModelWatcher
from edgeinspect_ui.metrics import UiMetrics
from edgeinspect_ui.security import Authenticator
from edgeinspect_ui.settings import UiSettings


@dataclass
class UiState:
    """The UI's parts; ``stopping`` is set on SIGTERM so open streams end and readiness drops."""

    settings: UiSettings
    streams: Streams
    feed: Feed
    models: ModelWatcher
    frames: FrameLocator
    metrics: UiMetrics
    health: Health
    auth: Authenticator
    stopping: threading.Event = field(default_factory=threading.Event)

    def begin_shutdown(self) -> None:
        """First step of a graceful stop: not ready any more, live streams close."""
        self.health.mark_stopping()
        self.stopping.set()


def ui_state(request: Request) -> UiState:
    """FastAPI dependency: the app's ``UiState``."""
    state: UiState = request.app.state.ui
    return state
