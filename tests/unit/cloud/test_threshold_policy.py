"""Threshold policies: best F1 (today's mid-gap point), a recall target, a false-reject limit; the
degenerate validation sets a small line produces; and the manifest that carries the choice."""

from __future__ import annotations

import json

import numpy as np
import pytest
from edgeinspect.core.package import Manifest, OperatingPoint
from edgeinspect_cloud.errors import EvaluationError
from edgeinspect_cloud.evaluation import metrics as m
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.manifests import manifest

# five good parts, five defects; the good part at 0.55 outranks the defects at 0.5 and 0.3
LABELS = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
SCORES = [0.05, 0.1, 0.2, 0.25, 0.55, 0.3, 0.5, 0.7, 0.8, 0.9]


def point(policy: str, labels: list[int] = LABELS, scores: list[float] = SCORES) -> OperatingPoint:
    return m.choose_operating_point(labels, scores, m.ThresholdPolicy.parse(policy))


@pytest.mark.parametrize(
    ("text", "kind", "target"),
    [
        ("best-f1", "best-f1", None),
        ("target-recall:0.99", "target-recall", 0.99),
        (" max-false-reject:0 ", "max-false-reject", 0.0),
        ("max-false-reject:0.01", "max-false-reject", 0.01),
    ],
)
def test_policies_parse_and_print_as_written(text: str, kind: str, target: float | None) -> None:
    policy = m.ThresholdPolicy.parse(text)
    assert (policy.kind, policy.target) == (kind, target)
    assert m.ThresholdPolicy.parse(str(policy)) == policy


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("f1", "unknown threshold policy"),
        ("target-recall", "needs a number"),
        ("target-recall:high", "needs a number"),
        ("target-recall:0", "above 0 and at most 1"),
        ("target-recall:1.5", "above 0 and at most 1"),
        ("max-false-reject:-0.1", "is not 0..1"),
        ("max-false-reject:nan", "is not 0..1"),
        ("best-f1:0.5", "takes no value"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_accepted_forms(text: str, says: str) -> None:
    with pytest.raises(EvaluationError, match=says):
        m.ThresholdPolicy.parse(text)


def test_best_f1_is_todays_mid_gap_operating_threshold() -> None:
    chosen = point("best-f1")
    assert chosen.threshold == pytest.approx(m.operating_threshold(LABELS, SCORES))
    assert chosen.met and chosen.policy == "best-f1" and chosen.split == "validation"


def test_a_recall_target_flags_down_to_the_defect_it_needs_and_sits_mid_gap_below() -> None:
    chosen = point("target-recall:0.99")  # every defect: the lowest is 0.3, the next lower score 0.25
    assert chosen.threshold == pytest.approx((0.3 + 0.25) / 2)
    assert (chosen.recall, chosen.escapes, chosen.false_rejects) == (1.0, 0, 1)
    assert chosen.false_reject_rate == pytest.approx(0.2)
    assert chosen.precision == pytest.approx(5 / 6)
    assert chosen.met
    looser = point("target-recall:0.6")  # 3 of 5 defects are enough: above the false reject at 0.55
    assert looser.threshold == pytest.approx((0.7 + 0.55) / 2)
    assert (looser.recall, looser.false_rejects) == (pytest.approx(0.6), 0)


def test_a_false_reject_limit_takes_the_most_recall_within_it() -> None:
    strict = point("max-false-reject:0")  # 0.55 is a good part: stop above it
    assert strict.threshold == pytest.approx((0.7 + 0.55) / 2)
    assert (strict.false_rejects, strict.recall) == (0, pytest.approx(0.6))
    allowed = point("max-false-reject:0.2")  # one of five good parts may go: everything down to 0.3
    assert allowed.threshold == pytest.approx((0.3 + 0.25) / 2)
    assert (allowed.false_rejects, allowed.recall, allowed.met) == (1, 1.0, True)


def test_the_recorded_figures_are_what_the_edge_rule_gives_at_the_threshold() -> None:
    for policy in ("best-f1", "target-recall:0.8", "max-false-reject:0.1"):
        chosen = point(policy)
        table = m.confusion(LABELS, SCORES, chosen.threshold)
        assert (chosen.false_rejects, chosen.escapes) == (table.fp, table.fn)
        assert chosen.recall == pytest.approx(table.recall)
        assert chosen.false_reject_rate == pytest.approx(table.false_reject_rate)


def test_perfect_separation_puts_every_policy_in_the_middle_of_the_gap() -> None:
    labels, scores = [0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]
    for policy in ("best-f1", "target-recall:0.99", "max-false-reject:0.01"):
        chosen = point(policy, labels, scores)
        assert chosen.threshold == pytest.approx(0.5), policy
        assert (chosen.recall, chosen.false_reject_rate, chosen.met) == (1.0, 0.0, True)


def test_no_defect_in_validation_falls_back_and_says_the_policy_was_not_met() -> None:
    labels, scores = [0, 0, 0], [0.1, 0.2, 0.3]
    for policy in ("best-f1", "target-recall:0.99"):
        chosen = point(policy, labels, scores)
        assert chosen.threshold == 0.5 and chosen.recall is None and not chosen.met, policy
    limited = point("max-false-reject:0", labels, scores)  # judgeable: nothing above the good parts
    assert limited.threshold == pytest.approx(0.65) and limited.met and limited.false_rejects == 0


def test_no_good_part_in_validation_leaves_the_false_reject_rate_unknown() -> None:
    chosen = point("max-false-reject:0.01", [1, 1], [0.4, 0.9])
    assert chosen.false_reject_rate is None and not chosen.met
    assert chosen.threshold == pytest.approx(m.operating_threshold([1, 1], [0.4, 0.9]))


def test_all_scores_equal() -> None:
    labels, scores = [0, 1, 0, 1], [0.6] * 4
    recall = point("target-recall:0.99", labels, scores)
    assert recall.threshold == 0.6 and recall.recall == 1.0 and recall.false_reject_rate == 1.0
    limit = point("max-false-reject:0.1", labels, scores)  # flagging any means flagging every good part
    assert limit.threshold == pytest.approx(0.8) and limit.recall == 0.0 and limit.met
    certain = point("max-false-reject:0.1", [0, 1], [1.0, 1.0])  # no threshold <= 1 flags nothing
    assert certain.threshold == 1.0 and not certain.met


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.floats(0, 1, allow_nan=False)), min_size=2, max_size=40),
    st.floats(0.05, 1.0),
)
def test_targets_are_met_whenever_the_split_can_judge_them(
    pairs: list[tuple[bool, float]], target: float
) -> None:
    labels = np.array([p[0] for p in pairs])
    scores = np.array([p[1] for p in pairs])
    recall = m.choose_operating_point(labels, scores, m.ThresholdPolicy("target-recall", target))
    if labels.any():
        assert recall.met and recall.recall is not None and recall.recall >= target - 1e-9
    limit = m.choose_operating_point(labels, scores, m.ThresholdPolicy("max-false-reject", 1 - target))
    if (~labels).any() and limit.met:
        assert limit.false_reject_rate is not None and limit.false_reject_rate <= 1 - target + 1e-9
    assert 0.0 <= recall.threshold <= 1.0 and 0.0 <= limit.threshold <= 1.0


