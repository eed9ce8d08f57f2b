"""The app factory: ``create_app(settings)`` wires Redis, the feed, the model watcher and the routes.

Dependencies come in as arguments (a ``Streams``, an agent connector) so tests hand it real servers;
nothing connects or starts at import time: the feed threads start with the app's lifespan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

from edgeinspect.core.observability import Health, get_logger
from edgeinspect.core.streams import Streams
from edgeinspect.core.webguard import HostGuard, allowed_hosts
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from edgeinspect_ui.api import errors, images, ops, pages, routes, stream
from edgeinspect_ui.feed.frames import FrameLocator
from edgeinspect_ui.feed.hub import Feed
from edgeinspect_ui.feed.inventory import AgentLike, ModelInventory, connect_agent
from edgeinspect_ui.feed.jobs import JobBoard
from edgeinspect_ui.feed.thresholds import line_overrides
from edgeinspect_ui.feed.watcher import ModelWatcher
from edgeinspect_ui.metrics import UiMetrics
from edgeinspect_ui.security import Authenticator, RequireAuth, SecureHeaders, bearer_token
from edgeinspect_ui.settings import UiSettings
from edgeinspect_ui.state import UiState

log = get_logger(__name__)


def build_state(
    settings: UiSettings, streams: Streams, connect: Callable[[str], AgentLike] = connect_agent
) -> UiState:
    """The UI's parts, not yet started."""
    metrics = UiMetrics()
    jobs = JobBoard()
    holder: list[ModelWatcher] = []
    feed = Feed(streams, settings, metrics, jobs, on_models_hint=lambda: holder[0].poke() if holder else None)
    if connect is connect_agent:
        token = settings.agent_token.get_secret_value() if settings.agent_token is not None else ""
        connect = partial(connect_agent, token=token, tls=settings.agent_tls())
    inventory = ModelInventory(
        settings.agent_addr,
        jobs,
        connect,
        overrides=lambda: line_overrides(streams.client, feed.lines_out().lines),
    )
    watcher = ModelWatcher(
        inventory, settings.ui_models_refresh_s, lambda table: feed.broadcast("models", table), metrics
    )
    holder.append(watcher)
    health = Health()
    health.add_check("redis", streams.ping)
    return UiState(
        settings=settings,
        streams=streams,
        feed=feed,
        models=watcher,
        frames=FrameLocator(streams),
        metrics=metrics,
        health=health,
        auth=Authenticator(settings, bearer_token(settings)),
    )


def create_app(
    settings: UiSettings,
    *,
    streams: Streams | None = None,
    connect: Callable[[str], AgentLike] = connect_agent,
) -> FastAPI:
    """The ASGI app; ``app.state.ui`` holds its ``UiState`` (``begin_shutdown`` on SIGTERM)."""
    owned = streams is None
    redis_streams = streams or Streams.from_url(settings.redis_url, settings.stream_maxlen, socket_timeout=5)
    state = build_state(settings, redis_streams, connect)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state.feed.start()
        state.models.start()
        log.info(
            "ui_started",
            redis=_redact(settings.redis_url),
            agent=settings.agent_addr or "",
            auth=settings.ui_auth,
        )
        try:
            yield
        finally:
            state.begin_shutdown()
            state.models.stop()
            state.feed.stop()
            if owned:
                redis_streams.close()
            log.info("ui_stopped")

    app = FastAPI(
        title=f"{settings.ui_title} UI",
        version="1",
        summary="The live inspection page's API: models, results, shift stats, events, images, live stream.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.ui = state
    errors.install(app)
    for module in (routes, images, stream, ops, pages):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=pages.static_dir()), name="static")
    app.add_middleware(RequireAuth, auth=state.auth)
    app.add_middleware(HostGuard, hosts=allowed_hosts(settings.ui_allowed_hosts))
    app.add_middleware(SecureHeaders)
    return app


def _redact(url: str) -> str:
    """A Redis URL without its password, for the start-up log line."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
