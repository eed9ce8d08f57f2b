"""The multi-task model through the pipeline and into the real agent: one package, two outputs, one call.

Quick profile, one epoch, tiny synthetic data (the figures are not the point), with four mirrored
views in one graph (``views=hv``, as the default recipe ships): data -> train ->
evaluate -> gate -> compile (fp32 + int8, parity gates on both outputs) -> package, signed with the
key the agent trusts; then the agent loads the package, and one Predict returns both outputs, equal
to the package's golden outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from edgeinspect.core.package import load_golden, unpack_package
from edgeinspect_cloud.cli import main
from edgeinspect_cloud.data.synth import write_dataset

from tests.fixtures.agent import AgentServer

pytestmark = pytest.mark.slow


def test_a_multitask_package_declares_both_outputs_and_the_agent_answers_both_in_one_call(
    agent_server: AgentServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = tmp_path / "line"
    write_dataset(dataset, count=30, defect_ratio=0.4, seed=5, height=128, width=48)
    run = tmp_path / "run"
    key = agent_server.workdir / "keys" / "private" / "test.key"
    args = ["pipeline", "run", "--dataset", str(dataset), "--task", "multitask", "--quick", "--epochs", "1"]
    args += ["--arch", "baseline,views=hv"]
    args += ["--no-progress", "--gate-min-ap", "0", "--gate-min-recall", "0", "--gate-min-dice", "0"]
    # one epoch leaves scores on the threshold, where int8 flips shifted verdicts: keep int8 in the package
    args += ["--int8-min-shift-agreement", "0"]
    args += ["--key", str(key), "--out", str(run), "--steps", "data,train,evaluate,gate,compile,package"]
    assert main(args) == 0
    capsys.readouterr()

    evaluated = json.loads((run / "evaluate" / "multitask" / "metrics.json").read_text())["metrics"]
    assert {"image_ap", "dice", "pixel_ap", "mask_image_ap", "mask_recall"} <= set(evaluated)
    compiled = json.loads((run / "compile" / "multitask" / "compile.json").read_text())
    assert compiled["outputs"] == ["defect_probability", "mask_probability"]
    for gate in ("export_parity", "mask_export_parity", "int8_parity", "mask_int8_parity"):
        assert compiled[gate]["passed"], gate
    assert {"image_ap", "dice", "mask_image_ap"} <= set(compiled["int8"]["metrics"])

    (tar,) = sorted((run / "package" / "multitask").glob("defect-mt-*.tar.gz"))
    folder, manifest = unpack_package(tar, tmp_path / "unpacked", agent_server.keys.public_keys())
    assert manifest.task == "multitask"
    assert [(o.name, o.meaning) for o in manifest.outputs] == [
        ("defect_probability", "defect_probability"),
        ("mask_probability", "mask_probability"),
    ]
    assert manifest.has_int8 and manifest.thresholds.pixel is not None
    assert manifest.default_variant == "int8" and manifest.precision is not None
    assert [gate.set for gate in manifest.precision.gates] == ["validation", "shifted"]
    assert {"dice", "mask_image_ap", "mask_int8_parity_pixel_agreement"} <= set(manifest.metrics)

    client = agent_server.client()
    info = client.load_version(str(tar))
    client.set_alias("defect-mt", info.name, info.version)
    golden_input, golden_outputs = load_golden(folder, manifest)
    answer = client.predict("defect-mt", {manifest.input.name: golden_input}, "golden")
    assert set(answer.outputs) == {"defect_probability", "mask_probability"}
    assert answer.outputs["mask_probability"].shape == (1, 1, 128, 48)
    for name, expected in golden_outputs.items():
        np.testing.assert_allclose(answer.outputs[name], expected, atol=0.3)  # agent may run the int8 one
    assert info.manifest().task == "multitask"
