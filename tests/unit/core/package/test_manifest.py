"""The manifest schema: strict, versioned, self-consistent, and serialised to stable bytes."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from edgeinspect.core.errors import PackageError
from edgeinspect.core.package import InputSpec, Manifest, Normalisation, OutputSpec, Resize, Thresholds
from pydantic import ValidationError

from tests.unit.core.package.conftest import make_manifest


def _as_json(manifest: Manifest) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(manifest.to_json_bytes())
    return data


def test_serialisation_is_deterministic_sorted_and_round_trips() -> None:
    manifest = make_manifest()
    data = manifest.to_json_bytes()
    assert data == make_manifest().to_json_bytes()
    assert list(json.loads(data)) == sorted(json.loads(data))
    again = Manifest.from_json_bytes(data)
    assert again == manifest
    assert again.to_json_bytes() == data


def test_unknown_schema_version_is_refused() -> None:
    raw = _as_json(make_manifest()) | {"schema_version": 2}
    with pytest.raises(PackageError, match="unsupported manifest schema_version 2"):
        Manifest.from_json_bytes(json.dumps(raw).encode())


def test_unknown_field_is_refused_naming_it() -> None:
    raw = _as_json(make_manifest()) | {"colour_space": "sRGB"}
    with pytest.raises(PackageError, match="colour_space"):
        Manifest.from_json_bytes(json.dumps(raw).encode())


def test_non_json_manifest_is_refused() -> None:
    with pytest.raises(PackageError, match="not valid UTF-8 JSON"):
        Manifest.from_json_bytes(b"\xff{not json")
    with pytest.raises(PackageError, match="must hold a JSON object"):
        Manifest.from_json_bytes(b"[1, 2]")


@pytest.mark.parametrize("name", ["-cls", "cls-", "defect_cls", "a b", "ünïcode", ""])
def test_name_follows_the_load_model_pattern(name: str) -> None:
    with pytest.raises(ValidationError, match="name"):
        make_manifest(name=name)


def test_name_allows_repeated_dashes_like_load_model() -> None:
    assert make_manifest(name="defect--cls-2").name == "defect--cls-2"


def test_bad_version_is_a_validation_error_on_the_version_field() -> None:
    with pytest.raises(ValidationError, match="version"):
        make_manifest(version="1..2")


def test_naive_created_at_is_refused() -> None:
    with pytest.raises(ValidationError, match="created_at"):
        make_manifest(created_at=datetime(2024, 6, 1, 12, 0))


def test_segmentation_needs_a_pixel_threshold() -> None:
    mask = [OutputSpec(name="mask", meaning="mask_probability", shape=[1, 1, 8, 8])]
    with pytest.raises(ValidationError, match=r"thresholds\.pixel"):
        make_manifest(task="segmentation", outputs=mask)
    ok = make_manifest(task="segmentation", outputs=mask, thresholds=Thresholds(image=0.5, pixel=0.4))
    assert ok.thresholds.pixel == 0.4


@pytest.mark.parametrize("task", ["multitask", "anomaly"])
def test_two_output_tasks_declare_the_image_score_first_then_the_mask_and_a_pixel_threshold(
    task: str,
) -> None:
    score = OutputSpec(name="defect_probability", meaning="defect_probability", shape=[1, 1])
    mask = OutputSpec(name="mask_probability", meaning="mask_probability", shape=[1, 1, 8, 8])
    both = Thresholds(image=0.5, pixel=0.4)
    ok = make_manifest(task=task, outputs=[score, mask], thresholds=both)
    assert [o.name for o in ok.outputs] == ["defect_probability", "mask_probability"]
    with pytest.raises(ValidationError, match=r"thresholds\.pixel"):
        make_manifest(task=task, outputs=[score, mask], thresholds=Thresholds(image=0.5))
    for outputs in ([mask, score], [score], [score, mask, mask.model_copy(update={"name": "m2"})]):
        with pytest.raises(ValidationError, match="image-score output"):
            make_manifest(task=task, outputs=outputs, thresholds=both)


def test_files_must_not_list_the_manifest_or_signature_or_escape() -> None:
    with pytest.raises(ValidationError, match="cannot hash themselves"):
        make_manifest(files={"manifest.json": "0" * 64})
    with pytest.raises(ValidationError, match="plain relative path"):
        make_manifest(files={"../model.onnx": "0" * 64})
    with pytest.raises(ValidationError, match="files"):
        make_manifest(files={"model.onnx": "not-a-hash"})


def _input(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "name": "image",
        "shape": [1, 3, 8, 8],
        "dtype": "float32",
        "colour": "RGB",
        "resize": Resize(height=8, width=8, mode="stretch"),
        "normalisation": Normalisation(mean=[0.5], std=[0.5]),
    }
    return fields | overrides


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"shape": [1, 1, 8, 8]}, "channels"),
        ({"shape": [1, 3, 16, 8]}, "differs from resize"),
        ({"shape": [1, 3, 8]}, "shape"),
        ({"normalisation_in_graph": True}, "requires dtype uint8"),
        ({"normalisation": Normalisation(mean=[0.1, 0.2], std=[1.0, 1.0])}, "1 or 3 values"),
        ({"colour": "YUV"}, "colour"),
    ],
)
def test_input_spec_is_self_consistent(overrides: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        InputSpec.model_validate(_input(**overrides))


def test_input_spec_allows_dynamic_dimensions_and_gray() -> None:
    spec = InputSpec.model_validate(_input(shape=[-1, 1, -1, -1], colour="GRAY"))
    assert spec.channels == 1


def test_normalisation_rejects_zero_std_and_mismatched_lengths() -> None:
    with pytest.raises(ValidationError, match="std must not contain 0"):
        Normalisation(mean=[0.5], std=[0.0])
    with pytest.raises(ValidationError, match="mean has 2 values but std has 1"):
        Normalisation(mean=[0.5, 0.5], std=[1.0])


def test_duplicate_output_names_are_refused() -> None:
    outputs = [OutputSpec(name="score", meaning="defect_probability", shape=[1])] * 2
    with pytest.raises(ValidationError, match="unique"):
        make_manifest(outputs=outputs)


def test_helpers_name_the_package_and_find_outputs() -> None:
    manifest = make_manifest(version="1.10")
    assert manifest.package_filename == "defect-cls-1.10.tar.gz"
    assert manifest.output("score").meaning == "defect_probability"
    assert not manifest.has_int8
    with pytest.raises(KeyError):
        manifest.output("nope")
