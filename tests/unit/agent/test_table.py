"""ModelTable without gRPC: loading, naming, aliases, unloading, predictions and their errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from edgeinspect.core.errors import PackageError
from edgeinspect.core.package import MODEL_FILE
from edgeinspect_inference.agent.errors import (
    InvalidInputError,
    ModelExistsError,
    ModelInUseError,
    ModelNotFoundError,
    NotFoundPathError,
    status_name,
)
from edgeinspect_inference.agent.records import PredictCall
from edgeinspect_inference.agent.table import ModelTable

from tests.helpers.models import classifier_onnx, image, make_keys, run_onnx
from tests.unit.agent.conftest import Kit, make_table


def test_loads_a_package_folder_and_reports_what_it_loaded(table: ModelTable, kit: Kit) -> None:
    model = table.load(str(kit.folder("cls", "1")))
    assert (model.name, model.version, model.task, model.variant) == ("cls", "1", "classification", "fp32")
    assert model.session.provider == "cpu"
    assert [(s.name, str(s.dtype), s.shape) for s in model.session.inputs] == [
        ("image", "uint8", (-1, 3, 64, 64))
    ]
    assert model.sha256 == model.manifest.files[MODEL_FILE]
    assert model.load_ms > 0
    assert model.owned_dir is None


def test_loads_a_package_file_by_unpacking_it_into_the_model_dir(
    table: ModelTable, kit: Kit, tmp_path: Path
) -> None:
    model = table.load(str(kit.tar("cls", "10")))
    assert model.owned_dir is not None and model.owned_dir.parent == tmp_path / "models"
    table.unload("cls", "10")
    assert not model.owned_dir.exists()


def test_predictions_equal_onnx_runtime_on_the_same_model(table: ModelTable, kit: Kit) -> None:
    table.load(str(kit.folder("cls", "1")))
    pixels = image(level=150, seed=3)
    outcome = table.predict("cls", {"image": pixels})
    expected = run_onnx(classifier_onnx(knob=0), pixels)
    np.testing.assert_array_equal(outcome.outputs["defect_probability"], expected["defect_probability"])
    assert (outcome.name, outcome.version, outcome.role) == ("cls", "1", "")
    assert outcome.latency_ms > 0


def test_a_bare_name_means_its_newest_version_compared_as_versions(table: ModelTable, kit: Kit) -> None:
    table.load(str(kit.tar("cls", "9")))
    table.load(str(kit.tar("cls", "10")))
    assert table.resolve("cls")[0].version == "10"
    assert table.resolve("cls:9")[0].version == "9"


def test_the_same_version_twice_is_already_exists(table: ModelTable, kit: Kit) -> None:
    table.load(str(kit.folder("cls", "1")))
    with pytest.raises(ModelExistsError) as raised:
        table.load(str(kit.folder("cls", "1")))
    assert status_name(raised.value) == "ALREADY_EXISTS"


def test_an_exclusive_name_refuses_any_loaded_version(table: ModelTable, kit: Kit) -> None:
    table.load(str(kit.folder("cls", "1")), name="line-a", exclusive_name=True)
    with pytest.raises(ModelExistsError, match="line-a"):
        table.load(str(kit.folder("cls", "2")), name="line-a", exclusive_name=True)


@pytest.mark.parametrize("name", ["-bad", "has space", "under_score", "x" * 64])
def test_an_invalid_name_is_invalid_argument(table: ModelTable, kit: Kit, name: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid"):
        table.load(str(kit.folder("cls", "1")), name=name)


def test_a_missing_path_is_not_found(table: ModelTable, tmp_path: Path) -> None:
    with pytest.raises(NotFoundPathError) as raised:
        table.load(str(tmp_path / "nope"))
    assert status_name(raised.value) == "NOT_FOUND"


def test_a_tampered_folder_is_refused_and_nothing_is_loaded(
    table: ModelTable, kit: Kit, tmp_path: Path
) -> None:
    folder = shutil.copytree(kit.folder("cls", "1"), tmp_path / "tampered")
    (folder / MODEL_FILE).write_bytes(classifier_onnx(knob=9))
    with pytest.raises(PackageError, match="sha256") as raised:
        table.load(str(folder))
    assert status_name(raised.value) == "FAILED_PRECONDITION"
    assert table.versions() == []


def test_a_package_signed_by_an_untrusted_key_is_refused(kit: Kit, tmp_path: Path) -> None:
    stranger = make_keys(tmp_path / "stranger")
    table = make_table(stranger.public_dir, tmp_path / "models")
    with pytest.raises(PackageError):
        table.load(str(kit.folder("cls", "1")))
    table.close()


def test_the_int8_variant_loads_the_quantized_model(table: ModelTable, kit: Kit) -> None:
    model = table.load(str(kit.folder("cls", "2")), variant="int8")
    assert model.variant == "int8"
    pixels = image(level=100)
    expected = run_onnx(classifier_onnx(knob=3), pixels)["defect_probability"]
    np.testing.assert_array_equal(
        table.predict("cls", {"image": pixels}).outputs["defect_probability"], expected
    )


def test_asking_for_a_missing_int8_variant_is_invalid_argument(table: ModelTable, kit: Kit) -> None:
    with pytest.raises(InvalidInputError, match=r"no model\.int8\.onnx"):
        table.load(str(kit.folder("cls", "1")), variant="int8")


def test_an_alias_move_changes_which_version_answers(table: ModelTable, kit: Kit) -> None:
    table.load(str(kit.folder("cls", "1")))
    table.load(str(kit.folder("cls", "2")))
    pixels = image(level=115)
    table.set_alias("defect-cls", "cls", "1")
    before = table.predict("defect-cls", {"image": pixels})
    table.set_alias("defect-cls", "cls", "2")
    after = table.predict("defect-cls", {"image": pixels})
    assert (before.version, after.version, after.role) == ("1", "2", "primary")
    assert before.outputs["defect_probability"][0, 0] < 0.5 < after.outputs["defect_probability"][0, 0]


def test_a_version_an_alias_uses_cannot_be_unloaded(table: ModelTable, kit: Kit) -> None:
    table.load(str(kit.folder("cls", "1")))
    table.set_alias("defect-cls", "cls", "1")
    with pytest.raises(ModelInUseError, match="defect-cls") as raised:
        table.unload("cls", "1")
    assert status_name(raised.value) == "FAILED_PRECONDITION"


def test_an_unloaded_model_is_not_found(table: ModelTable, kit: Kit) -> None:
    table.load(str(kit.folder("cls", "1")))
    table.unload("cls")
    with pytest.raises(ModelNotFoundError, match="'cls'"):
        table.predict("cls", {"image": image()})
    with pytest.raises(ModelNotFoundError):
        table.unload("cls")


def test_an_alias_to_a_version_not_loaded_is_not_found(table: ModelTable) -> None:
    with pytest.raises(ModelNotFoundError, match="cls:7"):
        table.set_alias("defect-cls", "cls", "7")


def test_an_alias_cannot_take_another_models_name(table: ModelTable, kit: Kit) -> None:
    table.load(str(kit.folder("cls", "1")))
    table.load(str(kit.folder("seg", "1")))
    with pytest.raises(InvalidInputError, match="another loaded model"):
        table.set_alias("seg", "cls", "1")


def test_an_alias_named_after_its_model_pins_the_version_not_the_newest(table: ModelTable, kit: Kit) -> None:
    table.load(str(kit.folder("cls", "1")))
    table.set_alias("cls", "cls", "1")
    table.load(str(kit.folder("cls", "2")))  # newer, still being smoke-tested: must not answer yet
    assert table.predict("cls", {"image": image(level=115)}).version == "1"
    table.set_alias("cls", "cls", "2")
    assert table.predict("cls", {"image": image(level=115)}).version == "2"


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"image": image().astype(np.float32)}, "expected dtype uint8, got float32"),
        ({"image": image(32, 32)}, r"expected shape \[-1, 3, 64, 64\] \(-1: any\), got \[1, 3, 32, 32\]"),
        ({"image": image()[0]}, r"got \[3, 64, 64\]"),
        ({"pixels": image()}, r"expected input tensors \['image'\], got \['pixels'\]"),
        ({"image": image(), "extra": image()}, r"got \['extra', 'image'\]"),
    ],
)
def test_bad_inputs_say_what_was_expected(
    table: ModelTable, kit: Kit, inputs: dict[str, np.ndarray], message: str
) -> None:
    table.load(str(kit.folder("cls", "1")))
    with pytest.raises(InvalidInputError, match=message) as raised:
        table.predict("cls", inputs)
    assert status_name(raised.value) == "INVALID_ARGUMENT"
    assert "cls:1" in raised.value.message
    stats = table.stats("cls")[0][1]
    assert (stats.requests, stats.errors) == (1, 1)


def test_a_batch_for_one_version_runs_stacked_and_splits_back_in_order(table: ModelTable, kit: Kit) -> None:
    table.load(str(kit.folder("cls", "1")))
    table.load(str(kit.folder("seg", "1")))
    levels = [20, 235, 128]
    calls = [PredictCall("cls", {"image": image(level=level)}) for level in levels]
    calls.insert(1, PredictCall("seg", {"image": image(32, 96, level=235)}))
    outcomes = table.predict_batch(calls)
    assert [o.name for o in outcomes] == ["cls", "seg", "cls", "cls"]
    singles = [
        table.predict("cls", {"image": image(level=level)}).outputs["defect_probability"] for level in levels
    ]
    stacked = [o.outputs["defect_probability"] for o in outcomes if o.name == "cls"]
    for one, many in zip(singles, stacked, strict=True):
        np.testing.assert_array_equal(one, many)
    assert outcomes[1].outputs["mask_probability"].shape == (1, 1, 32, 96)
    assert table.stats("cls")[0][1].requests == 1 + len(levels)  # one stacked run, then the singles


def test_a_bad_batch_element_names_its_index(table: ModelTable, kit: Kit) -> None:
    table.load(str(kit.folder("cls", "1")))
    calls = [PredictCall("cls", {"image": image()}), PredictCall("cls", {"image": image(8, 8)})]
    with pytest.raises(InvalidInputError, match="request 1"):
        table.predict_batch(calls)
    with pytest.raises(ModelNotFoundError, match="request 0"):
        table.predict_batch([PredictCall("nope", {"image": image()})])


def test_the_segmenter_gives_a_per_pixel_mask(table: ModelTable, kit: Kit) -> None:
    table.load(str(kit.folder("seg", "1")))
    pixels = image(32, 96, level=20)
    pixels[:, :, 4:8, 10:20] = 250
    mask = table.predict("seg", {"image": pixels}).outputs["mask_probability"]
    assert mask.shape == (1, 1, 32, 96)
    defect = mask[0, 0] >= 0.5
    assert defect[4:8, 10:20].all() and defect.sum() == 4 * 10
