"""Frames in, results out, against the real redis-server and the real agent with both models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from edgeinspect.core import images, names
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.messages import Result

from tests.integration.worker.conftest import FRAME_SIZE, PATCH, LineKit, frame_pixels

ByFrame = Callable[[list[Result]], dict[str, Result]]


def test_good_and_defective_frames_get_correct_verdicts_from_both_models(
    line: LineKit, by_frame: ByFrame
) -> None:
    line.deploy()
    kinds = {"good-0": "dark", "bad-0": "bright", "good-1": "dark", "bad-1": "bright", "patch-0": "patch"}
    with line.worker():
        entries = {frame_id: line.send(frame_id, frame_pixels(kind)) for frame_id, kind in kinds.items()}  # type: ignore[arg-type]
        results = by_frame(line.wait_results(len(kinds)))
    assert line.pending() == 0
    for frame_id, kind in kinds.items():
        result = results[frame_id]
        assert result.verdict == ("ok" if kind == "dark" else "defect"), (frame_id, result)
        assert result.error == ""
        assert [(p.model, p.version, p.task, p.role) for p in result.predictions] == [
            ("cls", "1", "classification", "primary"),
            ("seg", "1", "segmentation", "primary"),
        ]
        assert result.e2e_ms > 0
        assert result.frame_entry == entries[frame_id]  # the UI fetches the frame by it in one read
        if kind == "dark":
            assert result.mask is None  # nothing to draw: no PNG for a good part
        else:
            assert result.mask is not None
            assert images.decode_mask(result.mask).shape == (FRAME_SIZE, FRAME_SIZE)
    good_cls, good_seg = results["good-0"].predictions
    assert good_cls.label == good_seg.label == "ok"
    assert good_seg.defect_area_px == 0
    assert good_seg.bbox is None
    bad_cls, bad_seg = results["bad-0"].predictions
    assert bad_cls.label == bad_seg.label == "defect"
    assert bad_seg.defect_area_px == FRAME_SIZE * FRAME_SIZE


def test_a_small_defect_is_found_by_the_segmenter_with_its_area_and_box_at_frame_resolution(
    line: LineKit,
) -> None:
    line.deploy()
    with line.worker(verdict_rule="any"):
        line.send("patch", frame_pixels("patch"))
        (result,) = line.wait_results(1)
    cls, seg = result.predictions
    assert cls.label == "ok"  # the frame is mostly dark: the classifier misses it
    assert seg.label == "defect"
    y0, y1, x0, x1 = PATCH
    assert seg.defect_area_px == (y1 - y0) * (x1 - x0)
    assert seg.bbox == (x0, y0, x1, y1)
    assert result.verdict == "defect"
    assert result.mask is not None
    mask = images.decode_mask(result.mask)
    expected = np.zeros((FRAME_SIZE, FRAME_SIZE), dtype=bool)
    expected[y0:y1, x0:x1] = True
    assert np.array_equal(mask, expected)


def test_classification_rule_lets_the_classifier_alone_decide(line: LineKit) -> None:
    line.deploy()
    with line.worker(verdict_rule="classification"):
        line.send("patch", frame_pixels("patch"))
        (result,) = line.wait_results(1)
    assert result.verdict == "ok"
    assert result.predictions[1].label == "defect"  # still reported, just not deciding


def test_a_corrupt_frame_gets_an_error_result_with_the_reason_and_is_acknowledged(line: LineKit) -> None:
    line.deploy()
    with line.worker():
        line.send("corrupt", data=b"\x89PNG\r\n\x1a\nthis is not a png")
        line.send("fine", frame_pixels("dark"))
        results = {r.frame_id: r for r in line.wait_results(2)}
    corrupt = results["corrupt"]
    assert corrupt.verdict == "error"
    assert "cannot decode" in corrupt.error
    assert corrupt.predictions == []
    assert results["fine"].verdict == "ok"
    assert line.pending() == 0
    captured = {c.frame_id: c for c in line.captures()}
    assert captured["corrupt"].reasons == ["error"]
    assert "fine" not in captured


def test_the_plc_part_id_travels_from_the_frame_to_its_result_and_capture(line: LineKit) -> None:
    line.deploy()
    with line.worker():
        line.send("bad", frame_pixels("bright"), part_id="4711")
        line.send("good", frame_pixels("dark"), part_id="4712")
        line.send("corrupt", data=b"not a png", part_id="4713")
        results = {r.frame_id: r for r in line.wait_results(3)}
    assert {k: (r.verdict, r.part_id) for k, r in results.items()} == {
        "bad": ("defect", "4711"), "good": ("ok", "4712"), "corrupt": ("error", "4713"),
    }  # fmt: skip
    captured = {c.frame_id: c.part_id for c in line.captures()}
    assert captured["bad"] == "4711" and captured["corrupt"] == "4713"


def test_without_any_model_frames_are_not_inspected_and_not_errors(line: LineKit) -> None:
    with line.worker(model_wait_s=0) as service:
        line.send("f1")
        line.send("f2")
        first, second = line.wait_results(2)
        metrics = service.metrics.registry
    assert first.verdict == second.verdict == "no_model"
    assert "waiting for a model: none loaded for alias defect-cls or defect-seg" in first.error
    assert metrics.get_sample_value("ei_worker_frames_total", {"line": line.line, "verdict": "no_model"}) == 2
    assert (
        metrics.get_sample_value("ei_worker_errors_total", {"line": line.line, "reason": "no_model"}) is None
    )
    assert not line.captures()  # nothing was inspected: nothing to capture


def test_frames_wait_for_the_first_model_within_the_bound(line: LineKit) -> None:
    with line.worker(model_wait_s=60, model_retry_s=0.05) as service:
        for i in range(3):
            line.send(f"early-{i}", frame_pixels("bright"))
        metrics = service.metrics.registry
        labels = {"line": line.line}
        assert wait_until(lambda: metrics.get_sample_value("ei_worker_waiting_for_model", labels) == 1, 30)
        assert wait_until(
            lambda: (metrics.get_sample_value("ei_worker_model_wait_seconds_total", labels) or 0) > 0.1, 30
        )
        assert line.results() == []  # held, not judged
        line.deploy()
        results = line.wait_results(3)
        assert metrics.get_sample_value("ei_worker_waiting_for_model", labels) == 0
    assert [r.verdict for r in results] == ["defect"] * 3


def test_with_only_the_classifier_loaded_frames_are_judged_by_it_and_the_gap_is_said(line: LineKit) -> None:
    line.deploy(seg=False)
    with line.worker():
        line.send("bad", frame_pixels("bright"))
        (result,) = line.wait_results(1)
    assert result.verdict == "defect"
    assert [p.model for p in result.predictions] == ["cls"]
    assert result.error == "no model loaded for alias defect-seg"
    assert result.mask is None


def test_defects_and_near_threshold_scores_are_captured_good_parts_sampled_by_seed(line: LineKit) -> None:
    line.deploy()
    with line.worker(capture_good_fraction=1.0, capture_band=0.01):
        line.send("good", frame_pixels("dark"))
        line.send("bad", frame_pixels("bright"))
        line.wait_results(2)
    reasons = {c.frame_id: c.reasons for c in line.captures()}
    assert reasons == {"good": ["sample_good"], "bad": ["defect"]}
    capture = next(c for c in line.captures() if c.frame_id == "bad")
    assert images.decode(capture.data, capture.encoding).shape == (FRAME_SIZE, FRAME_SIZE, 3)
    assert capture.verdict == "defect"
    assert capture.mask is not None


def test_a_lone_frame_is_answered_without_waiting_for_redis_s_timer_tick(line: LineKit) -> None:
    """One frame at a time (a slow line): while the frame is judged the worker only looks for more.

    A blocked read there, even ``BLOCK 1``, returns on Redis's next timer tick; at one tick a second
    that held each result back by about half a second here. The test waits for each result with a
    blocking read too: polling would wake Redis and hide the tick.
    """
    line.deploy()
    stream, last = names.results_stream(line.line), "$"
    hz = line.client.config_get("hz")["hz"]  # an EI_TEST_REDIS_URL server gets its own value back
    line.client.config_set("hz", 1)
    try:
        with line.worker():
            for i in range(4):
                line.send(f"lone-{i}")
                reply: Any = line.client.xread({stream: last}, count=1, block=10_000)
                assert reply, f"no result for lone-{i} within 10 s"
                last = reply[0][1][0][0]
    finally:
        line.client.config_set("hz", hz)
    e2e = [r.e2e_ms for r in line.results()]
    assert len(e2e) == 4 and max(e2e) < 250, e2e  # each waited about 500 ms before the fix
