"""Model lifecycle seen from the worker: a hot swap under a stream of frames, and a shadow model."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import pytest
from edgeinspect.core.lifecycle import wait_until
from edgeinspect.core.messages import Result

from tests.helpers.models import SLOPE, centre
from tests.integration.worker.conftest import DARK, LineKit, frame_pixels

ByFrame = Callable[[list[Result]], dict[str, Result]]
KNOB_V2 = 2.0


def expected_score(level: int, knob: float) -> float:
    """What the test models answer for a flat frame of ``level`` (see tests.helpers.models)."""
    return 1.0 / (1.0 + math.exp(-SLOPE * (level / 255.0 - centre(knob))))


def test_hot_swap_during_a_stream_loses_no_frame_and_makes_no_error(line: LineKit, by_frame: ByFrame) -> None:
    line.deploy(version="1")
    line.deploy(version="2", knob=KNOB_V2, alias=False)  # loaded and verified before the swap
    agent = line.agent_client()
    total, swap_after = 60, 20
    sent = threading.Event()

    def feed() -> None:
        for i in range(total):
            line.send(f"f{i:03d}", frame_pixels("dark"))
            if i == swap_after:  # swap both aliases while frames are in flight
                wait_until(lambda: len(line.results()) >= swap_after // 2, 30)
                agent.set_alias("defect-cls", "cls", "2")
                agent.set_alias("defect-seg", "seg", "2")
            threading.Event().wait(0.01)
        sent.set()

    with line.worker(pipeline_depth=2):
        feeder = threading.Thread(target=feed)
        feeder.start()
        results = by_frame(line.wait_results(total, timeout=120))
        feeder.join()
    assert sent.is_set()
    assert sorted(results) == [f"f{i:03d}" for i in range(total)]
    assert [r.frame_id for r in results.values() if r.verdict != "ok"] == []
    assert line.pending() == 0
    versions = {p.version for r in results.values() for p in r.predictions}
    assert versions == {"1", "2"}
    for result in results.values():
        for prediction in result.predictions:  # every answer judged with the version that gave it
            knob = KNOB_V2 if prediction.version == "2" else 0.0
            assert prediction.score == pytest.approx(expected_score(DARK, knob), abs=1e-4)
    assert all(p.version == "2" for p in results[f"f{total - 1:03d}"].predictions)


def test_swap_to_a_version_with_another_input_size_reprocesses_instead_of_failing(
    line: LineKit, by_frame: ByFrame
) -> None:
    line.deploy(version="1")  # 64x64 inputs
    agent = line.agent_client()
    for name, task in (("cls", "classification"), ("seg", "segmentation")):
        package = line.agent.package(name, "2", task, height=48, width=40)  # type: ignore[arg-type]
        agent.load_version(str(package))
    with line.worker(catalog_refresh_s=60.0):  # the worker's alias cache stays stale on purpose
        line.send("old", frame_pixels("bright"))
        line.wait_results(1)
        agent.set_alias("defect-cls", "cls", "2")
        agent.set_alias("defect-seg", "seg", "2")
        for i in range(4):
            line.send(f"new-{i}", frame_pixels("bright"))
        results = by_frame(line.wait_results(5))
    assert [r.verdict for r in results.values()] == ["defect"] * 5
    assert {p.version for p in results["old"].predictions} == {"1"}
    for i in range(4):
        assert {p.version for p in results[f"new-{i}"].predictions} == {"2"}
        assert results[f"new-{i}"].predictions[1].defect_area_px == 128 * 128  # mapped back to the frame


def test_shadow_disagreements_land_in_the_capture_stream(line: LineKit, by_frame: ByFrame) -> None:
    line.deploy(version="1")
    line.deploy(cls=True, seg=False, version="2", knob=4.0, alias=False)  # centre 0.3 instead of 0.5
    line.agent_client().set_shadow("defect-cls", "2")
    grey = 100  # 0.39: the primary says ok, the shadow says defect
    assert expected_score(grey, 0.0) < 0.5 < expected_score(grey, 4.0)
    with line.worker(capture_good_fraction=0.0, capture_band=0.01):
        for i in range(3):
            line.send(f"grey-{i}", frame_pixels(grey))
            line.send(f"dark-{i}", frame_pixels("dark"))
        results = by_frame(line.wait_results(6))
    for frame_id, result in results.items():
        shadow = [p for p in result.predictions if p.role == "shadow"]
        assert [(p.model, p.version, p.task) for p in shadow] == [("cls", "2", "classification")], frame_id
        assert result.verdict == "ok"  # the shadow never decides
        assert shadow[0].label == ("defect" if frame_id.startswith("grey") else "ok")
    captured = {c.frame_id: c.reasons for c in line.captures()}
    assert captured == {f"grey-{i}": ["shadow_disagreement"] for i in range(3)}
