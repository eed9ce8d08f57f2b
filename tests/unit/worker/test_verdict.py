"""The verdict rule: either model, or the classifier alone; shadows never decide."""

from __future__ import annotations

from typing import Literal

from edgeinspect.core.messages import Prediction
from edgeinspect_inference.worker.verdict import decide, shadow_disagreements


def pred(
    task: Literal["classification", "segmentation"],
    label: Literal["ok", "defect"],
    score: float,
    role: Literal["primary", "shadow"] = "primary",
) -> Prediction:
    return Prediction("m", "1", task, label, score, 0.5, 1.0, role=role)


def test_any_rule_flags_a_defect_either_model_sees() -> None:
    preds = [pred("classification", "ok", 0.2), pred("segmentation", "defect", 0.9)]
    assert decide(preds, "any") == ("defect", 0.9)


def test_classification_rule_ignores_the_segmenter() -> None:
    preds = [pred("classification", "ok", 0.2), pred("segmentation", "defect", 0.9)]
    assert decide(preds, "classification") == ("ok", 0.2)


def test_classification_rule_falls_back_to_the_segmenter_when_no_classifier_is_loaded() -> None:
    assert decide([pred("segmentation", "defect", 0.7)], "classification") == ("defect", 0.7)


def test_shadow_never_decides() -> None:
    preds = [pred("classification", "ok", 0.1), pred("classification", "defect", 0.99, "shadow")]
    assert decide(preds, "any") == ("ok", 0.1)
    assert decide([pred("classification", "defect", 0.99, "shadow")], "any") == ("error", 0.0)


def test_no_prediction_is_an_error() -> None:
    assert decide([], "any") == ("error", 0.0)


def test_shadow_disagreement_pairs_by_task() -> None:
    primary = pred("classification", "ok", 0.1)
    agreeing = pred("segmentation", "ok", 0.2, "shadow")
    disagreeing = pred("classification", "defect", 0.8, "shadow")
    preds = [primary, pred("segmentation", "ok", 0.1), agreeing, disagreeing]
    assert shadow_disagreements(preds) == [(primary, disagreeing)]