def test_the_manifest_carries_the_operating_point_and_leaves_it_out_when_absent() -> None:
    chosen = point("target-recall:0.99")
    with_point = manifest().model_copy(update={"operating_point": chosen})
    raw = json.loads(with_point.to_json_bytes())
    assert raw["operating_point"]["policy"] == "target-recall:0.99"
    assert raw["operating_point"]["false_reject_rate"] == pytest.approx(0.2)
    assert Manifest.from_json_bytes(with_point.to_json_bytes()).operating_point == chosen
    assert "operating_point" not in json.loads(manifest().to_json_bytes())  # older devices read it


def test_a_confusion_reports_the_false_reject_rate() -> None:
    table = m.confusion(LABELS, SCORES, 0.4)
    assert table.false_reject_rate == pytest.approx(1 / 5)
    assert table.as_dict()["false_reject_rate"] == pytest.approx(0.2)
    assert np.isnan(m.confusion([1, 1], [0.5, 0.6], 0.4).false_reject_rate)


def test_neighbouring_scores_keep_the_lower_one_unflagged() -> None:
    """Halfway between 0.0 and the smallest subnormal rounds to 0.0, which would flag both parts."""
    tiny = 5e-324
    limit = m.choose_operating_point(
        np.array([False, False]), np.array([0.0, tiny]), m.ThresholdPolicy("max-false-reject", 0.5)
    )
    assert limit.threshold == tiny and limit.false_reject_rate == 0.5 and limit.met
    assert m.operating_threshold([False, True], [0.0, tiny]) == tiny
