"""The one preprocessing path: colour, resize policies and their exact inverse, layout, normalisation."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pytest
from edgeinspect.core.errors import ImageError
from edgeinspect.core.package import InputSpec, Normalisation, Resize
from edgeinspect.core.preprocess import (
    PAD_VALUE,
    convert_colour,
    plan,
    preprocess,
    resize_bilinear,
    resize_nearest,
)
from hypothesis import given, settings
from hypothesis import strategies as st

Mode = Literal["stretch", "letterbox", "pad"]


def spec(
    height: int,
    width: int,
    mode: Mode = "stretch",
    *,
    colour: Literal["RGB", "BGR", "GRAY"] = "RGB",
    dtype: Literal["uint8", "float16", "float32"] = "uint8",
    in_graph: bool = True,
    mean: tuple[float, ...] = (0.0,),
    std: tuple[float, ...] = (1.0,),
) -> InputSpec:
    channels = 1 if colour == "GRAY" else 3
    return InputSpec(
        name="image",
        shape=[1, channels, height, width],
        dtype=dtype,
        colour=colour,
        resize=Resize(height=height, width=width, mode=mode),
        normalisation=Normalisation(mean=list(mean), std=list(std)),
        normalisation_in_graph=in_graph,
    )


def frame(height: int, width: int, seed: int = 0, channels: int = 3) -> Any:
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def test_rgb_frame_is_passed_through_in_nchw_layout() -> None:
    image = frame(6, 10)
    out = preprocess(image, spec(6, 10))
    assert out.tensor.shape == (1, 3, 6, 10)
    assert out.tensor.dtype == np.uint8
    assert out.tensor.flags["C_CONTIGUOUS"]
    assert np.array_equal(out.tensor[0].transpose(1, 2, 0), image)
    assert out.geometry.is_identity


def test_bgr_model_gets_channels_reversed() -> None:
    image = frame(4, 5)
    out = preprocess(image, spec(4, 5, colour="BGR"))
    assert np.array_equal(out.tensor[0, 0], image[:, :, 2])
    assert np.array_equal(out.tensor[0, 2], image[:, :, 0])


def test_gray_model_gets_bt601_luma() -> None:
    image = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    grey = convert_colour(image, "GRAY")
    assert grey.shape == (1, 4, 1)
    assert grey[0, :, 0].tolist() == [76, 150, 29, 255]


def test_grey_frame_is_repeated_for_an_rgb_model_after_resizing() -> None:
    grey = frame(8, 8, channels=1)
    out = preprocess(grey, spec(4, 4))
    assert out.tensor.shape == (1, 3, 4, 4)
    assert np.array_equal(out.tensor[0, 0], out.tensor[0, 1])
    assert np.array_equal(out.tensor[0, 0], resize_bilinear(grey, 4, 4)[:, :, 0])


def test_bilinear_upscale_uses_half_pixel_centres() -> None:
    ramp = np.array([[[0], [100]]], dtype=np.uint8)  # 1x2x1
    assert resize_bilinear(ramp, 1, 4)[0, :, 0].tolist() == [0, 25, 75, 100]


def test_shrinking_by_whole_blocks_averages_them() -> None:
    checker = np.indices((8, 8)).sum(axis=0) % 2 * 200
    image = checker.astype(np.uint8)[:, :, None]
    small = resize_bilinear(image, 2, 2)
    assert small[:, :, 0].tolist() == [[100, 100], [100, 100]]


def test_constant_frame_stays_constant_under_every_policy() -> None:
    image = np.full((37, 91, 3), 123, dtype=np.uint8)
    for mode in ("stretch", "letterbox", "pad"):
        out = preprocess(image, spec(32, 96, mode))
        geometry = out.geometry
        region = out.tensor[
            0,
            :,
            geometry.top : geometry.top + min(geometry.content_height, 32),
            geometry.left : geometry.left + min(geometry.content_width, 96),
        ]
        assert np.all(region == 123), mode


def test_letterbox_scales_to_fit_and_centres_on_padding() -> None:
    image = np.full((100, 200, 3), 50, dtype=np.uint8)
    out = preprocess(image, spec(100, 100, "letterbox"))
    g = out.geometry
    assert (g.content_height, g.content_width, g.top, g.left) == (50, 100, 25, 0)
    assert np.all(out.tensor[0, :, :25] == PAD_VALUE)
    assert np.all(out.tensor[0, :, 75:] == PAD_VALUE)
    assert np.all(out.tensor[0, :, 25:75] == 50)


def test_letterbox_at_unit_scale_keeps_pixels_and_inverse_is_exact() -> None:
    image = frame(50, 100, seed=3)
    out = preprocess(image, spec(100, 100, "letterbox"))
    canvas = out.tensor[0].transpose(1, 2, 0)
    assert np.array_equal(canvas[25:75], image)
    assert np.array_equal(out.geometry.to_frame(canvas), image)


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    factor=st.integers(1, 4),
    extra=st.integers(0, 12),
    tall=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_letterbox_inverse_recovers_a_mask_exactly_at_integer_scales(
    height: int, width: int, factor: int, extra: int, tall: bool, seed: int
) -> None:
    # A canvas whose limiting side is exactly factor x the frame's: content = frame scaled by factor.
    target_h = height * factor + (0 if tall else extra)
    target_w = width * factor + (extra if tall else 0)
    geometry = plan(height, width, Resize(height=target_h, width=target_w, mode="letterbox"))
    assert (geometry.content_height, geometry.content_width) == (height * factor, width * factor)
    mask = np.random.default_rng(seed).random((height, width)) > 0.5
    canvas = np.zeros((target_h, target_w), dtype=bool)
    canvas[
        geometry.top : geometry.top + geometry.content_height,
        geometry.left : geometry.left + geometry.content_width,
    ] = np.kron(mask, np.ones((factor, factor), dtype=bool))
    assert np.array_equal(geometry.to_frame(canvas), mask)


@settings(max_examples=60, deadline=None)
@given(height=st.integers(1, 50), width=st.integers(1, 50), th=st.integers(1, 50), tw=st.integers(1, 50))
def test_pad_keeps_coordinates_and_inverse_is_exact(height: int, width: int, th: int, tw: int) -> None:
    image = frame(height, width, seed=height * 100 + width)
    out = preprocess(image, spec(th, tw, "pad"))
    canvas = out.tensor[0].transpose(1, 2, 0)
    rows, cols = min(height, th), min(width, tw)
    assert np.array_equal(canvas[:rows, :cols], image[:rows, :cols])
    assert np.all(canvas[rows:] == PAD_VALUE)
    assert np.all(canvas[:, cols:] == PAD_VALUE)
    back = out.geometry.to_frame(canvas)
    assert back.shape == image.shape
    assert np.array_equal(back[:rows, :cols], image[:rows, :cols])
    assert np.all(back[rows:] == 0)
    assert np.all(back[:, cols:] == 0)


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 300),
    width=st.integers(1, 300),
    mode=st.sampled_from(["stretch", "letterbox", "pad"]),
)
def test_every_frame_size_yields_the_models_shape_and_maps_back(height: int, width: int, mode: Mode) -> None:
    out = preprocess(frame(height, width), spec(24, 64, mode))
    assert out.tensor.shape == (1, 3, 24, 64)
    mask = np.ones((24, 64), dtype=bool)
    back = out.geometry.to_frame(mask)
    assert back.shape == (height, width)
    assert back.dtype == np.bool_
    if mode != "pad":
        assert back.all()  # the frame's whole region was covered, so every frame pixel maps back


def test_stretch_inverse_of_a_half_size_mask_is_block_replication() -> None:
    geometry = plan(8, 8, Resize(height=4, width=4, mode="stretch"))
    mask = np.eye(4, dtype=bool)
    assert np.array_equal(geometry.to_frame(mask), np.kron(mask, np.ones((2, 2), dtype=bool)))


def test_nearest_resize_is_identity_at_same_size() -> None:
    plane = np.arange(12).reshape(3, 4)
    assert resize_nearest(plane, 3, 4) is plane


def test_float_model_without_normalisation_in_graph_gets_normalised_values() -> None:
    image = np.full((2, 2, 3), 255, dtype=np.uint8)
    image[:, :, 1] = 0
    s = spec(2, 2, dtype="float32", in_graph=False, mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 0.5))
    out = preprocess(image, s)
    assert out.tensor.dtype == np.float32
    assert np.allclose(out.tensor[0, 0], 1.0)
    assert np.allclose(out.tensor[0, 1], -2.0)


def test_uint8_model_gets_raw_pixels_even_without_normalisation_in_graph() -> None:
    image = frame(2, 3)
    out = preprocess(image, spec(2, 3, in_graph=False, mean=(0.5,), std=(0.5,)))
    assert out.tensor.dtype == np.uint8
    assert np.array_equal(out.tensor[0].transpose(1, 2, 0), image)


def test_float16_model_gets_float16_normalised_values() -> None:
    image = np.full((2, 2, 3), 51, dtype=np.uint8)
    out = preprocess(image, spec(2, 2, dtype="float16", in_graph=False))
    assert out.tensor.dtype == np.float16
    assert np.allclose(out.tensor, 0.2, atol=1e-3)


def test_rgba_frame_drops_alpha() -> None:
    image = frame(3, 3, channels=4)
    out = preprocess(image, spec(3, 3))
    assert np.array_equal(out.tensor[0].transpose(1, 2, 0), image[:, :, :3])


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (np.zeros((4, 4, 3), dtype=np.float32), "uint8"),
        (np.zeros((4, 4, 2), dtype=np.uint8), "channels"),
        (np.zeros((0, 4, 3), dtype=np.uint8), "H, W > 0"),
    ],
)
def test_unusable_frames_raise_image_error_naming_the_problem(image: Any, reason: str) -> None:
    with pytest.raises(ImageError, match=reason):
        preprocess(image, spec(4, 4))


def test_mapping_back_a_plane_of_the_wrong_size_is_refused() -> None:
    geometry = plan(10, 10, Resize(height=4, width=4, mode="stretch"))
    with pytest.raises(ImageError, match="model input is 4x4"):
        geometry.to_frame(np.zeros((5, 4), dtype=bool))
