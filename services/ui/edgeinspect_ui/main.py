"""``edgeinspect-ui``: settings from the environment, JSON logs, uvicorn with a graceful SIGTERM.

On SIGTERM the UI first drops readiness and closes its live streams (browsers reconnect elsewhere
or later), then uvicorn finishes requests in flight and the lifespan stops the feed threads.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

import uvicorn
from edgeinspect.core.observability import get_logger
from edgeinspect.core.service_main import ServiceCli, run_service

from edgeinspect_ui.app import create_app
from edgeinspect_ui.settings import UiSettings
from edgeinspect_ui.state import UiState

log = get_logger(__name__)
GRACE_S = 5


class UiServer(uvicorn.Server):
    """uvicorn, telling the UI to close its SSE streams before waiting for connections to finish."""

    def __init__(self, config: uvicorn.Config, state: UiState) -> None:
        super().__init__(config)
        self.ui_state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        log.info("shutdown_requested", signal=signal.Signals(sig).name)
        self.ui_state.begin_shutdown()
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal after a graceful stop; ours exits 0 like every service
        captured = getattr(self, "_captured_signals", None)
        if isinstance(captured, list) and sig in captured:
            captured.remove(sig)


def build_server(settings: UiSettings) -> UiServer:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.ui_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACE_S,
        proxy_headers=False,
    )
    return UiServer(config, app.state.ui)


CLI = ServiceCli(
    prog="edgeinspect-ui",
    description="the live inspection page",
    settings=UiSettings,
    report=lambda _settings: "configuration ok",
    log_service="ui",
)


def main(argv: list[str] | None = None) -> int:
    return run_service(CLI, argv, serve)


def serve(settings: UiSettings) -> int:
    """Serve the page until SIGTERM; uvicorn's graceful stop ends with exit 0 like every service."""
    build_server(settings).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
