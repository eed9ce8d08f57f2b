"""Postprocessing: scores against thresholds, logits, masks back at frame resolution, area and bbox."""

from __future__ import annotations

import math

import numpy as np
import pytest
from edgeinspect.core.errors import MessageError
from edgeinspect.core.package import OutputSpec, Resize
from edgeinspect.core.postprocess import mask_area_and_bbox
from edgeinspect.core.preprocess import plan
from edgeinspect_inference.worker.postprocess import postprocess, postprocess_all

from tests.helpers.manifests import manifest

IDENTITY = plan(8, 8, Resize(height=8, width=8, mode="stretch"))


def probs(value: float) -> dict[str, np.ndarray]:
    return {"out": np.array([[value]], dtype=np.float32)}


@pytest.mark.parametrize(("score", "label"), [(0.49, "ok"), (0.5, "defect"), (0.93, "defect")])
def test_classifier_score_at_or_over_threshold_is_defect(score: float, label: str) -> None:
    verdict = postprocess(manifest(image=0.5), probs(score), IDENTITY, latency_ms=3.21)
    p = verdict.prediction
    assert (p.label, p.task, p.model, p.version, p.role) == (label, "classification", "cls", "1", "primary")
    assert p.score == pytest.approx(score)
    assert p.threshold == 0.5
    assert p.latency_ms == 3.21
    assert verdict.mask is None


def test_classifier_logit_becomes_probability() -> None:
    m = manifest(meaning="defect_logit", image=0.5)
    p = postprocess(m, {"out": np.array([[2.0]], np.float32)}, IDENTITY, latency_ms=1).prediction
    assert p.score == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert p.label == "defect"


def test_class_probabilities_take_class_zero_as_good() -> None:
    m = manifest(meaning="class_probabilities", image=0.5)
    p = postprocess(m, {"out": np.array([[0.2, 0.5, 0.3]], np.float32)}, IDENTITY, latency_ms=1).prediction
    assert p.score == pytest.approx(0.8)


def test_class_logits_are_softmaxed() -> None:
    m = manifest(meaning="class_logits", image=0.9)
    p = postprocess(m, {"out": np.array([[0.0, 0.0]], np.float32)}, IDENTITY, latency_ms=1).prediction
    assert p.score == pytest.approx(0.5)
    assert p.label == "ok"


def test_segmenter_mask_area_bbox_and_peak_score() -> None:
    plane = np.zeros((1, 1, 8, 8), np.float32)
    plane[0, 0, 2:4, 3:6] = 0.8  # 2 rows x 3 cols over the pixel threshold
    plane[0, 0, 6, 6] = 0.4  # under the pixel threshold: not in the mask
    m = manifest("segmentation", name="seg", image=0.7, pixel=0.5)
    verdict = postprocess(m, {"out": plane}, IDENTITY, latency_ms=5)
    p = verdict.prediction
    assert (p.label, p.defect_area_px, p.bbox) == ("defect", 6, (3, 2, 6, 4))
    assert p.score == pytest.approx(0.8)
    assert verdict.mask is not None
    assert verdict.mask.shape == (8, 8)
    assert int(verdict.mask.sum()) == 6


def test_segmenter_mask_comes_back_at_the_frames_resolution_through_letterbox() -> None:
    # A 4x8 frame letterboxed onto 8x8: scale 1, rows 2..5 of the canvas hold the frame.
    geometry = plan(4, 8, Resize(height=8, width=8, mode="letterbox"))
    plane = np.zeros((1, 1, 8, 8), np.float32)
    plane[0, 0, 0, :] = 1.0  # in the letterbox bar: not part of the frame
    plane[0, 0, 3, 1] = 0.9  # frame row 1, column 1
    m = manifest("segmentation", name="seg", mode="letterbox")
    verdict = postprocess(m, {"out": plane}, geometry, latency_ms=1)
    assert verdict.mask is not None
    assert verdict.mask.shape == (4, 8)
    assert np.argwhere(verdict.mask).tolist() == [[1, 1]]
    assert verdict.prediction.bbox == (1, 1, 2, 2)
    assert verdict.prediction.defect_area_px == 1


def test_segmenter_logits_threshold_in_logit_space() -> None:
    plane = np.full((1, 1, 8, 8), -5.0, np.float32)
    plane[0, 0, 0, 0] = 0.1  # sigmoid 0.525 > 0.5
    m = manifest("segmentation", name="seg", meaning="mask_logit", pixel=0.5, image=0.9)
    p = postprocess(m, {"out": plane}, IDENTITY, latency_ms=1).prediction
    assert (p.defect_area_px, p.label) == (1, "ok")
    assert p.score == pytest.approx(1 / (1 + math.exp(-0.1)))


