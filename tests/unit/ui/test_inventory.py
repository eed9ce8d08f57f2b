"""The model table's join of versions, aliases, latency and jobs (the agent's own records as input)."""

from __future__ import annotations

from edgeinspect.core.agent_client import AliasInfo, ModelStats, ModelVersionInfo
from edgeinspect.core.messages import Event
from edgeinspect_ui.feed.inventory import ModelInventory, build_rows
from edgeinspect_ui.feed.jobs import JobBoard


def version(name: str, ver: str) -> ModelVersionInfo:
    return ModelVersionInfo(
        name=name, version=ver, sha256=f"{ver * 8}abcdef0123456789", task="classification",
        execution_provider="CPUExecutionProvider", inputs=(), outputs=(), load_ms=1.0, memory_bytes=1,
        loaded_at_ns=123, path="/m", manifest_json="{}", variant="fp32",
    )  # fmt: skip


def stats(name: str, ver: str, requests: int) -> ModelStats:
    return ModelStats(name, ver, requests, 0, 2.5, 9.0, 0, 0, 0, 0.0)


def test_primary_shadow_and_merely_loaded_versions() -> None:
    aliases = [AliasInfo("defect-cls", "cls", "7", "8", 1), AliasInfo("cls-canary", "cls", "7", "", 1)]
    rows = build_rows(
        [version("cls", "6"), version("cls", "8"), version("cls", "7")],
        aliases,
        [stats("cls", "7", 10), stats("cls", "8", 0)],
    )
    assert [(r.version, r.role, r.aliases) for r in rows] == [
        ("7", "primary", ["defect-cls", "cls-canary"]),
        ("8", "shadow", ["defect-cls"]),
        ("6", "loaded", []),
    ]
    assert (rows[0].p50_ms, rows[0].p99_ms) == (2.5, 9.0)
    assert rows[1].p50_ms is None, "no latency before the first request"
    assert rows[0].sha256_short == "77777777abcd"


def test_jobs_attach_to_the_version_they_deployed() -> None:
    board = JobBoard()
    board.update(Event.new("job_status", "mm", job_id="j1", status="SUCCEEDED", model="cls", version="7"))
    board.update(Event.new("job_status", "mm", job_id="j2", status="FAILED", model="cls", version="9"))
    rows = build_rows([version("cls", "7")], [AliasInfo("a", "cls", "7", "", 1)], [], board.for_version)
    assert rows[0].last_job is not None and rows[0].last_job.job_id == "j1"
    last = board.last()
    assert last is not None and last.job_id == "j2"


def test_device_state_and_model_events_ask_for_a_refresh() -> None:
    board = JobBoard()
    assert board.update(Event.new("device_state", "mm", state="updating"))
    assert board.device_state() == "updating"
    assert board.update(Event.new("model_loaded", "agent", name="cls"))
    assert not board.update(Event.new("frame_dropped", "camera"))


def test_without_an_agent_address_the_table_says_so() -> None:
    table = ModelInventory(None, JobBoard()).snapshot()
    assert table.agent == "not_configured" and table.models == [] and "EI_AGENT_ADDR" in table.message


def test_each_line_shows_the_thresholds_its_verdicts_use() -> None:
    from dataclasses import replace

    from edgeinspect.core.thresholds import Override, OverrideTable

    from tests.helpers.manifests import manifest

    seg = replace(
        version("seg", "3"),
        task="segmentation",
        manifest_json=manifest("segmentation", name="seg", version="3", image=0.5, pixel=0.4)
        .to_json_bytes()
        .decode(),
    )
    override = Override(pixel=0.6, set_by="ana", set_at=1_700_000_000.0, reason="thin cracks")
    lines = {"line-1": OverrideTable({"seg:3": override}), "line-2": OverrideTable()}
    (row,) = build_rows([seg], [AliasInfo("defect-seg", "seg", "3", "", 1)], [], overrides=lines)
    one, two = row.thresholds["line-1"], row.thresholds["line-2"]
    assert (one.image, one.pixel, one.manifest_pixel, one.overridden, one.source) == (
        0.5,
        0.6,
        0.4,
        True,
        "job",
    )
    assert (one.set_by, one.reason) == ("ana", "thin cracks")
    assert (two.pixel, two.overridden, two.source, two.set_by) == (0.4, False, "manifest", "")
    unreadable = build_rows([version("cls", "1")], [], [], overrides=lines)[0]
    assert unreadable.thresholds == {}, "a manifest the UI cannot read shows no threshold, not an error"
