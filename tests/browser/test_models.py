"""The model table against the real edge agent: a swap, a shadow, latency, the last deployment job,
a line's threshold override, and an agent with nothing loaded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from edgeinspect.core import names
from edgeinspect.core.streams import Streams
from edgeinspect.core.thresholds import Override, OverrideTable
from edgeinspect_inference.worker.overrides import ThresholdOverrides

from tests.fixtures.agent import AgentServer
from tests.fixtures.browser import ARTIFACTS
from tests.fixtures.redis_server import RedisServer
from tests.helpers.models import image
from tests.integration.ui.support import job_event, serve_ui

pytestmark = pytest.mark.browser
WAIT_MS = 15_000


def row(name: str, version: str, role: str) -> str:
    return f"#models-body tr[data-model='{name}'][data-version='{version}'][data-role='{role}']"


def test_the_model_table_follows_a_swap(
    agent_server: AgentServer, redis_server: RedisServer, page: Any, line_id: str
) -> None:
    agent = agent_server.client()
    agent.load_version(str(agent_server.package("cls", "1")))
    agent.load_version(str(agent_server.package("cls", "2", knob=2)))
    agent.set_alias("defect-cls", "cls", "1")
    agent.set_shadow("defect-cls", "2")
    for _ in range(5):
        agent.predict("defect-cls", {"image": image()}, frame_id="warm")
    streams = Streams.from_url(redis_server.url)
    settings = {
        "redis_url": redis_server.url,
        "ui_lines": line_id,
        "line": line_id,
        "ui_models_refresh_s": 0.5,
    }
    with serve_ui(agent_addr=agent_server.addr, **settings) as ui:
        page.goto(f"{ui.url}/?line={line_id}")
        page.wait_for_selector(row("cls", "1", "primary"), timeout=WAIT_MS)
        page.wait_for_selector(row("cls", "2", "shadow"), timeout=WAIT_MS)
        v1 = next(v for v in agent.list_versions() if v.version == "1")
        cells = page.eval_on_selector_all(
            f"{row('cls', '1', 'primary')} td", "tds => tds.map(t => t.textContent)"
        )
        name, alias, version, role, ident, provider, _loaded, latency, threshold, _job = cells
        assert (name, alias, version, role) == ("cls", "defect-cls", "1", "primary")
        assert ident == v1.sha256[:12] and provider == v1.execution_provider
        assert latency.endswith(" ms"), "p50 / p99 of a model that has served requests"
        assert threshold == "0.500", "the package's own threshold, not overridden"

        agent.set_shadow("defect-cls", "")
        agent.set_alias("defect-cls", "cls", "2")
        job_event(streams, f"job-{line_id}", "SUCCEEDED", "cls", "2")
        page.wait_for_selector(row("cls", "2", "primary"), timeout=WAIT_MS)
        page.wait_for_selector(row("cls", "1", "loaded"), timeout=WAIT_MS)
        page.wait_for_function(
            f'() => document.querySelector("{row("cls", "2", "primary")}").textContent'
            f".includes('job-{line_id}: SUCCEEDED')",
            timeout=WAIT_MS,
        )
        assert f"job-{line_id}" in page.inner_text("#models-msg")
        page.screenshot(path=str(ARTIFACTS / "model_swap.png"))
    streams.close()


def test_an_agent_with_no_model_says_so(
    agent_server: AgentServer, redis_server: RedisServer, page: Any, line_id: str
) -> None:
    with serve_ui(agent_addr=agent_server.addr, redis_url=redis_server.url, ui_lines=line_id) as ui:
        page.goto(f"{ui.url}/?line={line_id}")
        page.wait_for_selector("#models[data-agent='ok']", timeout=WAIT_MS)
        assert page.inner_text("#models-body") == "No model loaded"


@pytest.fixture
def device_table(redis_client: Any) -> Iterator[None]:
    """The device-wide ``ei:thresholds`` lives in the session's shared Redis: removed after the test,
    so no other test's model table inherits these overrides."""
    yield
    redis_client.delete(names.threshold_overrides_key())


def test_the_line_page_shows_an_overridden_threshold(
    agent_server: AgentServer,
    redis_server: RedisServer,
    redis_client: Any,
    page: Any,
    line_id: str,
    device_table: None,
) -> None:
    agent = agent_server.client()
    agent.load_version(str(agent_server.package("cls", "1")))
    agent.set_alias("defect-cls", "cls", "1")
    override = Override(image=0.3, set_by="ana", set_at=1_700_000_000.0, reason="escapes of thin cracks")
    device = OverrideTable({"cls": override})
    redis_client.set(names.threshold_overrides_key(), device.to_bytes())  # as the model manager writes it
    other = f"{line_id}-b"
    worker = ThresholdOverrides(redis_client, line_id, refresh_s=60)
    worker.refresh()  # the line's worker publishes what it applies
    settings = {"redis_url": redis_server.url, "ui_lines": f"{line_id},{other}", "ui_models_refresh_s": 0.3}
    cell = f"{row('cls', '1', 'primary')} td:nth-child(9)"
    with serve_ui(agent_addr=agent_server.addr, **settings) as ui:
        page.goto(f"{ui.url}/?line={line_id}")
        page.wait_for_selector(f"{cell}[data-overridden='true']", timeout=WAIT_MS)
        assert page.inner_text(cell) == "0.300 line override (package 0.500)"
        title = page.get_attribute(cell, "title") or ""
        assert "set by ana" in title and "escapes of thin cracks" in title
        page.screenshot(path=str(ARTIFACTS / "threshold_override.png"))

        redis_client.set(names.threshold_overrides_key(), OverrideTable().to_bytes())  # a clearing job
        worker.refresh()
        page.wait_for_selector(f"{cell}[data-overridden='false']", timeout=WAIT_MS)
        assert page.inner_text(cell) == "0.500"

        page.select_option("#line-select", other)  # no worker wrote for it: the device's jobs table
        redis_client.set(names.threshold_overrides_key(), device.to_bytes())
        page.wait_for_selector(f"{cell}[data-overridden='true']", timeout=WAIT_MS)
        assert page.inner_text(cell).startswith("0.300")
