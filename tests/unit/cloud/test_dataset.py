"""The dataset loader: any folder in the KolektorSDD2 layout, with errors that name the file and the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from edgeinspect.core.errors import EdgeInspectError
from edgeinspect_cloud.data.dataset import list_split, read_labels, read_mask, read_sample
from edgeinspect_cloud.data.fingerprint import dataset_fingerprint
from edgeinspect_cloud.errors import DatasetError
from PIL import Image


def write_pair(folder: Path, stem: str, *, size: tuple[int, int] = (24, 16), defect: bool = False) -> None:
    """An RGB image ``size`` = (width, height) and its 0/255 mask, named as KolektorSDD2 names them."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(int(stem))
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / f"{stem}.png")
    mask = np.zeros((size[1], size[0]), np.uint8)
    if defect:
        mask[2:5, 3:7] = 255
    Image.fromarray(mask).save(folder / f"{stem}_GT.png")


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    for index in range(4):
        write_pair(tmp_path / "train", f"{10000 + index}", defect=index == 1)
    write_pair(tmp_path / "test", "20000", defect=True)
    return tmp_path


def test_lists_pairs_sorted_and_reads_labels_from_masks(dataset: Path) -> None:
    files = list_split(dataset, "train")
    assert [f.sample_id for f in files] == [f"train/{10000 + i}.png" for i in range(4)]
    assert read_labels(files).tolist() == [False, True, False, False]
    sample = read_sample(files[1])
    assert sample.image.shape == (16, 24, 3) and sample.image.dtype == np.uint8
    assert sample.mask.dtype == np.bool_ and int(sample.mask.sum()) == 12
    assert sample.defective


def test_a_zero_one_mask_counts_as_defective(dataset: Path) -> None:
    mask = np.zeros((16, 24), np.uint8)
    mask[0, 0] = 1
    Image.fromarray(mask).save(dataset / "train" / "10000_GT.png")
    assert read_mask(list_split(dataset, "train")[0]).sum() == 1


def test_grey_images_become_rgb(dataset: Path) -> None:
    Image.fromarray(np.full((16, 24), 77, np.uint8)).save(dataset / "train" / "10002.png")
    image = read_sample(list_split(dataset, "train")[2]).image
    assert image.shape == (16, 24, 3) and np.all(image == 77)


def test_missing_split_folder_is_named(dataset: Path) -> None:
    with pytest.raises(DatasetError, match=r"split folder .*valid.* does not exist"):
        list_split(dataset, "valid")


def test_empty_split_is_an_error(dataset: Path) -> None:
    shutil.rmtree(dataset / "test")
    (dataset / "test").mkdir()
    (dataset / "test" / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetError, match=r"split 'test' .* holds no images") as caught:
        list_split(dataset, "test")
    assert "NNNNN.png" in caught.value.hint


def test_missing_mask_names_the_image_and_the_expected_mask(dataset: Path) -> None:
    (dataset / "train" / "10003_GT.png").unlink()
    with pytest.raises(DatasetError, match=r"10003\.png has no mask 10003_GT\.png"):
        list_split(dataset, "train")


def test_mask_of_the_wrong_size_is_refused(dataset: Path) -> None:
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(dataset / "train" / "10002_GT.png")
    files = list_split(dataset, "train")
    with pytest.raises(DatasetError, match=r"10002_GT\.png is 10x10 .* its image is 24x16"):
        read_sample(files[2])


def test_unreadable_image_is_named(dataset: Path) -> None:
    (dataset / "train" / "10001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    files = list_split(dataset, "train")
    with pytest.raises(DatasetError, match=r"image .*10001\.png cannot be decoded"):
        read_sample(files[1])


def test_unreadable_mask_is_named(dataset: Path) -> None:
    (dataset / "train" / "10001_GT.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"mask .*10001_GT\.png cannot be decoded"):
        read_labels(list_split(dataset, "train"))


def test_dataset_errors_are_edgeinspect_errors() -> None:
    assert issubclass(DatasetError, EdgeInspectError)


def test_fingerprint_ignores_location_but_not_content_or_names(
    dataset: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    original = dataset_fingerprint(dataset)
    moved = tmp_path_factory.mktemp("elsewhere") / "copy"
    shutil.copytree(dataset, moved)
    assert dataset_fingerprint(moved) == original
    (moved / "train" / "unrelated.txt").write_text("not part of the dataset")
    assert dataset_fingerprint(moved) == original
    write_pair(moved / "train", "10000", defect=True)
    assert dataset_fingerprint(moved) != original
    renamed = tmp_path_factory.mktemp("renamed") / "copy"
    shutil.copytree(dataset, renamed)
    for suffix in (".png", "_GT.png"):
        (renamed / "train" / f"10003{suffix}").rename(renamed / "train" / f"10009{suffix}")
    assert dataset_fingerprint(renamed) != original


def test_fingerprint_of_a_folder_without_splits_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="holds no train or test folder"):
        dataset_fingerprint(tmp_path)
