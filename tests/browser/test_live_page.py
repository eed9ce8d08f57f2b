"""The live page in a real headless Chromium: verdicts, mask overlay, defect strip, keyboard use."""

from __future__ import annotations

from typing import Any

import pytest
from edgeinspect.core.streams import Streams

from tests.integration.ui.support import MASK_BOX, LiveUi, push

pytestmark = pytest.mark.browser
WAIT_MS = 15_000


def open_page(page: Any, ui: LiveUi, line: str) -> None:
    page.goto(f"{ui.url}/?line={line}")
    page.wait_for_selector("#conn[data-state='live']", timeout=WAIT_MS)


def shown(page: Any, frame_id: str, verdict: str) -> None:
    """Wait until the live panel shows ``frame_id`` with ``verdict`` (and its frame is drawn)."""
    page.wait_for_selector(f"#verdict[data-verdict='{verdict}'][data-frame-id='{frame_id}']", timeout=WAIT_MS)
    page.wait_for_selector(f"#frame[data-frame-id='{frame_id}']", timeout=WAIT_MS)


def pixel(page: Any, x: int, y: int) -> list[int]:
    rgba = page.evaluate(
        "([x, y]) => Array.from("
        "document.getElementById('frame').getContext('2d').getImageData(x, y, 1, 1).data)",
        [x, y],
    )
    return [int(v) for v in rgba]


def mask_centre() -> tuple[int, int]:
    x0, y0, x1, y1 = MASK_BOX
    return (x0 + x1) // 2, (y0 + y1) // 2


def test_a_defect_appears_with_its_verdict_and_mask_overlay(
    panel: Any, ui: LiveUi, streams: Streams, line_id: str
) -> None:
    open_page(panel, ui, line_id)
    push(streams, line_id, "part-1", "defect", score=0.91)
    shown(panel, "part-1", "defect")
    assert panel.inner_text("#verdict-text") == "DEFECT"
    assert panel.get_attribute("#frame", "data-mask") == "shown"
    red, green, blue, _ = pixel(panel, *mask_centre())
    assert red > green + 60 and red > blue + 60, "the mask is drawn in red over the defect"
    assert pixel(panel, 5, 5)[:3] == [90, 90, 90], "outside the defect the frame is untouched"
    assert panel.inner_text("#score") == "0.910"
    assert "defect-seg v3" in panel.inner_text("#preds-body")
    assert panel.inner_text("#e2e") == "20.0 ms"


def test_ok_and_error_verdicts_are_told_by_text_not_colour_alone(
    panel: Any, ui: LiveUi, streams: Streams, line_id: str
) -> None:
    open_page(panel, ui, line_id)
    push(streams, line_id, "good-1", "ok")
    shown(panel, "good-1", "ok")
    assert panel.inner_text("#verdict-text") == "OK"
    assert panel.get_attribute("#frame", "data-mask") == "none"
    push(streams, line_id, "bad-read", "error", with_frame=False)
    panel.allowed_errors.append("404")  # the error result has no frame, on purpose
    shown(panel, "bad-read", "error")
    assert panel.inner_text("#verdict-text") == "ERROR"
    assert "cannot decode frame" in panel.inner_text("#preds-body")


def test_the_mask_toggle_and_opacity_work_from_the_keyboard(
    panel: Any, ui: LiveUi, streams: Streams, line_id: str
) -> None:
    open_page(panel, ui, line_id)
    push(streams, line_id, "part-2", "defect")
    shown(panel, "part-2", "defect")
    panel.focus("#mask-toggle")
    panel.keyboard.press("Space")
    panel.wait_for_selector("#frame[data-mask='hidden']", timeout=WAIT_MS)
    assert pixel(panel, *mask_centre())[:3] == [90, 90, 90]
    panel.keyboard.press("Space")
    panel.wait_for_selector("#frame[data-mask='shown']", timeout=WAIT_MS)
    strong = pixel(panel, *mask_centre())
    panel.focus("#mask-opacity")
    for _ in range(6):
        panel.keyboard.press("ArrowLeft")
    assert panel.inner_text("#mask-opacity-value") == "25 %"
    faint = pixel(panel, *mask_centre())
    assert strong[0] > faint[0] > 90, "lower opacity, less red"


def test_the_defect_strip_grows_and_opens_full_size(
    panel: Any, ui: LiveUi, streams: Streams, line_id: str
) -> None:
    open_page(panel, ui, line_id)
    for i in range(3):
        push(streams, line_id, f"d{i}", "defect", score=0.8 + i / 100)
        push(streams, line_id, f"ok{i}", "ok")
        panel.wait_for_selector(f"#defect-strip[data-count='{i + 1}']", timeout=WAIT_MS)
    assert panel.is_hidden("#defects-empty")
    labels = panel.eval_on_selector_all(
        "#defect-strip button", "bs => bs.map(b => b.getAttribute('aria-label'))"
    )
    assert "score 0.820" in labels[0], "newest first"
    panel.wait_for_function(
        "() => document.querySelector('#c-inspected').textContent === '6'", timeout=WAIT_MS
    )
    assert panel.inner_text("#c-rate") == "50.00 %"
    panel.focus("#defect-strip button")
    panel.keyboard.press("Enter")
    panel.wait_for_selector("#zoom[open]", timeout=WAIT_MS)
    assert "frame d2" in (panel.text_content("#zoom-h") or "")
    panel.keyboard.press("Escape")
    panel.wait_for_selector("#zoom:not([open])", state="attached", timeout=WAIT_MS)


def test_the_page_keeps_up_by_skipping_frames(panel: Any, ui: LiveUi, streams: Streams, line_id: str) -> None:
    open_page(panel, ui, line_id)
    for i in range(150):
        push(streams, line_id, f"burst-{i}", "ok", e2e_ms=10 + i % 7)
    shown(panel, "burst-149", "ok")
    panel.wait_for_function(
        "() => document.querySelector('#c-inspected').textContent === '150'", timeout=WAIT_MS
    )


def test_the_page_is_accessible_without_a_mouse(panel: Any, ui: LiveUi, line_id: str) -> None:
    open_page(panel, ui, line_id)
    assert panel.locator("header").count() == 1 and panel.locator("main").count() == 1
    unlabelled = panel.evaluate(
        "() => [...document.querySelectorAll('input, select')]"
        ".filter(e => e.labels.length === 0).map(e => e.id)"
    )
    assert unlabelled == []
    assert panel.get_attribute("html", "lang") == "en"
    panel.keyboard.press("Tab")
    assert panel.evaluate("() => document.activeElement.textContent") == "Skip to the live frame"
    assert "No agent configured" in panel.inner_text("#models-body")
