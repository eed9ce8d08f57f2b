"""The shared test models behave as documented (other services' tests rely on it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from edgeinspect.core.package import load_golden, verify_package_dir

from tests.helpers.models import (
    classifier_onnx,
    image,
    make_keys,
    make_package_dir,
    run_onnx,
    segmenter_onnx,
)


def test_classifier_scores_dark_ok_and_bright_defect_and_versions_differ() -> None:
    dark, bright, grey = image(level=20), image(level=235), image(level=128)
    v1, v2 = classifier_onnx(knob=0), classifier_onnx(knob=2)
    assert (
        run_onnx(v1, dark)["defect_probability"][0, 0]
        < 0.5
        < run_onnx(v1, bright)["defect_probability"][0, 0]
    )
    assert run_onnx(v1, grey)["defect_probability"][0, 0] != run_onnx(v2, grey)["defect_probability"][0, 0]
    assert run_onnx(v1, image(batch=3))["defect_probability"].shape == (3, 1)


def test_segmenter_marks_bright_pixels() -> None:
    frame = image(32, 96, level=10)
    frame[0, :, 0, 0] = 255
    mask = run_onnx(segmenter_onnx(32, 96), frame)["mask_probability"]
    assert mask.shape == (1, 1, 32, 96) and mask[0, 0, 0, 0] > 0.5 > mask[0, 0, 1, 1]


def test_a_busy_classifier_answers_like_the_plain_one() -> None:
    pixels = image(level=200)
    np.testing.assert_allclose(
        run_onnx(classifier_onnx(busy_iterations=3), pixels)["defect_probability"],
        run_onnx(classifier_onnx(), pixels)["defect_probability"],
    )


def test_packages_verify_and_the_broken_one_has_a_wrong_golden(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys")
    for broken in (False, True):
        folder = make_package_dir(tmp_path / str(broken), "cls", "1", "classification", keys, broken=broken)
        manifest = verify_package_dir(folder, keys.public_keys())
        golden_in, golden_out = load_golden(folder, manifest)
        actual = run_onnx((folder / "model.onnx").read_bytes(), golden_in)["defect_probability"]
        assert np.allclose(actual, golden_out["defect_probability"]) is not broken
