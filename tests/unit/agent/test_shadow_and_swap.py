"""Shadows are compared but never decide; alias swaps under concurrent load lose no request."""

from __future__ import annotations

import functools
import threading
from collections import Counter

import numpy as np
import pytest
from edgeinspect.core.lifecycle import wait_until
from edgeinspect_inference.agent.errors import InvalidInputError, ModelNotFoundError
from edgeinspect_inference.agent.table import ModelTable

from tests.helpers.models import centre, image
from tests.unit.agent.conftest import Kit

# knob 0 (v1) crosses 0.5 at mean 0.5, knob 2 (v2) at 0.4: a mean of 115/255 = 0.45 splits them
AGREE_DARK, AGREE_BRIGHT, SPLIT = 20, 235, 115


def _grew(seen: Counter[str], target: int) -> bool:
    return sum(seen.values()) >= target


@pytest.fixture
def shadowed(table: ModelTable, kit: Kit) -> ModelTable:
    table.load(str(kit.folder("cls", "1")))
    table.load(str(kit.folder("cls", "2")))
    table.set_alias("defect-cls", "cls", "1")
    table.set_shadow("defect-cls", "2")
    return table


def test_the_split_level_really_splits_the_versions() -> None:
    assert centre(2) < SPLIT / 255 < centre(0)


def test_shadow_agreement_and_score_delta_are_recorded(shadowed: ModelTable) -> None:
    for level in (AGREE_DARK, AGREE_BRIGHT, SPLIT, SPLIT):
        outcome = shadowed.predict("defect-cls", {"image": image(level=level)}, wait_shadow=True)
        assert outcome.version == "1" and outcome.shadow is not None and outcome.shadow.version == "2"
    rows = {model.version: stats for model, stats in shadowed.stats("cls")}
    assert (rows["2"].shadow_compared, rows["2"].shadow_agreed) == (4, 2)
    assert 0.0 < rows["2"].shadow_mean_abs_score_delta < 1.0
    assert rows["1"].shadow_compared == 0 and rows["1"].requests == 4


def test_the_shadow_never_changes_the_primary_answer(shadowed: ModelTable) -> None:
    pixels = {"image": image(level=SPLIT)}
    outcome = shadowed.predict("defect-cls", pixels, wait_shadow=True)
    assert outcome.shadow is not None
    assert (
        outcome.outputs["defect_probability"][0, 0] < 0.5 < outcome.shadow.outputs["defect_probability"][0, 0]
    )
    assert outcome.role == "primary"


def test_without_waiting_the_shadow_runs_afterwards(shadowed: ModelTable) -> None:
    outcome = shadowed.predict("defect-cls", {"image": image(level=SPLIT)})
    assert outcome.shadow is None
    assert wait_until(lambda: shadowed.stats("cls")[1][1].shadow_compared == 1, timeout=10)


def test_a_shadow_must_be_another_loaded_version_of_the_same_model(shadowed: ModelTable) -> None:
    with pytest.raises(InvalidInputError, match="primary"):
        shadowed.set_shadow("defect-cls", "1")
    with pytest.raises(ModelNotFoundError):
        shadowed.set_shadow("defect-cls", "3")
    with pytest.raises(ModelNotFoundError):
        shadowed.set_shadow("no-alias", "2")


def test_promoting_the_shadow_detaches_it(shadowed: ModelTable) -> None:
    entry = shadowed.set_alias("defect-cls", "cls", "2")
    assert entry.shadow is None
    assert shadowed.set_shadow("defect-cls", "1").shadow is not None
    assert shadowed.set_shadow("defect-cls", "").shadow is None


def test_alias_swaps_under_concurrent_predictions_fail_no_request(table: ModelTable, kit: Kit) -> None:
    table.load(str(kit.folder("cls", "1")))
    table.load(str(kit.folder("cls", "2")))
    table.set_alias("defect-cls", "cls", "1")
    pixels = {"image": image(level=SPLIT)}
    expected = {v: table.predict(f"cls:{v}", pixels).outputs["defect_probability"] for v in ("1", "2")}
    stop = threading.Event()
    seen: Counter[str] = Counter()
    failures: list[BaseException] = []

    def predict_forever() -> None:
        while not stop.is_set():
            try:
                outcome = table.predict("defect-cls", pixels)
                np.testing.assert_array_equal(
                    outcome.outputs["defect_probability"], expected[outcome.version]
                )
                seen[outcome.version] += 1
            except BaseException as exc:  # collect anything, the assertion below reports it
                failures.append(exc)

    threads = [threading.Thread(target=predict_forever) for _ in range(4)]
    for thread in threads:
        thread.start()
    for swap in range(40):
        table.set_alias("defect-cls", "cls", "2" if swap % 2 == 0 else "1")
        assert wait_until(functools.partial(_grew, seen, sum(seen.values()) + 5), timeout=10)
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []
    assert seen["1"] > 0 and seen["2"] > 0
