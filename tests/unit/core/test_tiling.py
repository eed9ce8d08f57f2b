"""Tile geometry and stitching (``edgeinspect.core.tiling``): coverage, overlap, edges, invariants."""

from __future__ import annotations

import json

import numpy as np
import pytest
from edgeinspect.core.errors import ImageError, PackageError
from edgeinspect.core.package import Manifest, TilingHint
from edgeinspect.core.tiling import (
    FrameTooLarge,
    Stitcher,
    Tile,
    TilingConfig,
    centre_weights,
    decide,
    tile_grid,
    tile_starts,
)

from tests.helpers.manifests import manifest

SIZES = [(1, 1, 0), (10, 10, 3), (11, 10, 0), (100, 32, 4), (2000, 224, 28), (4000, 640, 80), (233, 232, 231)]


@pytest.mark.parametrize(("length", "tile", "overlap"), SIZES)
def test_starts_cover_the_length_with_at_least_the_overlap(length: int, tile: int, overlap: int) -> None:
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0
    assert starts[-1] + tile == length  # the last tile is shifted inward to end at the edge
    assert starts == sorted(set(starts))
    gaps = np.diff(starts)
    assert np.all(gaps <= tile - min(overlap, tile - 1))  # never less overlap than asked, never a hole
    covered = np.zeros(length, int)
    for start in starts:
        covered[start : start + tile] += 1
    assert covered.min() >= 1


def test_starts_use_the_fewest_tiles_that_fit() -> None:
    assert tile_starts(2000, 224, 28) == [round(i * 1776 / 10) for i in range(11)]
    assert len(tile_starts(448, 224, 0)) == 2
    assert len(tile_starts(449, 224, 0)) == 3


def test_a_length_shorter_than_the_tile_is_one_tile() -> None:
    assert tile_starts(100, 224, 28) == [0]


def test_grid_tiles_are_the_tile_size_inside_the_frame_and_row_major() -> None:
    tiles = tile_grid(640, 2000, 224, 224, 0.125)
    assert {(t.height, t.width) for t in tiles} == {(224, 224)}
    assert all(t.top >= 0 and t.left >= 0 and t.bottom <= 640 and t.right <= 2000 for t in tiles)
    assert [t.top for t in tiles] == sorted(t.top for t in tiles)
    covered = np.zeros((640, 2000), int)
    for t in tiles:
        covered[t.top : t.bottom, t.left : t.right] += 1
    assert covered.min() >= 1


def test_grid_on_a_frame_narrower_than_the_tile_keeps_that_axis_whole() -> None:
    tiles = tile_grid(100, 2000, 224, 224, 0.125)
    assert {(t.top, t.height) for t in tiles} == {(0, 100)}
    assert tiles[-1].right == 2000


def test_bad_overlap_is_refused() -> None:
    with pytest.raises(ImageError, match="overlap"):
        tile_grid(100, 100, 10, 10, 1.0)


def test_max_stitch_of_a_constant_is_that_constant_and_keeps_a_one_tile_peak() -> None:
    tiles = tile_grid(300, 500, 64, 64, 0.25)
    stitcher = Stitcher(300, 500, "max")
    for index, t in enumerate(tiles):
        plane = np.full((t.height, t.width), 0.2, np.float32)
        if index == 3:
            plane[5, 7] = 0.9  # one tile saw a defect: the stitched frame keeps it where it was
        stitcher.add(t, plane)
    out = stitcher.result()
    assert out.shape == (300, 500)
    peak = np.unravel_index(np.argmax(out), out.shape)
    assert peak == (tiles[3].top + 5, tiles[3].left + 7)
    assert np.isclose(out.max(), 0.9) and np.isclose(np.median(out), 0.2)


def test_mean_stitch_of_a_constant_is_that_constant_and_of_a_frame_is_the_frame() -> None:
    frame = np.random.default_rng(3).random((130, 270), dtype=np.float32)
    tiles = tile_grid(130, 270, 48, 64, 0.3)
    constant, copy = Stitcher(130, 270, "mean"), Stitcher(130, 270, "mean")
    for t in tiles:
        constant.add(t, np.full((t.height, t.width), 0.7, np.float32))
        copy.add(t, t.crop(frame))
    np.testing.assert_allclose(constant.result(), 0.7, rtol=1e-5)
    np.testing.assert_allclose(copy.result(), frame, rtol=1e-5)  # tiles that agree blend to themselves


