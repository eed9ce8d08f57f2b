"""The one postprocessing path: scores from classifier outputs, masks and scores from segmenter outputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from edgeinspect.core.errors import MessageError
from edgeinspect.core.package import Resize
from edgeinspect.core.postprocess import (
    classification_score,
    is_defect,
    logit,
    mask_area_and_bbox,
    mask_probabilities,
    segmentation_score_and_mask,
    sigmoid,
)
from edgeinspect.core.preprocess import plan


def test_classifier_meanings_all_give_a_defect_probability() -> None:
    assert classification_score(np.array([[0.7]], np.float32), "defect_probability") == pytest.approx(0.7)
    assert classification_score(np.array([[0.0]]), "defect_logit") == pytest.approx(0.5)
    assert classification_score(np.array([[0.9, 0.05, 0.05]]), "class_probabilities") == pytest.approx(0.1)
    assert classification_score(np.array([[0.0, 0.0]]), "class_logits") == pytest.approx(0.5)


def test_scores_are_clamped_and_non_finite_scores_are_errors() -> None:
    assert classification_score(np.array([[1.0000001]]), "defect_probability") == 1.0
    with pytest.raises(MessageError, match="non-finite"):
        classification_score(np.array([[np.nan]]), "defect_probability")
    with pytest.raises(MessageError, match="not a classifier output"):
        classification_score(np.array([[0.2, 0.8]]), "mask_probability")


def test_segmenter_score_is_the_peak_and_mask_the_threshold() -> None:
    plane = np.zeros((1, 1, 4, 6), np.float32)
    plane[0, 0, 1, 2] = 0.9
    plane[0, 0, 2, 2] = 0.5
    score, mask = segmentation_score_and_mask(plane, "mask_probability", 0.5)
    assert score == pytest.approx(0.9)
    assert mask.sum() == 2 and mask[2, 2]  # p >= threshold is defect
    logits = np.log(plane / (1 - plane + 1e-9) + 1e-9)
    score_l, mask_l = segmentation_score_and_mask(logits, "mask_logit", 0.5)
    assert score_l == pytest.approx(0.9, abs=1e-4) and mask_l.sum() >= 1


def test_mask_probabilities_of_logits_match_the_sigmoid() -> None:
    logits = np.array([[[[-2.0, 0.0, 3.0]]]], np.float32)
    probs = mask_probabilities(logits, "mask_logit")
    assert probs.shape == (1, 3)
    assert probs[0].tolist() == pytest.approx([sigmoid(-2.0), 0.5, sigmoid(3.0)], abs=1e-6)


def test_a_batch_of_planes_is_refused_where_one_image_is_expected() -> None:
    with pytest.raises(MessageError, match="one HxW plane"):
        segmentation_score_and_mask(np.zeros((2, 1, 4, 4)), "mask_probability", 0.5)


def test_area_and_bbox_have_exclusive_ends() -> None:
    mask = np.zeros((5, 8), bool)
    mask[1:3, 4:7] = True
    assert mask_area_and_bbox(mask) == (6, (4, 1, 7, 3))
    assert mask_area_and_bbox(np.zeros((3, 3), bool)) == (0, None)


def test_model_mask_maps_back_to_the_frame_binary() -> None:
    geometry = plan(8, 4, Resize(height=4, width=2, mode="stretch"))
    _, mask = segmentation_score_and_mask(np.array([[[[0.9, 0.1]] * 4]], np.float32), "mask_probability", 0.5)
    frame_mask = geometry.to_frame(mask)
    assert frame_mask.shape == (8, 4) and frame_mask.dtype == np.bool_
    assert frame_mask[:, :2].all() and not frame_mask[:, 2:].any()


def test_verdict_rule_and_logit_inverse() -> None:
    assert is_defect(0.5, 0.5) and not is_defect(0.49, 0.5)
    assert sigmoid(logit(0.3)) == pytest.approx(0.3)
    assert sigmoid(-math.inf) == 0.0 and sigmoid(1000.0) == 1.0
