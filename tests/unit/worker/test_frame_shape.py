"""A frame far from the shape its model learnt from: measured, counted each time, said once."""

from __future__ import annotations

import pytest
from edgeinspect.core.package import TilingHint
from edgeinspect.core.tiling import TilingConfig, decide
from edgeinspect_inference.worker.catalog import Target
from edgeinspect_inference.worker.frame_shape import ShapeCheck, stretch, trained_shape
from edgeinspect_inference.worker.metrics import WorkerMetrics

from tests.helpers.manifests import manifest

# a model trained on KolektorSDD2-shaped frames (640 high, 232 wide) shrunk to a 320x112 input
PORTRAIT = manifest(height=320, width=112, tiling=TilingHint(tile_height=640, tile_width=232))


def _count(metrics: WorkerMetrics) -> float:
    return (
        metrics.registry.get_sample_value(
            "ei_worker_frame_shape_mismatch_total", {"line": "l1", "alias": "defect-mt"}
        )
        or 0.0
    )


def test_the_trained_shape_is_the_hints_frame_else_the_input() -> None:
    assert trained_shape(PORTRAIT) == (640, 232)
    assert trained_shape(manifest(height=224, width=224)) == (224, 224)
    assert stretch((640, 232), (320, 112)) == pytest.approx(1.036, abs=1e-3)
    assert stretch((232, 640), (640, 232)) == pytest.approx(stretch((640, 232), (232, 640)))
    assert stretch((232, 640), (640, 232)) == pytest.approx(7.61, abs=0.01)


def test_a_frame_on_its_side_is_counted_every_time_and_said_once(caplog: pytest.LogCaptureFixture) -> None:
    metrics = WorkerMetrics()
    check = ShapeCheck("l1", metrics)
    target = Target("defect-mt", PORTRAIT)
    assert check.check(target, 640, 232, None, "upright") == 1.0
    assert check.check(target, 1280, 464, None, "larger") == 1.0  # the same shape, twice the pixels
    assert _count(metrics) == 0
    for frame_id in ("side-0", "side-1", "side-2"):
        assert check.check(target, 232, 640, None, frame_id) > 7.0
    assert _count(metrics) == 3
    said = [r for r in caplog.records if r.getMessage() == "frame_shape_mismatch"]
    assert len(said) == 1
    fields = vars(said[0])
    assert fields["frame_id"] == "side-0" and fields["frame"] == "232x640" and fields["trained"] == "640x232"
    assert "orientation" in fields["hint"]


def test_tiles_are_judged_by_the_piece_the_model_is_shown() -> None:
    metrics = WorkerMetrics()
    check = ShapeCheck("l1", metrics)
    target = Target("defect-mt", PORTRAIT)
    big = decide(4000, 1160, PORTRAIT.input, TilingConfig(mode="on"), PORTRAIT.tiling)
    strip = decide(232, 2000, PORTRAIT.input, TilingConfig(mode="on"), PORTRAIT.tiling)
    assert big is not None and strip is not None
    assert check.check(target, 4000, 1160, big, "big") == 1.0  # tiles of the training frame's shape
    # too short for a tile: each is cut 232 high and stretched to the 640-high shape the model knows
    assert check.check(target, 232, 2000, strip, "strip") == pytest.approx(640 / 232)
    assert _count(metrics) == 1


def test_a_letterboxed_model_keeps_proportions_and_is_not_checked() -> None:
    metrics = WorkerMetrics()
    letterbox = manifest(height=224, width=224, mode="letterbox")
    assert ShapeCheck("l1", metrics).check(Target("defect-mt", letterbox), 100, 900, None, "wide") == 1.0
    assert _count(metrics) == 0
