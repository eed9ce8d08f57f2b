"""Provider tuning through a real agent: the choice and its figures in ListVersions and /metrics,
and a restart on the same box that reuses the cached decision instead of measuring again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from tests.fixtures.agent import AgentServer


def test_the_choice_and_figures_appear_in_list_versions_and_metrics(
    agent_factory: Callable[..., AgentServer], tmp_path: Path
) -> None:
    cache = tmp_path / "tuning-cache"
    settings = {"intra_op_threads": 0, "provider_tuning_runs": 3, "provider_tuning_cache_dir": cache}
    agent = agent_factory(**settings)
    package = agent.package_dir("cls", "1")
    with agent.client() as client:
        client.load_version(str(package))
        (info,) = client.list_versions()
    tuning = info.tuning
    assert tuning is not None and not tuning.cached
    assert tuning.provider == info.execution_provider
    assert tuning.candidates and sum(c.selected for c in tuning.candidates) == 1
    chosen = next(c for c in tuning.candidates if c.selected)
    assert (chosen.provider, chosen.intra_op_threads) == (tuning.provider, tuning.intra_op_threads)
    assert chosen.p50_ms > 0 and chosen.runs == 3 and tuning.p50_ms == chosen.p50_ms
    cpu_threads = sorted(c.intra_op_threads for c in tuning.candidates if c.provider == "cpu")
    assert cpu_threads[0] >= 1 and len(cpu_threads) == len(set(cpu_threads))

    metrics = httpx.get(f"{agent.http_url}/metrics").text
    label = f'model="cls",provider="{tuning.provider}",threads="{chosen.intra_op_threads}",version="1"'
    assert f"ei_agent_provider_selected{{{label}}} 1.0" in metrics
    assert f"ei_agent_provider_latency_ms{{{label}}}" in metrics
    assert "provider_selected" in agent.logs()  # the structured line with every candidate's figures
    agent.stop()

    restarted = agent_factory(**settings, trusted_keys_dir=agent.keys.public_dir)
    with restarted.client() as client:
        again = client.load_version(str(package))
        client.unload_version("cls", "1")
    assert again.tuning is not None and again.tuning.cached
    assert (again.tuning.provider, again.tuning.intra_op_threads) == (
        tuning.provider,
        tuning.intra_op_threads,
    )
    assert "provider_selected" not in restarted.logs()  # nothing was measured
    metrics = httpx.get(f"{restarted.http_url}/metrics").text
    assert "ei_agent_provider_selected{" not in metrics  # unloaded: its series are gone


def test_tuning_off_reports_no_tuning(agent_factory: Callable[..., AgentServer]) -> None:
    agent = agent_factory(provider_tuning="off")
    with agent.client() as client:
        info = client.load_version(str(agent.package_dir("cls", "1")))
        first_available = client.health().execution_providers[0]
    assert info.tuning is None and info.execution_provider == first_available  # the old rule
