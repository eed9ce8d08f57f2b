"""Property tests of the camera's HTTP trigger body: any bytes are a queued frame or a refusal with a
status that says why (400/413/503), never a crash of the request thread or a 500."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from edgeinspect.core.errors import ImageError
from edgeinspect.core.images import encode
from edgeinspect_camera.sources.base import SourceError
from edgeinspect_camera.sources.trigger import TriggerSource
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reliability.hostile import FUZZ, png_header
from tests.unit.camera.helpers import FakeClock, make_image

VALID_PNG = encode(make_image(3), "png")
VALID_JPEG = encode(make_image(4), "jpeg")


def _mutations(base: bytes) -> st.SearchStrategy[bytes]:
    def mutate(args: tuple[int, int, int]) -> bytes:
        at, value, cut = args
        out = bytearray(base)
        out[at % len(out)] = value
        return bytes(out[: max(1, cut % (len(out) + 1))])

    return st.tuples(st.integers(0, 10_000), st.integers(0, 255), st.integers(0, 10_000)).map(mutate)


BODIES = (
    st.binary(min_size=1, max_size=300)
    | _mutations(VALID_PNG)
    | _mutations(VALID_JPEG)
    | st.tuples(st.integers(1, 70_000), st.integers(1, 70_000)).map(lambda wh: png_header(*wh))
)


@pytest.fixture(scope="module")
def trigger() -> Iterator[TriggerSource]:
    source = TriggerSource(
        "127.0.0.1", 0, clock=FakeClock(), queue_size=1000, max_bytes=1 << 20, max_pixels=1 << 20
    )
    source.open()
    yield source
    source.close()


@FUZZ
@given(BODIES)
def test_any_body_is_a_frame_or_a_source_error(trigger: TriggerSource, body: bytes) -> None:
    try:
        grab = trigger.submit_image(body, "fuzz")
    except (SourceError, ImageError) as exc:  # FrameUnreadable is an ImageError
        assert len(exc.message) < 1000
        return
    assert grab.image.ndim == 3 and grab.image.shape[0] * grab.image.shape[1] <= 1 << 20
    trigger.read()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:  # one client: building one per request costs ~0.4 s
        yield client


@settings(FUZZ, max_examples=50)  # a round trip each: half the examples keep the folder fast
@given(BODIES)
def test_any_body_over_http_is_answered_with_a_reason(
    trigger: TriggerSource, http: httpx.Client, body: bytes
) -> None:
    reply = http.post(f"http://127.0.0.1:{trigger.port}/frames", content=body)
    assert reply.status_code in (202, 400, 413, 503), reply.text
    assert len(reply.content) < 2000
    if reply.status_code != 202:
        assert reply.json()["error"]
    trigger.read()