def test_stitcher_refuses_wrong_planes_and_holes() -> None:
    stitcher = Stitcher(10, 10)
    with pytest.raises(ImageError, match="expected"):
        stitcher.add(Tile(0, 0, 4, 4), np.zeros((3, 4), np.float32))
    with pytest.raises(ImageError, match="outside"):
        stitcher.add(Tile(8, 8, 4, 4), np.zeros((4, 4), np.float32))
    stitcher.add(Tile(0, 0, 4, 4), np.zeros((4, 4), np.float32))
    with pytest.raises(ImageError, match="no tile covered"):
        stitcher.result()


def test_centre_weights_peak_in_the_middle_and_never_vanish() -> None:
    weights = centre_weights(9, 5)
    assert weights.min() > 0 and weights[4, 2] == weights.max() == 1.0
    assert weights[0, 0] < weights[4, 2]


SPEC = manifest(height=224, width=224).input


def test_auto_tiles_only_frames_much_larger_than_the_input() -> None:
    assert decide(640, 232, SPEC, TilingConfig()) is None  # ~2.9 tiles: resized as trained
    plan = decide(1000, 4000, SPEC, TilingConfig())
    assert plan is not None and plan.blend == "max" and (plan.tile_height, plan.tile_width) == (224, 224)
    assert len(plan.tiles) == len(tile_starts(1000, 224, 28)) * len(tile_starts(4000, 224, 28))


def test_on_tiles_any_frame_larger_than_a_tile_and_off_never() -> None:
    assert decide(640, 232, SPEC, TilingConfig(mode="on")) is not None
    assert decide(200, 224, SPEC, TilingConfig(mode="on")) is None  # smaller than the input: whole
    assert decide(10_000, 4000, SPEC, TilingConfig(mode="off")) is None


def test_the_package_hint_sets_tile_size_and_mode_unless_the_line_decides() -> None:
    hint = TilingHint(mode="on", tile_height=640, tile_width=232, overlap=0.25, blend="mean")
    plan = decide(1280, 464, SPEC, TilingConfig(), hint)
    assert plan is not None and (plan.tile_height, plan.tile_width, plan.blend) == (640, 232, "mean")
    assert len(plan.tiles) == 9  # 3 x 3 at 25% overlap
    assert decide(1280, 464, SPEC, TilingConfig(mode="off"), hint) is None
    assert decide(4000, 4000, SPEC, TilingConfig(), TilingHint(mode="off")) is None
    line = decide(1280, 464, SPEC, TilingConfig(overlap=0.0, blend="max"), hint)
    assert line is not None and len(line.tiles) == 4 and line.blend == "max"


def test_a_frame_over_the_pixel_bound_is_refused_with_what_to_do() -> None:
    with pytest.raises(FrameTooLarge, match="over the tiling bound") as caught:
        decide(5000, 5000, SPEC, TilingConfig(max_pixels=20_000_000))
    assert "EI_TILING_MAX_PIXELS" in caught.value.hint
    assert decide(5000, 5000, SPEC, TilingConfig(mode="off", max_pixels=1)) is None


def test_the_manifest_tiling_hint_round_trips_and_is_left_out_when_absent() -> None:
    plain = manifest()
    assert b'"tiling"' not in plain.to_json_bytes()  # devices that predate the field still read it
    hinted = manifest(tiling=TilingHint(tile_height=640, tile_width=232, overlap=0.2, blend="mean"))
    again = Manifest.from_json_bytes(hinted.to_json_bytes())
    assert again.tiling == hinted.tiling and again.tiling is not None and again.tiling.mode == "auto"


@pytest.mark.parametrize(
    "bad", [{"overlap": 0.95}, {"tile_height": 0}, {"min_scale": 0.5}, {"mode": "always"}, {"size": 3}]
)
def test_a_bad_tiling_hint_is_refused_naming_the_field(bad: dict[str, object]) -> None:
    data = manifest().model_dump(mode="json") | {"tiling": bad}
    with pytest.raises(PackageError, match="tiling"):
        Manifest.from_json_bytes(json.dumps(data).encode())
