"""Image- and pixel-level metrics, checked against values worked out by hand (scikit-learn's definitions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from edgeinspect_cloud.errors import EvaluationError
from edgeinspect_cloud.evaluation import metrics as m
from hypothesis import given, settings
from hypothesis import strategies as st

LABELS = [1, 0, 1, 1, 0]
SCORES = [0.9, 0.8, 0.7, 0.6, 0.2]


def test_average_precision_matches_the_step_definition() -> None:
    assert m.average_precision(LABELS, SCORES) == pytest.approx(1 / 3 + 2 / 9 + 1 / 4)


def test_roc_auc_is_the_share_of_correctly_ordered_pairs() -> None:
    assert m.roc_auc(LABELS, SCORES) == pytest.approx(4 / 6)


def test_ties_count_as_one_threshold() -> None:
    assert m.roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert m.average_precision([1, 0], [0.5, 0.5]) == pytest.approx(0.5)


def test_perfect_and_inverted_rankings() -> None:
    assert m.average_precision([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert m.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert m.roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0


def test_undefined_metrics_are_nan() -> None:
    assert math.isnan(m.average_precision([0, 0], [0.1, 0.2]))
    assert math.isnan(m.roc_auc([1, 1], [0.1, 0.2]))
    assert all(math.isnan(v) for v in m.best_f1([0, 0], [0.1, 0.2]))


def test_best_f1_and_its_threshold_use_score_at_least_threshold() -> None:
    f1, threshold = m.best_f1(LABELS, SCORES)
    assert f1 == pytest.approx(6 / 7) and threshold == pytest.approx(0.6)
    table = m.confusion(LABELS, SCORES, threshold)
    assert (table.tp, table.fp, table.tn, table.fn) == (3, 1, 1, 0)
    assert table.f1 == pytest.approx(f1)
    assert table.as_dict()["precision"] == pytest.approx(0.75)


@settings(max_examples=50, deadline=None)
@given(
    labels=st.lists(st.booleans(), min_size=2, max_size=40),
    seed=st.integers(0, 1000),
)
def test_ap_is_between_prevalence_bounds_and_auc_is_symmetric(labels: list[bool], seed: int) -> None:
    y = np.array(labels)
    if y.all() or not y.any():
        return
    scores = np.random.default_rng(seed).random(y.size)
    ap = m.average_precision(y, scores)
    assert 0.0 < ap <= 1.0
    assert m.roc_auc(y, scores) + m.roc_auc(~y, scores) == pytest.approx(1.0)
    assert m.roc_auc(y, scores) == pytest.approx(1.0 - m.roc_auc(y, -scores))


def test_pr_and_roc_curves_run_from_their_corners() -> None:
    pr = m.pr_curve(LABELS, SCORES)
    roc = m.roc_curve(LABELS, SCORES)
    assert (pr.x[0], pr.y[0], pr.x[-1]) == (0.0, 1.0, 1.0)
    assert (roc.x[0], roc.y[0], roc.x[-1], roc.y[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(roc.x) >= 0) and np.all(np.diff(pr.x) >= 0)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(EvaluationError, match="2 labels but 3 scores"):
        m.average_precision([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(EvaluationError, match="NaN"):
        m.roc_auc([0, 1], [0.1, float("nan")])


def test_dice_and_iou_of_overlapping_masks() -> None:
    truth = np.zeros((4, 4), bool)
    truth[:2, :2] = True  # 4 pixels
    predicted = np.zeros((4, 4), bool)
    predicted[:2, 1:3] = True  # 4 pixels, 2 shared
    dice, iou = m.dice_iou(truth, predicted)
    assert dice == pytest.approx(0.5) and iou == pytest.approx(2 / 6)
    assert m.dice_iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == (1.0, 1.0)


def test_pixel_scores_use_only_defective_images() -> None:
    truth = np.zeros((4, 4), bool)
    truth[1:3, 1:3] = True
    perfect = truth.astype(np.float32)
    good_truth = np.zeros((4, 4), bool)
    noisy_good = np.ones((4, 4), np.float32)  # false alarms on a good image do not count here
    scores = m.pixel_scores([truth, good_truth], [perfect, noisy_good], threshold=0.5)
    assert scores.images == 1
    assert scores.dice == 1.0 and scores.iou == 1.0 and scores.pixel_ap == pytest.approx(1.0)
    assert scores.dice_per_image == 1.0


def test_pixel_scores_micro_average_weighs_big_defects_more() -> None:
    big, small = np.zeros((10, 10), bool), np.zeros((10, 10), bool)
    big[:6, :6] = True
    small[0, 0] = True
    scores = m.pixel_scores([big, small], [big.astype(np.float32), np.zeros((10, 10), np.float32)], 0.5)
    assert scores.dice == pytest.approx(2 * 36 / 73)
    assert scores.dice_per_image == pytest.approx(0.5)


def test_pixel_scores_without_defective_images_are_nan() -> None:
    scores = m.pixel_scores([np.zeros((2, 2), bool)], [np.zeros((2, 2), np.float32)], 0.5)
    assert scores.images == 0 and math.isnan(scores.dice)


def test_pixel_scores_refuse_mismatched_shapes() -> None:
    with pytest.raises(EvaluationError, match="map predictions back"):
        m.pixel_scores([np.ones((2, 2), bool)], [np.ones((3, 2), np.float32)], 0.5)


def test_operating_threshold_keeps_validation_f1_and_sits_mid_gap() -> None:
    labels = [0, 0, 0, 1, 1, 1]
    scores = [0.05, 0.2, 0.3, 0.997, 0.998, 0.999]  # perfectly separated: best_f1 picks 0.997
    assert m.best_f1(labels, scores)[1] == pytest.approx(0.997)
    threshold = m.operating_threshold(labels, scores)
    assert threshold == pytest.approx((0.997 + 0.3) / 2)
    assert m.confusion(labels, scores, threshold).f1 == pytest.approx(1.0)
    f1, _best = m.best_f1(LABELS, SCORES)
    assert m.confusion(LABELS, SCORES, m.operating_threshold(LABELS, SCORES)).f1 == pytest.approx(f1)
    assert m.operating_threshold([1, 1], [0.4, 0.9]) == pytest.approx(0.4)  # nothing below: the score
