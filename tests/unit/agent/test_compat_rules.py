"""The compat rules stock SageMaker Edge clients rely on: shapes with -1, float pixels, reported metadata."""

from __future__ import annotations

import numpy as np
import pytest
from edgeinspect.core.agentapi import sm_pb2
from edgeinspect.core.attachments import check_name, pack, safe_name, unpack
from edgeinspect.core.errors import MessageError
from edgeinspect.core.messages import Capture
from edgeinspect_inference.agent.capture import AuxiliaryData, CaptureRequest, attachment_files
from edgeinspect_inference.agent.compat import (
    float_pixels_to_uint8,
    reported_dtype,
    reported_shape,
    resolve_shapes,
)
from edgeinspect_inference.agent.errors import InvalidInputError, clip, describe
from edgeinspect_inference.agent.session import TensorSpec
from edgeinspect_uploader.record import capture_files

from tests.helpers.models import manifest_for

IMAGE = TensorSpec("image", np.dtype(np.uint8), (-1, 3, 64, 64))


def _tensor(shape: list[int], nbytes: int, data_type: int = sm_pb2.FLOAT32) -> sm_pb2.Tensor:
    metadata = sm_pb2.TensorMetadata(name=b"image", data_type=data_type, shape=shape)
    return sm_pb2.Tensor(tensor_metadata=metadata, byte_data=bytes(nbytes))


@pytest.mark.parametrize(
    ("shape", "nbytes", "expected"),
    [
        ([-1, 3, 64, 64], 2 * 3 * 64 * 64 * 4, [2, 3, 64, 64]),
        ([1, 3, -1, -1], 3 * 64 * 64 * 4, [1, 3, 64, 64]),  # -1 where the model is fixed: its size
        ([-1, -1, -1, -1], 3 * 3 * 64 * 64 * 4, [3, 3, 64, 64]),
        ([1, 3, 64, 64], 5, [1, 3, 64, 64]),  # nothing to resolve: left for validation
    ],
)
def test_a_minus_one_is_resolved_from_the_byte_length(
    shape: list[int], nbytes: int, expected: list[int]
) -> None:
    tensor = _tensor(shape, nbytes)
    resolve_shapes([tensor], [IMAGE])
    assert list(tensor.tensor_metadata.shape) == expected


def test_two_unknowns_or_a_ragged_length_are_refused() -> None:
    dynamic = TensorSpec("image", np.dtype(np.uint8), (-1, 3, -1, -1))
    with pytest.raises(InvalidInputError, match="dynamic dimensions unknown"):
        resolve_shapes([_tensor([1, 3, -1, -1], 3 * 64 * 64 * 4)], [dynamic])
    with pytest.raises(InvalidInputError, match="not a whole number"):
        resolve_shapes([_tensor([-1, 3, 64, 64], 3 * 64 * 64 * 4 + 4)], [IMAGE])


def test_float_pixels_convert_only_when_whole_and_in_range() -> None:
    pixels = np.arange(256, dtype=np.float32)
    np.testing.assert_array_equal(float_pixels_to_uint8("x", pixels), np.arange(256, dtype=np.uint8))
    assert float_pixels_to_uint8("x", pixels.astype(np.float16)).dtype == np.uint8
    for bad in (0.5, -1.0, 256.0, np.nan, np.inf):
        with pytest.raises(InvalidInputError, match=r"whole numbers in 0\.\.255"):
            float_pixels_to_uint8("x", np.array([1.0, bad], np.float32))


def test_reported_metadata_is_concrete_and_float_for_uint8_images() -> None:
    manifest = manifest_for("cls", "1", "classification", 64, 64)
    dynamic_hw = TensorSpec("image", np.dtype(np.uint8), (-1, 3, -1, -1))
    assert reported_shape(dynamic_hw, manifest) == [1, 3, 64, 64]
    assert reported_dtype(IMAGE, True) == np.float32
    assert reported_dtype(IMAGE, False) == np.uint8


def test_errors_quote_client_input_briefly() -> None:
    assert clip("x" * 10) == "x" * 10
    assert clip("x" * 1000).endswith("...(+880 chars)")
    assert len(describe(InvalidInputError("y" * 10**6, hint="do this"))) < 2100


def test_capture_tensors_travel_as_npy_files_beside_the_image() -> None:
    request = CaptureRequest(
        capture_id="c1",
        model_name="cls",
        inputs={"data/0:x": np.full((1, 3, 4, 4), 200, np.float32)},
        outputs={"output": np.zeros((1, 1), np.float32), "out/put": np.ones((1, 1), np.float32)},
        auxiliary=[AuxiliaryData("input", "station", "JSON", b'{"cell": 3}')],
    )
    files = attachment_files(request)
    assert sorted(files) == [
        "auxiliary.json",
        "input-data_0_x.npy",
        "output-out_put.npy",
        "output-output.npy",
    ]
    capture = Capture(
        frame_id="c1",
        line="line-1",
        ts_ns=1,
        encoding="raw",
        height=4,
        width=4,
        channels=3,
        data=bytes(48),
        verdict="ok",
        score=0.1,
        predictions=[],
        reasons=["capture_data"],
        attachments=pack(files),
    )
    stored = capture_files(Capture.from_fields(capture.to_fields())).files
    assert sorted(stored) == sorted([*files, "image.png", "result.json"])
    assert stored["input-data_0_x.npy"] == files["input-data_0_x.npy"]


def test_attachment_names_cannot_leave_the_folder_or_replace_the_image() -> None:
    for name in ("../x.npy", "image.png", "result.json", "a/b.npy", ""):
        with pytest.raises(MessageError):
            check_name(name)
    with pytest.raises(MessageError, match="not a valid zip"):
        unpack(b"not a zip")
    assert safe_name("../../etc") == "etc"
    assert safe_name("") == "unnamed"
