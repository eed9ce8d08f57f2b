"""Which model file the agent runs: the package's default precision, fp32 fallback, EI_PRECISION forcing.

The test packages' int8 file is the same graph with another knob, so the file that answered is
observable; a fallback is reported on the loaded version, in ``/metrics`` and in the load log.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from edgeinspect.core.errors import PackageError
from edgeinspect.core.package import load_public_keys, unpack_package
from edgeinspect_inference.agent.convert import version_info
from edgeinspect_inference.agent.errors import InvalidInputError
from edgeinspect_inference.agent.loader import LoadOptions, PackageLoader
from edgeinspect_inference.agent.providers import resolve
from edgeinspect_inference.agent.session import available_providers
from edgeinspect_inference.agent.settings import AgentSettings
from edgeinspect_inference.agent.shadow import ShadowRunner
from edgeinspect_inference.agent.stats import AgentMetrics
from edgeinspect_inference.agent.table import ModelTable
from prometheus_client import CollectorRegistry, generate_latest

from tests.helpers.models import TestKeys, image, make_keys, make_package, run_onnx


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> TestKeys:
    return make_keys(tmp_path_factory.mktemp("precision-keys"))


def _table(keys: TestKeys, tmp_path: Path, precision: str = "auto") -> tuple[ModelTable, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = AgentMetrics(registry)
    options = LoadOptions(
        providers=tuple(resolve(["cpu"], available_providers)),
        model_dir=tmp_path / "models",
        trusted_keys_dir=keys.public_dir,
        intra_op_threads=1,
        warmup_runs=1,
        precision=precision,
    )
    return ModelTable(PackageLoader(options, metrics), metrics, ShadowRunner(metrics, 1, 4)), registry


def _score(table: ModelTable, ref: str) -> float:
    outcome = table.predict(ref, {"image": image(level=140, seed=7)})
    return float(next(iter(outcome.outputs.values())).ravel()[0])


def _fp32_score(knob: float = 0.0) -> float:
    from tests.helpers.models import classifier_onnx

    return float(run_onnx(classifier_onnx(knob=knob), image(level=140, seed=7))["defect_probability"][0, 0])


def test_int8_default_package_runs_int8(keys: TestKeys, tmp_path: Path) -> None:
    tar = make_package(tmp_path, "cls", "1", "classification", keys, with_int8=True, precision="int8")
    table, registry = _table(keys, tmp_path)
    model = table.load(str(tar))
    assert model.variant == "int8" and model.variant_fallback == ""
    assert model.sha256 == model.manifest.files["model.int8.onnx"]
    assert _score(table, "cls:1") == pytest.approx(_fp32_score(knob=1), abs=1e-5)
    info = version_info(model)
    assert info.variant == "int8" and info.variant_fallback == ""
    text = generate_latest(registry).decode()
    assert 'ei_agent_model_variant{model="cls",requested="int8",variant="int8",version="1"} 1.0' in text
    table.close()


@pytest.mark.parametrize(
    ("broken", "why"),
    [
        ({"int8_bytes": b"not an onnx model"}, "int8 model cannot run on this box"),
        ({"with_int8": True, "int8_knob": -6.0}, "fails its golden-input check"),
    ],
)
def test_int8_that_cannot_run_here_falls_back_to_fp32_and_says_so(
    keys: TestKeys, tmp_path: Path, broken: dict[str, object], why: str
) -> None:
    tar = make_package(tmp_path, "cls", "2", "classification", keys, precision="int8", **broken)  # type: ignore[arg-type]
    table, registry = _table(keys, tmp_path)
    model = table.load(str(tar))
    assert model.variant == "fp32"
    assert why in model.variant_fallback and "running model.onnx (fp32) instead" in model.variant_fallback
    assert model.sha256 == model.manifest.files["model.onnx"]
    assert _score(table, "cls:2") == pytest.approx(_fp32_score(), abs=1e-5)
    assert why in version_info(model).variant_fallback
    text = generate_latest(registry).decode()
    assert 'ei_agent_model_variant{model="cls",requested="int8",variant="fp32",version="2"} 1.0' in text
    table.unload("cls", "2")
    assert "ei_agent_model_variant{" not in generate_latest(registry).decode()
    table.close()


def test_a_tampered_int8_file_is_refused_not_fallen_back_from(keys: TestKeys, tmp_path: Path) -> None:
    tar = make_package(tmp_path, "cls", "3", "classification", keys, with_int8=True, precision="int8")
    # unpacked (and verified) by the project's own reader: tarfile's `filter=` needs Python >= 3.11.4
    folder, _ = unpack_package(tar, tmp_path / "unpacked", load_public_keys(keys.public_dir))
    (folder / "model.int8.onnx").write_bytes(b"swapped after signing")
    table, _ = _table(keys, tmp_path)
    with pytest.raises(PackageError, match=r"model\.int8\.onnx has sha256"):
        table.load(str(folder))
    assert table.versions() == []
    table.close()


def test_ei_precision_forces_a_file(keys: TestKeys, tmp_path: Path) -> None:
    int8_default = make_package(
        tmp_path, "cls", "4", "classification", keys, with_int8=True, precision="int8"
    )
    legacy_both = make_package(tmp_path, "cls", "5", "classification", keys, with_int8=True)
    fp32_only = make_package(tmp_path, "cls", "6", "classification", keys, precision="fp32")

    forced_fp32, _ = _table(keys, tmp_path / "a", precision="fp32")
    assert forced_fp32.load(str(int8_default)).variant == "fp32"
    forced_fp32.close()

    forced_int8, _ = _table(keys, tmp_path / "b", precision="int8")
    assert forced_int8.load(str(legacy_both)).variant == "int8"  # forced: even where the default is fp32
    with pytest.raises(InvalidInputError, match=r"has no model\.int8\.onnx for EI_PRECISION=int8"):
        forced_int8.load(str(fp32_only))
    assert forced_int8.load(str(fp32_only), variant="fp32").variant == "fp32"  # a named variant wins
    forced_int8.close()

    assert AgentSettings(precision="int8").precision == "int8"
    with pytest.raises(ValueError, match="precision"):
        AgentSettings(precision="int4")  # type: ignore[arg-type]


def test_packages_without_a_precision_record_still_load_fp32(keys: TestKeys, tmp_path: Path) -> None:
    single = make_package(tmp_path, "cls", "7", "classification", keys)
    both = make_package(tmp_path, "cls", "8", "classification", keys, with_int8=True)
    table, _ = _table(keys, tmp_path)
    assert table.load(str(single)).variant == "fp32"
    model = table.load(str(both))
    assert model.variant == "fp32" and model.manifest.precision is None and model.variant_fallback == ""
    assert table.load(str(both), name="asked", variant="int8").variant == "int8"
    assert np.isfinite(_score(table, "cls:7"))
    table.close()
