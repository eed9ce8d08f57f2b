"""Through the real agent: alias swaps under a stream of concurrent predictions fail nothing, and a
shadow version's agreement is measured while the primary alone answers."""

from __future__ import annotations

import threading
from collections import Counter

import numpy as np
from edgeinspect.core.agent_client import AgentClient
from edgeinspect.core.lifecycle import wait_until

from tests.fixtures.agent import AgentServer
from tests.helpers.models import classifier_onnx, image, run_onnx

SPLIT = 115  # v1 (knob 0) says ok, v2 (knob 2) says defect
PIXELS = image(level=SPLIT)


def _load_two_versions(agent: AgentClient, server: AgentServer) -> None:
    agent.load_version(str(server.package("cls", "1")))
    agent.load_version(str(server.package("cls", "2", knob=2)))
    agent.set_alias("defect-cls", "cls", "1")


def test_hot_swap_during_concurrent_predictions_fails_no_request(agent_server: AgentServer) -> None:
    admin = agent_server.client()
    _load_two_versions(admin, agent_server)
    expected = {
        v: run_onnx(classifier_onnx(knob=k), PIXELS)["defect_probability"] for v, k in (("1", 0), ("2", 2))
    }
    stop = threading.Event()
    seen: Counter[str] = Counter()
    failures: list[BaseException] = []

    def stream(client: AgentClient) -> None:
        while not stop.is_set():
            try:
                result = client.predict("defect-cls", {"image": PIXELS}, frame_id="swap")
                np.testing.assert_allclose(
                    result.outputs["defect_probability"], expected[result.version], rtol=1e-6
                )
                seen[result.version] += 1
            except BaseException as exc:  # report every failure, not just the first
                failures.append(exc)

    threads = [threading.Thread(target=stream, args=(agent_server.client(),)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for swap in range(20):
        admin.set_alias("defect-cls", "cls", "2" if swap % 2 == 0 else "1")
        target = sum(seen.values()) + 4
        assert wait_until(lambda target=target: sum(seen.values()) >= target or bool(failures), timeout=20)  # type: ignore[misc]
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []
    assert seen["1"] > 0 and seen["2"] > 0
    served = {s.version: s for s in admin.stats("cls")}
    assert served["1"].requests + served["2"].requests == sum(seen.values())
    assert served["1"].errors == served["2"].errors == 0


def test_shadow_outputs_and_agreement_come_back_but_never_decide(agent_server: AgentServer) -> None:
    agent = agent_server.client()
    _load_two_versions(agent, agent_server)
    alias = agent.set_shadow("defect-cls", "2")
    assert (alias.version, alias.shadow_version) == ("1", "2")
    for level in (20, 235, SPLIT, SPLIT):
        result = agent.predict("defect-cls", {"image": image(level=level)}, wait_shadow=True)
        assert (result.version, result.role) == ("1", "primary")
        assert result.shadow is not None and result.shadow.version == "2"
    shadow = result.shadow
    assert shadow is not None
    assert result.outputs["defect_probability"][0, 0] < 0.5 < shadow.outputs["defect_probability"][0, 0]
    shadow_stats = {s.version: s for s in agent.stats("cls")}["2"]
    assert (shadow_stats.shadow_compared, shadow_stats.shadow_agreed) == (4, 2)
    assert shadow_stats.shadow_agreement_rate == 0.5
    assert shadow_stats.shadow_mean_abs_score_delta > 0

    unwaited = agent.predict("defect-cls", {"image": PIXELS})
    assert unwaited.shadow is None
    assert wait_until(
        lambda: {s.version: s for s in agent.stats("cls")}["2"].shadow_compared == 5, timeout=20
    )
    assert agent.list_aliases()[0].shadow_version == "2"
