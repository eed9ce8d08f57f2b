"""Read any folder in the KolektorSDD2 layout: ``<root>/<split>/NNNNN.png`` beside ``NNNNN_GT.png``.

The synthetic generator writes this layout, the real KolektorSDD2 ships in it, and a user's own
images fit it with one rename, so every tool reads data through here. An image is defective when its
mask has any non-zero pixel (0/255 and 0/1 masks both work). Images are decoded by
:func:`edgeinspect.core.images.decode`, the decoder the edge uses for camera frames.

Every problem is a :class:`~edgeinspect_cloud.errors.DatasetError` naming the file and what to do:
a split folder that is missing or empty, an image without its mask, a mask whose size differs from
its image, a file that cannot be decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from edgeinspect.core.errors import ImageError
from edgeinspect.core.images import decode

from edgeinspect_cloud.errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MASK_TAG = "_GT"
SPLITS = ("train", "test")


@dataclass(frozen=True)
class SampleFiles:
    """One image and its mask on disk; ``sample_id`` is the image's path relative to the dataset root."""

    sample_id: str
    image_path: Path
    mask_path: Path


@dataclass(frozen=True)
class Sample:
    """A decoded sample at the file's resolution: ``HxWx3`` RGB uint8 image, ``HxW`` boolean mask."""

    files: SampleFiles
    image: npt.NDArray[np.uint8]
    mask: npt.NDArray[np.bool_]

    @property
    def defective(self) -> bool:
        """Whether the mask marks any pixel."""
        return bool(self.mask.any())


def list_split(root: str | Path, split: str) -> list[SampleFiles]:
    """The samples of ``root/split``, sorted by file name; checks that every image has its mask."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise DatasetError(
            f"split folder {folder} does not exist",
            hint=f"a dataset holds {'/ and '.join(SPLITS)}/ folders of NNNNN.png + NNNNN_GT.png",
        )
    images = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.stem.endswith(MASK_TAG)
    )
    if not images:
        raise DatasetError(
            f"split {split!r} in {root} holds no images",
            hint=f"put NNNNN.png images with NNNNN{MASK_TAG}.png masks into {folder}",
        )
    return [_pair(Path(root), image) for image in images]


def _pair(root: Path, image: Path) -> SampleFiles:
    candidates = [image.with_name(f"{image.stem}{MASK_TAG}{suffix}") for suffix in (".png", image.suffix)]
    mask = next((c for c in candidates if c.is_file()), None)
    if mask is None:
        raise DatasetError(
            f"image {image} has no mask {candidates[0].name}",
            hint="add an all-black mask for a good part, or remove the image",
        )
    return SampleFiles(image.relative_to(root).as_posix(), image, mask)


def read_sample(files: SampleFiles) -> Sample:
    """Decode one image (as RGB) and its mask (as boolean), checking that their sizes match."""
    image = _decode(files.image_path, "image")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    mask = read_mask(files)
    if mask.shape != image.shape[:2]:
        raise DatasetError(
            f"mask {files.mask_path} is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image is "
            f"{image.shape[1]}x{image.shape[0]}",
            hint="a mask must have exactly its image's size; re-export it",
        )
    return Sample(files, np.ascontiguousarray(image), mask)


def read_mask(files: SampleFiles) -> npt.NDArray[np.bool_]:
    """The mask alone (cheap: used to learn labels for a stratified split before loading images)."""
    pixels = _decode(files.mask_path, "mask")
    mask: npt.NDArray[np.bool_] = pixels.max(axis=2) > 0
    return mask


def read_labels(samples: list[SampleFiles]) -> npt.NDArray[np.bool_]:
    """Defective (True) or good (False) for each sample, from its mask."""
    return np.array([bool(read_mask(files).any()) for files in samples], dtype=bool)


def _decode(path: Path, what: str) -> npt.NDArray[np.uint8]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(
            f"cannot read {what} {path}: {exc.strerror or exc}", hint="check the file"
        ) from exc
    encoding = "png" if path.suffix.lower() == ".png" else "jpeg"
    try:
        return decode(data, encoding)
    except ImageError as exc:
        raise DatasetError(
            f"{what} {path} cannot be decoded: {exc.message}",
            hint="replace or remove the file; images must be PNG or JPEG",
        ) from exc
