"""Image features, fixed-bin histograms, summaries, windows and the validation baseline."""

from __future__ import annotations

import json

import numpy as np
import pytest
from edgeinspect.core.errors import MessageError
from edgeinspect.core.telemetry import (
    BRIGHTNESS,
    CLS_DEFECT_RATE,
    CLS_SCORE,
    CONTRAST,
    FEATURES,
    MASK_AREA,
    SEG_SCORE,
    SHARPNESS,
    Histogram,
    TelemetrySummary,
    baseline_from_validation,
    image_features,
    luminance,
    merge_summaries,
    working_grid,
)
from edgeinspect.core.telemetry_window import FrameObservation, ModelAnswer, TelemetryWindows, models_key


def textured(seed: int, height: int = 120, width: int = 80, level: float = 120.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grey = level + rng.normal(0, 12, (height, width))
    return np.clip(np.repeat(grey[:, :, None], 3, axis=2), 0, 255).astype(np.uint8)


def test_luminance_uses_bt601_weights_on_rgb() -> None:
    red = np.zeros((4, 4, 3), np.uint8)
    red[:, :, 0] = 200
    assert luminance(red)[0, 0] == pytest.approx(0.299 * 200, rel=1e-6)
    assert luminance(np.full((4, 4, 1), 9, np.uint8))[0, 0] == 9.0


def test_a_flat_image_has_no_contrast_and_no_sharpness() -> None:
    features = image_features(np.full((50, 60, 3), 77, np.uint8))
    assert features.brightness == pytest.approx(77.0, abs=1e-3)
    assert features.contrast == pytest.approx(0.0, abs=1e-3) and features.sharpness == pytest.approx(0.0)


def test_darker_lighting_moves_brightness_and_not_contrast_or_sharpness() -> None:
    image = textured(1)
    darker = np.clip(image.astype(np.int16) - 40, 0, 255).astype(np.uint8)
    a, b = image_features(image), image_features(darker)
    assert a.brightness - b.brightness == pytest.approx(40.0, abs=0.5)
    assert b.contrast == pytest.approx(a.contrast, rel=0.02)
    assert b.sharpness == pytest.approx(a.sharpness, abs=0.02)


def test_blur_lowers_sharpness() -> None:
    image = textured(2).astype(np.float32)
    blurred = (image + np.roll(image, 1, 0) + np.roll(image, 1, 1) + np.roll(image, 1, (0, 1))) / 4
    assert (
        image_features(blurred.astype(np.uint8)).sharpness < image_features(image.astype(np.uint8)).sharpness
    )


def test_the_working_grid_caps_the_longer_side() -> None:
    plane = np.arange(640 * 232, dtype=np.float32).reshape(640, 232)
    grid = working_grid(plane)
    assert grid.shape == (213, 77) and max(grid.shape) <= 256
    assert working_grid(plane[:200, :100]).shape == (200, 100)
    with pytest.raises(MessageError, match="too small"):
        image_features(np.zeros((2, 2, 3), np.uint8))


def test_histograms_clip_out_of_range_values_into_the_end_bins_and_skip_nan() -> None:
    hist = Histogram.empty(CLS_SCORE)
    hist.add([-0.5, 0.0, 0.5, 0.999, 1.0, 7.0, float("nan")])
    assert hist.n == 6 and int(hist.counts.sum()) == 6
    assert hist.counts[0] == 2 and hist.counts[-1] == 3 and hist.counts[25] == 1
    assert hist.min == -0.5 and hist.max == 7.0


def test_histogram_json_roundtrip_and_merge() -> None:
    a, b = Histogram.empty(BRIGHTNESS), Histogram.empty(BRIGHTNESS)
    a.add([10, 20, 30])
    b.add([40])
    a.merge(b)
    back = Histogram.from_json(BRIGHTNESS, json.loads(json.dumps(a.to_json())))
    assert back.n == 4 and back.mean == pytest.approx(25.0) and back.counts.tolist() == a.counts.tolist()
    with pytest.raises(MessageError, match="bins version"):
        Histogram.from_json(BRIGHTNESS, {"n": 1, "counts": [1, 0]})
    with pytest.raises(MessageError, match="unknown telemetry feature"):
        Histogram.empty("colourfulness")


def test_mask_area_bins_keep_empty_masks_apart() -> None:
    hist = Histogram.empty(MASK_AREA)
    hist.add([0.0, 0.0, 2e-4, 0.5])
    assert hist.counts[0] == 2 and FEATURES[MASK_AREA][1] == pytest.approx(1e-5)


def test_summary_roundtrip_refuses_other_versions_and_merges() -> None:
    windows = TelemetryWindows("line-1", thing="press-7")
    models = {"classification": "defect-cls:3"}
    for i in range(4):
        frame = FrameObservation(
            verdict="defect" if i == 0 else "ok",
            answers={"classification": ModelAnswer(0.9 if i == 0 else 0.1, i == 0)},
            models=models,
            image=image_features(textured(i)),
            shadow_agreed=i != 1,
            latency_ms=12.0,
        )
        windows.add(frame, now_ns=1_000 + i)
    windows.add(FrameObservation(verdict="error", latency_ms=3.0), now_ns=2_000)
    (no_model, summary) = sorted(windows.flush(now_ns=5_000), key=lambda s: len(s.models))
    assert windows.pending_frames() == 0 and windows.flush(6_000) == []
    assert no_model.verdicts == {"error": 1} and not no_model.rates
    assert summary.frames == 4 and summary.rates[CLS_DEFECT_RATE].k == 1
    assert (summary.shadow.n, summary.shadow.k) == (4, 3) and (summary.start_ns, summary.end_ns) == (
        1000,
        5000,
    )
    body = json.loads(json.dumps(summary.to_json()))
    back = TelemetrySummary.from_json(body)
    assert back.to_json() == summary.to_json()
    total = merge_summaries([back, summary], line="line-1")
    assert total.frames == 8 and total.features[CONTRAST].n == 8
    with pytest.raises(MessageError, match="this code reads"):
        TelemetrySummary.from_json({**body, "v": 99})
    with pytest.raises(MessageError, match="not an edgeinspect telemetry summary"):
        TelemetrySummary.from_json({"v": 1})


def test_a_swap_starts_a_new_window() -> None:
    windows = TelemetryWindows("line-1")
    for version in ("3", "4"):
        windows.add(FrameObservation("ok", models={"classification": f"defect-cls:{version}"}), now_ns=1)
    assert len(windows.flush(2)) == 2
    assert (
        models_key({"segmentation": "s:1", "classification": "c:2"}) == "classification=c:2,segmentation=s:1"
    )


def test_baseline_from_validation_counts_every_image_score_and_mask() -> None:
    images = [textured(i) for i in range(5)]
    masks = [np.zeros((120, 80), bool) for _ in range(5)]
    masks[0][:12, :8] = True
    body = baseline_from_validation(
        images, [0.1, 0.2, 0.7, 0.3, 0.9], masks, task="segmentation", threshold=0.5
    )
    baseline = TelemetrySummary.from_json(json.loads(json.dumps(body)))
    assert baseline.kind == "baseline" and baseline.frames == 5
    assert baseline.rates["seg_defect_rate"].k == 2 and baseline.features[SEG_SCORE].n == 5
    assert baseline.features[MASK_AREA].counts[0] == 4
    assert baseline.features[SHARPNESS].n == 5 and baseline.extra == {
        "task": "segmentation",
        "threshold": 0.5,
    }
    with pytest.raises(MessageError, match="one score"):
        baseline_from_validation(images, [0.1], None)
