"""``/api/stream``: Server-Sent Events with every result of a line as it is written, pushed, not polled.

On connect the page gets the full picture (status, lines, models, stats, recent defects, the latest
result), then live events. A slow page gets the newest result instead of a queue of old ones
(``Mailbox``). The stream ends when the client leaves or the server stops; ``retry`` tells
``EventSource`` how soon to reconnect.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from edgeinspect_ui.api.errors import NOT_FOUND, Responses
from edgeinspect_ui.api.routes import pick_line
from edgeinspect_ui.api.schemas import LINE_PATTERN
from edgeinspect_ui.feed.mailbox import Mailbox
from edgeinspect_ui.state import UiState, ui_state

router = APIRouter(prefix="/api", tags=["stream"])
RETRY_MS = 2000
HEARTBEAT_S = 15.0
WAKE_S = 1.0
SSE_DOC: Responses = {
    200: {
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
        "description": "events: status, lines, models, stats, defects, defect, result (JSON data)",
    }
}


def sse(kind: str, data: str) -> bytes:
    """One SSE message; ``data`` is a single JSON line, so it needs no splitting."""
    return f"event: {kind}\ndata: {data}\n\n".encode()


def _json(payload: BaseModel) -> str:
    return payload.model_dump_json()


def snapshot(state: UiState, line: str) -> list[bytes]:
    """What a page needs on (re)connecting, before any live event."""
    feed = state.feed
    messages = [
        f"retry: {RETRY_MS}\n\n".encode(),
        sse("status", _json(feed.status())),
        sse("lines", _json(feed.lines_out())),
        sse("models", _json(state.models.current())),
        sse("stats", _json(feed.stats(line))),
        sse("defects", json.dumps([d.model_dump(mode="json") for d in feed.defects(line)])),
    ]
    latest = feed.latest(line)
    if latest is not None:
        messages.append(sse("result", _json(latest)))
    return messages


async def events(state: UiState, request: Request, line: str) -> AsyncIterator[bytes]:
    """Snapshot, then whatever the mailbox holds each time it is woken, until the client leaves.

    Subscribing happens inside the generator, so its ``finally`` always pairs with it.
    """
    mailbox = Mailbox(line, asyncio.get_running_loop())
    state.feed.subscribe(mailbox)
    try:
        for message in await asyncio.to_thread(snapshot, state, line):
            yield message
        idle = 0.0
        while not state.stopping.is_set() and not mailbox.closed:
            if not await mailbox.wait(WAKE_S):
                idle += WAKE_S
                if await request.is_disconnected():
                    return
                if idle >= HEARTBEAT_S:
                    idle = 0.0
                    yield b": ping\n\n"
                continue
            idle = 0.0
            batch, skipped = mailbox.drain()
            if skipped:
                state.metrics.sse_skipped.inc(skipped)
            for kind, payload in batch:
                yield sse(kind, _json(payload))
    finally:
        state.feed.unsubscribe(mailbox)


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={**SSE_DOC, **NOT_FOUND},
    summary="live results of a line as Server-Sent Events",
)
async def stream(
    request: Request,
    state: Annotated[UiState, Depends(ui_state)],
    line: Annotated[str | None, Query(pattern=LINE_PATTERN)] = None,
) -> StreamingResponse:
    chosen = pick_line(state, line)  # an unknown line is a 404 before any byte is streamed
    return StreamingResponse(
        events(state, request, chosen),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
