"""``edgeinspect-ui``: settings from the environment, JSON logs, uvicorn with a graceful SIGTERM.

On SIGTERM the UI first drops readiness and closes its live streams (browsers reconnect elsewhere
or later), then uvicorn finishes requests in flight and the lifespan stops the feed threads.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

import uvicorn
from edgeinspect.core.errors import ConfigError
from edgeinspect.core.observability import configure_logging, get_logger

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edgeinspect-ui", description="the live inspection page")
    parser.add_argument("--check-config", action="store_true", help="validate the settings and exit")
    args = parser.parse_args(argv)
    try:
        settings = UiSettings.load()
    except ConfigError as exc:
        print(f"edgeinspect-ui: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        print("configuration ok")
        return 0
    configure_logging(settings.log_level, service="ui")
    build_server(settings).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
