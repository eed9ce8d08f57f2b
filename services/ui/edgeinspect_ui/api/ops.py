"""Probes and metrics (``/healthz``, ``/readyz``, ``/metrics``), public even when auth is on."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edgeinspect_ui.api.schemas import HealthOut, ReadyOut
from edgeinspect_ui.state import UiState, ui_state

router = APIRouter(tags=["ops"])
State = Annotated[UiState, Depends(ui_state)]


@router.get("/healthz", response_model=HealthOut, summary="the process is alive")
def healthz() -> HealthOut:
    return HealthOut()


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "not ready (Redis down, or stopping)"}},
    summary="ready to serve: Redis answers and no shutdown is in progress",
)
def readyz(state: State) -> JSONResponse:
    ready, checks = state.health.readiness()
    body = ReadyOut(ready=ready, checks=checks).model_dump()
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    summary="Prometheus metrics",
)
def metrics(state: State) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
