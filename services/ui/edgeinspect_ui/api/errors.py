"""Domain errors and transport failures -> HTTP status, in one place."""

from __future__ import annotations

from typing import Any

import redis
from edgeinspect.core.errors import ConfigError, EdgeInspectError, ImageError, MessageError
from edgeinspect.core.observability import get_logger
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.requests import Request

from edgeinspect_ui.api.schemas import ErrorOut

log = get_logger(__name__)


class NotFound(EdgeInspectError):
    """The line, frame or mask asked for does not exist (or no longer does)."""


_STATUS: dict[type[EdgeInspectError], int] = {
    NotFound: 404,
    MessageError: 422,
    ImageError: 422,
    ConfigError: 500,
}


def _body(error: str, hint: str) -> dict[str, str]:
    return ErrorOut(error=error, hint=hint).model_dump()


async def _domain(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, EdgeInspectError)
    status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 400)
    return JSONResponse(_body(exc.message, exc.hint), status_code=status)


async def _redis(request: Request, exc: Exception) -> JSONResponse:
    log.warning("redis_unavailable", path=request.url.path, error=str(exc))
    return JSONResponse(
        _body("Redis is unreachable", "the UI reconnects by itself; check the Redis service"), status_code=503
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(EdgeInspectError, _domain)
    app.add_exception_handler(redis.RedisError, _redis)


# documented on every route that reads Redis
Responses = dict[int | str, dict[str, Any]]
REDIS_DOWN: Responses = {503: {"model": ErrorOut, "description": "Redis is unreachable"}}
NOT_FOUND: Responses = {404: {"model": ErrorOut, "description": "no such line, frame or mask"}}
