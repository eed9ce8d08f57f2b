"""The JSON API behind the page: models, recent results, shift stats, events, lines, status."""

from __future__ import annotations

import json
from typing import Annotated

from edgeinspect.core import names
from edgeinspect.core.errors import MessageError
from edgeinspect.core.messages import Event, Result
from fastapi import APIRouter, Depends, Query
from pydantic import ValidationError

from edgeinspect_ui.api.errors import NOT_FOUND, REDIS_DOWN, NotFound
from edgeinspect_ui.api.schemas import (
    LINE_PATTERN,
    EventOut,
    LineIoOut,
    LinesOut,
    ModelsOut,
    ResultOut,
    StatsOut,
    StatusOut,
)
from edgeinspect_ui.feed.views import event_out, result_out
from edgeinspect_ui.state import UiState, ui_state

router = APIRouter(prefix="/api", tags=["api"])
State = Annotated[UiState, Depends(ui_state)]
LineQuery = Annotated[
    str | None, Query(pattern=LINE_PATTERN, description="line id; default: the UI's default line")
]


def pick_line(state: UiState, line: str | None) -> str:
    """The line asked for (it must be one this UI shows) or the default line."""
    if line is None:
        return state.feed.lines_out().default
    if not state.feed.allowed(line):
        raise NotFound(f"line {line!r} is not shown by this UI", hint="see /api/lines (EI_UI_LINES)")
    return line


@router.get("/models", response_model=ModelsOut, summary="the device's models, aliases, latency, jobs")
def models(state: State) -> ModelsOut:
    return state.models.current()


@router.get(
    "/results/recent",
    response_model=list[ResultOut],
    responses={**REDIS_DOWN, **NOT_FOUND},
    summary="the newest results of a line, newest first",
)
def recent_results(
    state: State, line: LineQuery = None, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[ResultOut]:
    chosen = pick_line(state, line)
    out: list[ResultOut] = []
    for entry in state.streams.latest(names.results_stream(chosen), limit):
        try:
            out.append(result_out(chosen, entry.id, entry.parse(Result)))
        except MessageError:
            continue  # a malformed entry is logged by the feed; the list shows the readable ones
    return out


@router.get(
    "/results/search",
    response_model=list[ResultOut],
    responses={**REDIS_DOWN, **NOT_FOUND},
    summary="the results of one part (by the PLC's part id) among a line's newest, newest first",
)
def search_results(
    state: State,
    part_id: Annotated[str, Query(min_length=1, max_length=64, description="the part id, exactly")],
    line: LineQuery = None,
    scan: Annotated[
        int, Query(ge=1, le=20_000, description="how many of the newest results to search")
    ] = 5000,
) -> list[ResultOut]:
    chosen = pick_line(state, line)
    out: list[ResultOut] = []
    for entry in state.streams.latest(names.results_stream(chosen), scan):
        try:
            result = entry.parse(Result)
        except MessageError:
            continue
        if result.part_id == part_id:
            out.append(result_out(chosen, entry.id, result))
    return out


@router.get(
    "/line-io", response_model=LineIoOut, responses={**REDIS_DOWN, **NOT_FOUND}, summary="a line's PLC I/O"
)
def line_io(state: State, line: LineQuery = None) -> LineIoOut:
    chosen = pick_line(state, line)
    raw = state.streams.client.get(names.line_io_status_key(chosen))
    if not raw:
        return LineIoOut(line=chosen, present=False)
    try:
        body = json.loads(raw)
        return LineIoOut(
            line=chosen,
            present=True,
            **{
                k: body.get(k) for k in ("state", "last_trigger", "last_reject", "last_missed") if body.get(k)
            },
            connections=dict(body.get("connections") or {}),
            counts=dict(body.get("counts") or {}),
            updated_ns=int(body.get("updated_ns") or 0),
        )
    except (ValueError, TypeError, ValidationError):
        return LineIoOut(line=chosen, present=False)  # written by another version: shown as absent


@router.get("/stats", response_model=StatsOut, responses=NOT_FOUND, summary="shift counters of a line")
def stats(state: State, line: LineQuery = None) -> StatsOut:
    return state.feed.stats(pick_line(state, line))


@router.get(
    "/defects", response_model=list[ResultOut], responses=NOT_FOUND, summary="recent defects, newest first"
)
def defects(state: State, line: LineQuery = None) -> list[ResultOut]:
    return state.feed.defects(pick_line(state, line))


@router.get("/events", response_model=list[EventOut], responses=REDIS_DOWN, summary="newest events first")
def events(
    state: State,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    type: Annotated[str | None, Query(max_length=64, description="only events of this type")] = None,
) -> list[EventOut]:
    out: list[EventOut] = []
    scan = limit if type is None else min(limit * 10, 5000)
    for entry in state.streams.latest(names.events_stream(), scan):
        try:
            event = entry.parse(Event)
        except MessageError:
            continue
        if type is None or event.type == type:
            out.append(event_out(entry.id, event))
        if len(out) >= limit:
            break
    return out


@router.get("/lines", response_model=LinesOut, summary="every line this UI shows, and the default")
def lines(state: State) -> LinesOut:
    return state.feed.lines_out()


@router.get("/status", response_model=StatusOut, summary="whether the UI reaches Redis")
def status(state: State) -> StatusOut:
    return state.feed.status()
