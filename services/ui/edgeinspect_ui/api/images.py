"""The images the page draws: a frame (as stored, or PNG for raw pixels) and a mask as a red overlay.

Both are immutable for a given id, so the browser may cache them; neither is ever embedded in JSON.
"""

from __future__ import annotations

import io
from typing import Annotated, Any

import numpy as np
from edgeinspect.core import names
from edgeinspect.core.errors import ImageError, MessageError
from edgeinspect.core.images import decode
from edgeinspect.core.messages import Frame, Result
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response
from PIL import Image

from edgeinspect_ui.api.errors import NOT_FOUND, REDIS_DOWN, NotFound, Responses
from edgeinspect_ui.api.routes import pick_line
from edgeinspect_ui.api.schemas import ENTRY_ID_PATTERN, FRAME_ID_PATTERN, LINE_PATTERN
from edgeinspect_ui.feed.frames import MAX_SCAN
from edgeinspect_ui.state import UiState, ui_state

router = APIRouter(prefix="/api", tags=["images"])
State = Annotated[UiState, Depends(ui_state)]
LinePath = Annotated[str, Path(pattern=LINE_PATTERN)]
CACHE = {"cache-control": "private, max-age=3600, immutable"}
IMAGE: Responses = {200: {"content": {"image/png": {}, "image/jpeg": {}}, "description": "the image"}}
MASK_RGB = (255, 32, 32)
MAX_MS = 2**48


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def frame_image(frame: Frame) -> tuple[bytes, str]:
    """Encoded frames go out as stored (no work); raw pixels are encoded to PNG once."""
    if frame.encoding == "png":
        return frame.data, "image/png"
    if frame.encoding == "jpeg":
        return frame.data, "image/jpeg"
    pixels = decode(frame.data, "raw", height=frame.height, width=frame.width, channels=frame.channels)
    mode_pixels = pixels[:, :, 0] if pixels.shape[2] < 3 else pixels[:, :, :3]
    return _png(Image.fromarray(mode_pixels)), "image/png"


def mask_overlay(mask_png: bytes) -> bytes:
    """The mask (grey, 0 = background) as a red RGBA image whose alpha is the mask value."""
    mask = decode(mask_png, "png")[:, :, 0]
    rgba = np.zeros((*mask.shape, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2] = MASK_RGB
    rgba[..., 3] = np.where(mask > 0, np.maximum(mask, 128), 0)
    return _png(Image.fromarray(rgba, "RGBA"))


def _frame_not_found(line: str, frame_id: str, *, windowed: bool) -> NotFound:
    """Without a time window only the newest entries are read, so the frame may be there after all."""
    if windowed:
        return NotFound(
            f"frame {frame_id!r} of line {line!r} is not in the frames stream",
            hint="frames are trimmed by the stream's MAXLEN; old frames are gone",
        )
    return NotFound(
        f"frame {frame_id!r} of line {line!r} is not among the newest {MAX_SCAN} frames stored",
        hint="ask with the result's frame_url: it names the frame's entry (or its time window), so the "
        "server reads further back; frames trimmed by the stream's MAXLEN are gone",
    )


@router.get(
    "/frames/{line}/{frame_id}.png",
    response_class=Response,
    responses={**IMAGE, **NOT_FOUND, **REDIS_DOWN},
    summary="a frame as an image",
)
def frame(
    state: State,
    line: LinePath,
    frame_id: Annotated[str, Path(pattern=FRAME_ID_PATTERN)],
    after: Annotated[int | None, Query(ge=0, le=MAX_MS, description="stored no earlier (ms)")] = None,
    before: Annotated[int | None, Query(ge=0, le=MAX_MS, description="stored no later (ms)")] = None,
    entry: Annotated[
        str | None, Query(pattern=ENTRY_ID_PATTERN, description="its entry id in ei:frames, if known")
    ] = None,
) -> Response:
    chosen = pick_line(state, line)
    found = state.frames.find(chosen, frame_id, after, before, entry)
    if found is None:
        raise _frame_not_found(chosen, frame_id, windowed=after is not None)
    try:
        body, media = frame_image(found)
    except ImageError as exc:
        raise NotFound(f"frame {frame_id!r} cannot be shown: {exc.message}", hint=exc.hint) from exc
    return Response(body, media_type=media, headers=CACHE)


@router.get(
    "/masks/{line}/{result_id}.png",
    response_class=Response,
    responses={**IMAGE, **NOT_FOUND, **REDIS_DOWN},
    summary="a result's defect mask as a red overlay",
)
def mask(state: State, line: LinePath, result_id: Annotated[str, Path(pattern=ENTRY_ID_PATTERN)]) -> Response:
    chosen = pick_line(state, line)
    if any(int(part) >= 2**64 for part in result_id.split("-")):
        raise NotFound(f"{result_id!r} is not a valid result id", hint="use the mask_url of a result")
    entries: Any = state.streams.client.xrange(
        names.results_stream(chosen), min=result_id, max=result_id, count=1
    )
    if not entries:
        raise NotFound(f"result {result_id} of line {chosen!r} is not in the results stream")
    try:
        result = Result.from_fields(entries[0][1])
    except MessageError as exc:
        raise NotFound(f"result {result_id} is malformed: {exc.message}") from exc
    if not result.mask:
        raise NotFound(f"result {result_id} has no mask")
    try:
        body = mask_overlay(result.mask)
    except ImageError as exc:
        raise NotFound(f"the mask of result {result_id} cannot be shown: {exc.message}") from exc
    return Response(body, media_type="image/png", headers=CACHE)
