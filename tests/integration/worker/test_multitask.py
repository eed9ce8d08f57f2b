"""One model, one call, both verdicts: a multi-task package through the real agent and the real worker."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from edgeinspect.core import images
from edgeinspect.core.messages import Result
from edgeinspect_inference.worker.service import WorkerService

from tests.integration.worker.conftest import FRAME_SIZE, PATCH, LineKit, frame_pixels

ByFrame = Callable[[list[Result]], dict[str, Result]]


def calls(service: WorkerService, alias: str) -> float:
    """Predict calls the worker made for ``alias`` (its round-trip histogram's count)."""
    value = service.metrics.registry.get_sample_value(
        "ei_worker_agent_round_trip_seconds_count", {"alias": alias}
    )
    return value or 0.0


def test_a_multitask_model_gives_both_verdicts_and_the_mask_from_one_call_per_frame(
    line: LineKit, by_frame: ByFrame
) -> None:
    line.deploy(cls=False, seg=False, mt=True)
    kinds = {"good": "dark", "bad": "bright", "patch": "patch"}
    with line.worker() as service:
        for frame_id, kind in kinds.items():
            line.send(frame_id, frame_pixels(kind))  # type: ignore[arg-type]
        results = by_frame(line.wait_results(len(kinds)))
        assert calls(service, "defect-mt") == len(kinds)
        assert calls(service, "defect-cls") == calls(service, "defect-seg") == 0
    assert line.pending() == 0
    for frame_id, result in results.items():
        assert result.error == "", frame_id  # the two-model aliases are not missed
        assert [(p.model, p.version, p.task, p.role) for p in result.predictions] == [
            ("mt", "1", "classification", "primary"),
            ("mt", "1", "segmentation", "primary"),
        ]
    assert results["good"].verdict == "ok"
    assert results["good"].mask is None
    assert results["bad"].verdict == "defect"
    assert [p.label for p in results["bad"].predictions] == ["defect", "defect"]
    cls, seg = results["patch"].predictions
    assert (cls.label, seg.label, results["patch"].verdict) == ("ok", "defect", "defect")
    y0, y1, x0, x1 = PATCH
    assert seg.defect_area_px == (y1 - y0) * (x1 - x0)
    assert seg.bbox == (x0, y0, x1, y1)
    assert seg.threshold == 0.5  # the segmentation verdict is "the mask is not empty" (pixel threshold)
    assert results["patch"].mask is not None
    expected = np.zeros((FRAME_SIZE, FRAME_SIZE), dtype=bool)
    expected[y0:y1, x0:x1] = True
    assert np.array_equal(images.decode_mask(results["patch"].mask), expected)


def test_with_both_layouts_deployed_the_multitask_model_judges_alone(
    line: LineKit, by_frame: ByFrame
) -> None:
    line.deploy(mt=True)  # classifier, segmenter AND the multi-task model
    with line.worker(verdict_rule="classification") as service:
        line.send("one-pass", frame_pixels("patch"))
        result = by_frame(line.wait_results(1))["one-pass"]
        assert calls(service, "defect-mt") == 1
        assert calls(service, "defect-cls") == calls(service, "defect-seg") == 0
    assert result.verdict == "ok"  # the classification rule: the image score decides
    assert [(p.model, p.task, p.label) for p in result.predictions] == [
        ("mt", "classification", "ok"),
        ("mt", "segmentation", "defect"),
    ]
    assert result.error == ""
