"""The agent-check step against the real edge agent, with tiny packages (``tests.helpers.models``).

Each test lays out a run folder as the package step leaves it (``package/{task}/`` with the signed
``.tar.gz`` and ``check.json``) and runs only ``agent-check``, which starts ``edgeinspect-agent`` on a
private socket, loads the package, smoke-tests it and stops the agent again. ``register`` then
accepts only what the agent accepted, on the same model files.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from edgeinspect.core.package import key_id, unpack_package
from edgeinspect_cloud.packaging import check_package
from edgeinspect_cloud.pipeline import GROUPS, PipelineError, PipelineOptions, RunLayout, run_pipeline
from edgeinspect_cloud.pipeline.layout import Task
from edgeinspect_cloud.pipeline.steps_agent import AgentCheckError, passed_agent_check

from tests.helpers.models import TestKeys, make_keys, make_package

KEY_NAME = "pipeline"


def _package_step(run: Path, task: Task, keys: TestKeys, **options: object) -> Path:
    """What the package step leaves: the signed package of version 1 and its check.json."""
    out = RunLayout(run).package_dir(task)
    tar = make_package(out, GROUPS[task], "1", task, keys, height=32, width=32, **options)  # type: ignore[arg-type]
    check = check_package(tar, keys.public_keys()) if not options.get("broken") else None
    RunLayout.write(out / "check.json", check.as_dict() if check else {"name": GROUPS[task], "version": "1"})
    return tar


def _options(run: Path, keys_dir: Path, task: Task) -> PipelineOptions:
    return PipelineOptions(run_dir=run, tasks=[task], key_path=keys_dir / "private" / f"{KEY_NAME}.key")


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_the_agent_loads_the_signed_package_and_answers_its_golden_input(tmp_path: Path, task: Task) -> None:
    keys = make_keys(tmp_path / "keys", KEY_NAME)
    run = tmp_path / "run"
    tar = _package_step(run, task, keys, with_int8=True)
    out = io.StringIO()
    summary = run_pipeline(_options(run, tmp_path / "keys", task), ["agent-check"], out=out)

    layout = RunLayout(run)
    report = json.loads(layout.agent_check_json(task).read_text())
    assert report["passed"] and report["name"] == GROUPS[task] and report["version"] == "1"
    assert report["package"] == tar.name and report["agent"]["execution_providers"][-1] == "cpu"
    fp32, int8 = report["variants"]["fp32"], report["variants"]["int8"]
    assert fp32["loaded"] and fp32["max_abs_diff"] <= 1e-4 and fp32["judged_by"] == "every element"
    assert 0.0 < int8["max_abs_diff"] <= int8["atol"]  # the int8 file (knob + 1) really was the one loaded
    assert report["default"] == {"variant": "fp32", "package_default": "fp32", "reason": None}  # no record
    assert summary["steps"]["agent-check"][task]["passed"]
    assert f"{GROUPS[task]}:1 loaded by the edge agent" in out.getvalue()
    log = layout.agent_check_log(task).read_text()
    assert "agent_started" in log  # the real agent served the check, and stopped cleanly (else it raised)
    folder, _ = unpack_package(tar, tmp_path / "unpacked", keys.public_keys())
    models = {name: folder / name for name in ("model.onnx", "model.int8.onnx")}
    assert passed_agent_check(layout, task, models)["version"] == "1"  # register would accept these files


def test_a_default_load_runs_the_packages_default_precision(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys", KEY_NAME)
    run = tmp_path / "run"
    _package_step(run, "classification", keys, with_int8=True, precision="int8")
    run_pipeline(_options(run, tmp_path / "keys", "classification"), ["agent-check"], out=io.StringIO())
    report = json.loads(RunLayout(run).agent_check_json("classification").read_text())
    assert report["passed"] and report["default"]["variant"] == "int8"


def test_a_package_whose_golden_answer_the_agent_does_not_reproduce_stops_the_run(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys", KEY_NAME)
    run = tmp_path / "run"
    _package_step(run, "classification", keys, broken=True)
    with pytest.raises(
        AgentCheckError, match=r"defect-cls-1\.tar\.gz failed the agent check: smoke test of the fp32"
    ) as caught:
        run_pipeline(_options(run, tmp_path / "keys", "classification"), ["agent-check"], out=io.StringIO())
    assert "differs from the golden output" in str(caught.value) and "will not be registered" in str(
        caught.value
    )
    layout = RunLayout(run)
    report = json.loads(layout.agent_check_json("classification").read_text())
    assert report["passed"] is False and "differs from the golden output" in report["error"]
    with pytest.raises(AgentCheckError, match="will not be registered"):
        passed_agent_check(layout, "classification", {})


def test_a_package_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    signer = make_keys(tmp_path / "other", KEY_NAME)
    trusted = make_keys(tmp_path / "keys", KEY_NAME)
    assert key_id(signer.private_key.public_key()) != key_id(trusted.private_key.public_key())
    run = tmp_path / "run"
    _package_step(run, "classification", signer)
    with pytest.raises(AgentCheckError, match="signature") as caught:
        run_pipeline(_options(run, tmp_path / "keys", "classification"), ["agent-check"], out=io.StringIO())
    assert "agent-check/classification.json" in caught.value.hint


def test_register_needs_a_passed_check_on_the_drafts_own_model_files(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path / "run")
    model = tmp_path / "model.onnx"
    model.write_bytes(b"model")
    with pytest.raises(PipelineError, match="the agent-check step has not run"):
        passed_agent_check(layout, "classification", {"model.onnx": model})
    checked = {"model.onnx": "0" * 64}
    RunLayout.write(layout.agent_check_json("classification"), {"passed": True, "models": checked})
    with pytest.raises(AgentCheckError, match="other model files") as caught:
        passed_agent_check(layout, "classification", {"model.onnx": model})
    assert "--steps agent-check" in caught.value.hint
