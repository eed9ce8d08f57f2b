"""The review page in headless Chromium: filter captures, correct a label, paint and erase masks, export.

Captures are put in a ``file://`` store by the real uploader; the page is served by the real
``edgeinspect review`` process; what the operator saves must come out as a dataset in the training
layout (read back by the training's own loader) with a provenance line per decision.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from edgeinspect.core import images
from edgeinspect.core.messages import now_ns
from edgeinspect_cloud.data.dataset import list_split, read_labels, read_sample
from edgeinspect_cloud.data.synth import render_sample

from tests.fixtures.browser import ARTIFACTS
from tests.fixtures.redis_server import RedisServer
from tests.helpers.captures import capture_of, store_captures
from tests.helpers.review import review_process, sign_in

pytestmark = pytest.mark.browser
HEIGHT, WIDTH = 160, 64


def frame(index: int, defective: bool, **shift: Any) -> tuple[np.ndarray, np.ndarray]:
    image, mask = render_sample(np.random.default_rng([7, index]), HEIGHT, WIDTH, defective, **shift)
    return image, mask > 0


@pytest.fixture
def captured(
    redis_server: RedisServer, redis_client: redis.Redis, line_id: str, tmp_path: Path
) -> dict[str, Any]:
    """Three captures of a darker line with blisters, as the edge saw them."""
    missed, missed_truth = frame(1, True, brightness_shift=-40, defect_kinds=("blister",))
    false_alarm, _ = frame(2, False)
    doubtful, doubtful_truth = frame(3, True)
    model_mask = np.zeros((HEIGHT, WIDTH), bool)
    model_mask[10:40, 10:40] = True
    start = now_ns()
    captures = [
        capture_of(line_id, "missed", missed, ts_ns=start, verdict="ok", score=0.21),
        capture_of(line_id, "false-alarm", false_alarm, ts_ns=start + 1, verdict="defect", score=0.83,
                   mask=model_mask),
        capture_of(line_id, "doubtful", doubtful, ts_ns=start + 2, verdict="defect", score=0.55,
                   mask=doubtful_truth, reasons=["defect", "shadow_disagreement"], shadow_label="ok"),
    ]  # fmt: skip
    url = f"file://{tmp_path / 'store'}"
    store_captures(redis_server.url, redis_client, url, tmp_path / "spool", captures)
    return {"store": url, "missed": missed, "truth": missed_truth, "doubtful_mask": doubtful_truth}


@pytest.fixture
def review_server(captured: dict[str, Any], tmp_path: Path) -> Iterator[dict[str, Any]]:
    """``edgeinspect review`` as its own process, writing into ``reviewed/``."""
    out = tmp_path / "reviewed"
    with review_process(captured["store"], out) as url:
        yield {"url": url, "out": out, **captured}


def paint(page: Any, points: list[tuple[float, float]]) -> None:
    """Drag the mouse through frame coordinates ``points`` on the editor canvas."""
    box = page.locator("#canvas").bounding_box()
    to_screen = [
        (box["x"] + x * box["width"] / WIDTH, box["y"] + y * box["height"] / HEIGHT) for x, y in points
    ]
    page.mouse.move(*to_screen[0])
    page.mouse.down()
    for point in to_screen[1:]:
        page.mouse.move(*point, steps=8)
    page.mouse.up()


def open_capture(page: Any, frame_id: str) -> None:
    page.locator(f"button[data-frame='{frame_id}']").click()
    page.wait_for_function(f"() => document.getElementById('editing').textContent.startsWith('{frame_id}')")


def save(page: Any, expected: str) -> None:
    page.locator("#save").click()
    page.wait_for_function(
        f"() => document.getElementById('saved').textContent.startsWith('Saved as {expected}')"
    )


def test_an_operator_corrects_labels_and_masks_and_finds_them_in_the_dataset(
    page: Any, review_server: dict[str, Any]
) -> None:
    out: Path = review_server["out"]
    sign_in(page, review_server["url"], "ana")  # decisions are recorded under the signed-in name
    page.wait_for_selector("#list-body button[data-frame]")

    # the defect the model missed: filter the ok verdicts, mark it defect, paint the blister's area
    page.select_option("#f-verdict", "ok")
    page.wait_for_function("() => document.querySelectorAll('#list-body button[data-frame]').length === 1")
    open_capture(page, "missed")
    assert page.locator("#label-ok").is_checked()
    ys, xs = np.nonzero(review_server["truth"])
    page.fill("#brush", "30")
    paint(page, [(float(xs.min()), float(ys.mean())), (float(xs.max()), float(ys.mean()))])
    assert page.locator("#label-defect").is_checked()  # painting a defect makes the frame one
    page.screenshot(path=str(ARTIFACTS / "review_page.png"))  # for services/../review README
    save(page, "defect")

    # the false alarm: the model's mask is erased and the label corrected to a good part
    page.select_option("#f-verdict", "defect")
    page.wait_for_function("() => document.querySelectorAll('#list-body button[data-frame]').length === 2")
    open_capture(page, "false-alarm")
    assert page.locator("#label-defect").is_checked()
    page.check("#tool-erase")
    paint(page, [(12, 25), (38, 25)])
    page.check("#label-ok")
    save(page, "ok")

    # shadow disagreement, confirmed as the model said, its mask kept; only it matches the filter
    page.select_option("#f-verdict", "")
    page.check("#f-disagree")
    page.wait_for_function("() => document.querySelectorAll('#list-body button[data-frame]').length === 1")
    open_capture(page, "doubtful")
    save(page, "defect")
    page.uncheck("#f-disagree")
    page.check("#f-unreviewed")
    page.wait_for_function("() => document.querySelector('#list-body td.empty') !== null")

    samples = list_split(out, "train")
    assert [s.image_path.name for s in samples] == ["10000.png", "10001.png", "10002.png"]
    assert read_labels(samples).tolist() == [True, False, True]
    missed = read_sample(samples[0])
    assert np.array_equal(missed.image, review_server["missed"])  # the captured frame, unchanged
    painted = missed.mask
    assert painted.any() and painted[int(ys.mean()), int(xs.mean())]
    assert not painted[:, :].all() and not painted[: max(0, int(ys.mean()) - 30)].any()
    assert np.array_equal(read_sample(samples[2]).mask, review_server["doubtful_mask"])

    provenance = [json.loads(line) for line in (out / "provenance.jsonl").read_text().splitlines()]
    assert [p["frame_id"] for p in provenance] == ["missed", "false-alarm", "doubtful"]
    assert [p["original_verdict"] for p in provenance] == ["ok", "defect", "defect"]
    assert [p["label"] for p in provenance] == ["defect", "ok", "defect"]
    assert [p["corrected"] for p in provenance] == [True, True, False]
    assert all(p["reviewer"] == "ana" and p["time"] for p in provenance)
    assert provenance[0]["source_key"].endswith("/missed/image.png")
    assert provenance[0]["image"] == "train/10000.png" and provenance[0]["mask"] == "train/10000_GT.png"
    assert images.decode((out / "train" / "10001_GT.png").read_bytes(), "png").max() == 0


def test_a_defect_without_a_mask_is_refused_with_a_reason(page: Any, review_server: dict[str, Any]) -> None:
    sign_in(page, review_server["url"])
    page.wait_for_selector("#list-body button[data-frame]")
    open_capture(page, "missed")
    page.check("#label-defect")
    page.locator("#save").click()
    page.wait_for_function("() => !document.getElementById('banner').hidden")
    assert "mask is empty" in page.locator("#banner").text_content()
    page.allowed_errors.append("422")
    assert not (review_server["out"] / "provenance.jsonl").exists()
