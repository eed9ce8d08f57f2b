"""Folder replay: order, masks, loop/once, a bad file skipped, a vanished folder is a lost source."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from edgeinspect_camera.sources.base import FrameUnreadable, Grab, SourceError
from edgeinspect_camera.sources.folder import FolderSource, list_images, natural_key

from tests.unit.camera.helpers import make_image, write_folder


def _names(source: FolderSource, count: int) -> list[str]:
    out = []
    for _ in range(count):
        grab = source.read()
        assert isinstance(grab, Grab)
        out.append(grab.source)
    return out


def test_name_order_is_natural_and_masks_are_skipped(tmp_path: Path) -> None:
    write_folder(tmp_path, 12)
    (tmp_path / "notes.txt").write_text("not an image")
    assert [p.name for p in list_images(tmp_path)] == [f"img{i}.png" for i in range(12)]
    assert sorted(["img10", "img2", "img1"], key=natural_key) == ["img1", "img2", "img10"]


def test_pixels_are_the_files_pixels(tmp_path: Path) -> None:
    write_folder(tmp_path, 1, seed=7)
    source = FolderSource(tmp_path)
    source.open()
    grab = source.read()
    assert grab is not None and np.array_equal(grab.image, make_image(7))


def test_once_plays_every_image_then_is_done(tmp_path: Path) -> None:
    names = write_folder(tmp_path, 4)
    source = FolderSource(tmp_path, loop=False)
    source.open()
    assert _names(source, 4) == names
    assert source.read() is None and source.done


def test_loop_starts_again_and_picks_up_new_files(tmp_path: Path) -> None:
    write_folder(tmp_path, 2)
    source = FolderSource(tmp_path, loop=True)
    source.open()
    assert _names(source, 2) == ["img0.png", "img1.png"]
    write_folder(tmp_path, 3)  # a third image arrives during the pass
    assert _names(source, 4) == ["img0.png", "img1.png", "img2.png", "img0.png"]
    assert not source.done


def test_shuffle_is_seeded_and_covers_every_image_each_pass(tmp_path: Path) -> None:
    names = write_folder(tmp_path, 10)
    orders = []
    for _ in range(2):
        source = FolderSource(tmp_path, order="shuffle", seed=42)
        source.open()
        orders.append(_names(source, 20))
    assert orders[0] == orders[1]
    assert orders[0][:10] != names
    assert sorted(orders[0][:10]) == sorted(names) == sorted(orders[0][10:])


def test_a_corrupt_file_is_one_bad_frame_and_replay_goes_on(tmp_path: Path) -> None:
    write_folder(tmp_path, 2)
    (tmp_path / "img1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    source = FolderSource(tmp_path, loop=False)
    source.open()
    assert _names(source, 1) == ["img0.png"]
    with pytest.raises(FrameUnreadable) as caught:
        source.read()
    assert caught.value.name == "img1.png" and "cannot decode" in caught.value.reason
    assert source.read() is None and source.done


def test_missing_or_empty_folder_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot list"):
        FolderSource(tmp_path / "absent").open()
    with pytest.raises(SourceError, match="no images"):
        FolderSource(tmp_path).open()


def test_a_vanished_folder_is_a_lost_source_and_replay_resumes_after_it(tmp_path: Path) -> None:
    root = tmp_path / "frames"
    write_folder(root, 3)
    source = FolderSource(root, loop=False)
    source.open()
    assert _names(source, 1) == ["img0.png"]
    shutil.move(root, tmp_path / "away")
    with pytest.raises(SourceError, match="disappeared"):
        source.read()
    with pytest.raises(SourceError):
        source.open()
    shutil.move(tmp_path / "away", root)
    source.open()
    assert _names(source, 2) == ["img1.png", "img2.png"]
