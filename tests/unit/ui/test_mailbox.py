"""The coalescing mailbox: a slow page gets the newest result, every defect, the latest of the rest."""

from __future__ import annotations

import asyncio
import threading

from edgeinspect_ui.api.schemas import ResultOut, StatusOut
from edgeinspect_ui.feed.mailbox import MAX_PENDING_DEFECTS, Mailbox


def result(i: int, verdict: str = "ok") -> ResultOut:
    return ResultOut(
        id=f"{i}-0",
        line="l",
        frame_id=f"f{i}",
        ts_ns=i,
        verdict=verdict,  # type: ignore[arg-type]
        score=0.1,
        e2e_ms=1.0,
        predictions=[],
        frame_url=f"/api/frames/l/f{i}.png",
    )


async def test_a_burst_of_results_coalesces_to_the_newest() -> None:
    box = Mailbox("l", asyncio.get_running_loop())
    for i in range(50):
        box.offer("result", result(i))
    assert await box.wait(1.0)
    batch, skipped = box.drain()
    assert [(kind, payload.frame_id) for kind, payload in batch] == [("result", "f49")]  # type: ignore[attr-defined]
    assert skipped == 49


async def test_defects_are_all_kept_up_to_a_bound_and_context_comes_first() -> None:
    box = Mailbox("l", asyncio.get_running_loop())
    for i in range(MAX_PENDING_DEFECTS + 5):
        box.offer("defect", result(i, "defect"))
    box.offer("result", result(99))
    box.offer("status", StatusOut(redis="down"))
    box.offer("status", StatusOut(redis="up"))
    batch, _ = box.drain()
    kinds = [kind for kind, _ in batch]
    assert kinds[0] == "status" and batch[0][1] == StatusOut(redis="up")
    assert kinds.count("defect") == MAX_PENDING_DEFECTS and kinds[-1] == "result"


async def test_an_offer_from_another_thread_wakes_the_waiter() -> None:
    box = Mailbox("l", asyncio.get_running_loop())
    assert not await box.wait(0.01)
    thread = threading.Thread(target=box.offer, args=("result", result(1)))
    thread.start()
    assert await box.wait(5.0)
    thread.join()
    batch, _ = box.drain()
    assert len(batch) == 1
    assert box.drain() == ([], 0)