def test_shadow_prediction_can_skip_the_mask() -> None:
    plane = np.ones((1, 1, 8, 8), np.float32)
    m = manifest("segmentation", name="seg")
    verdict = postprocess(m, {"out": plane}, IDENTITY, latency_ms=1, role="shadow", want_mask=False)
    assert verdict.mask is None
    assert verdict.prediction.role == "shadow"
    assert verdict.prediction.label == "defect"


def test_missing_output_names_what_was_expected() -> None:
    with pytest.raises(MessageError, match="not the 'out'"):
        postprocess(manifest(), {"other": np.zeros((1, 1), np.float32)}, IDENTITY, latency_ms=1)


def test_nan_score_is_an_error_not_a_good_part() -> None:
    with pytest.raises(MessageError, match="non-finite"):
        postprocess(manifest(), probs(float("nan")), IDENTITY, latency_ms=1)


def test_empty_mask_has_no_bbox() -> None:
    assert mask_area_and_bbox(np.zeros((3, 4), bool)) == (0, None)


def test_a_line_override_decides_instead_of_the_manifest() -> None:
    from edgeinspect.core.package import Thresholds

    verdict = postprocess(
        manifest(image=0.5), probs(0.3), IDENTITY, latency_ms=1.0, thresholds=Thresholds(image=0.25)
    )
    assert (verdict.prediction.label, verdict.prediction.threshold) == ("defect", 0.25)


def test_a_multitask_model_gives_both_verdicts_from_one_answer() -> None:
    outputs_spec = [
        OutputSpec(name="defect_probability", meaning="defect_probability", shape=[1, 1]),
        OutputSpec(name="mask", meaning="mask_probability", shape=[1, 1, 8, 8]),
    ]
    m = manifest("multitask", name="mt", image=0.6, pixel=0.4, outputs=outputs_spec)
    mask = np.zeros((1, 1, 8, 8), np.float32)
    mask[0, 0, 2:4, 3:6] = 0.45
    outputs = {"defect_probability": np.array([[0.3]], np.float32), "mask": mask}
    cls, seg = postprocess_all(m, outputs, IDENTITY, latency_ms=2.0)
    assert (cls.prediction.task, cls.prediction.label, cls.prediction.threshold) == (
        "classification",
        "ok",
        0.6,
    )
    assert cls.mask is None
    p = seg.prediction
    assert (p.task, p.label, p.model, p.threshold) == ("segmentation", "defect", "mt", 0.4)
    assert p.score == pytest.approx(0.45)
    assert (p.defect_area_px, p.bbox) == (6, (3, 2, 6, 4))
    assert seg.mask is not None and seg.mask.sum() == 6
    single = postprocess_all(manifest(image=0.5), probs(0.7), IDENTITY, latency_ms=1)
    assert [v.prediction.task for v in single] == ["classification"]


def test_an_anomaly_model_gives_one_segmenter_style_verdict_from_its_score_and_map() -> None:
    outputs_spec = [
        OutputSpec(name="defect_probability", meaning="defect_probability", shape=[1, 1]),
        OutputSpec(name="mask", meaning="mask_probability", shape=[1, 1, 8, 8]),
    ]
    m = manifest("anomaly", name="anomaly", image=0.5, pixel=0.5, outputs=outputs_spec)
    plane = np.full((1, 1, 8, 8), 0.1, np.float32)
    plane[0, 0, 1:3, 4:7] = 0.8
    outputs = {"defect_probability": np.array([[0.8]], np.float32), "mask": plane}
    (only,) = postprocess_all(m, outputs, IDENTITY, latency_ms=1.0)
    p = only.prediction
    assert (p.task, p.label, p.model, p.threshold) == ("segmentation", "defect", "anomaly", 0.5)
    assert p.score == pytest.approx(0.8)  # the calibrated image score output, not recomputed
    assert (p.defect_area_px, p.bbox) == (6, (4, 1, 7, 3))
    assert only.mask is not None and only.mask.sum() == 6
    calm = {
        "defect_probability": np.array([[0.2]], np.float32),
        "mask": np.full((1, 1, 8, 8), 0.2, np.float32),
    }
    (ok,) = postprocess_all(m, calm, IDENTITY, latency_ms=1.0)
    assert (ok.prediction.label, ok.prediction.defect_area_px, ok.prediction.bbox) == ("ok", 0, None)
