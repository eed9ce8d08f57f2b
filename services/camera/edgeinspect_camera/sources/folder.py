"""Replay a folder of images (a KolektorSDD2 split, a day of saved frames) as if it were a camera.

The folder is listed again at every pass, so images copied in while replaying join the next loop, and
a folder that vanishes is a lost source (reconnect) while one bad file is only a bad frame.
Ground-truth masks (``*_GT.png``) sit next to the images in public data sets and are never frames.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from edgeinspect.core.errors import ImageError
from edgeinspect.core.images import ImageArray, decode

from edgeinspect_camera.sources.base import FrameUnreadable, Grab, SourceError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> list[tuple[int, int | str]]:
    """Sort ``img2`` before ``img10``, as a person reading the folder would expect."""
    return [(0, int(part)) if part.isdigit() else (1, part.lower()) for part in _DIGITS.split(name) if part]


def is_mask(path: Path) -> bool:
    """``10001_GT.png`` is a ground-truth mask, not a frame."""
    return path.stem.upper().endswith("_GT")


def list_images(root: Path) -> list[Path]:
    """The replayable images in ``root``, in name order; ``SourceError`` if the folder is unusable."""
    try:
        entries = [p for p in root.iterdir() if p.is_file()]
    except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        raise SourceError(
            f"cannot list replay folder {root}: {exc.strerror or exc}",
            hint="check EI_SOURCE and that the folder is mounted and readable",
        ) from exc
    images = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and not is_mask(p)]
    if not images:
        raise SourceError(
            f"replay folder {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}; *_GT masks skipped)",
            hint="copy images into the folder or point EI_SOURCE at another one",
        )
    return sorted(images, key=lambda p: natural_key(p.name))


class FolderSource:
    """Images of one folder in name order or a seeded shuffle, once or looping."""

    def __init__(self, root: Path, *, order: str = "name", loop: bool = True, seed: int = 0) -> None:
        self.root = root
        self.order = order
        self.loop = loop
        self._random = random.Random(seed)
        self._playlist: list[Path] = []
        self._index = 0
        self._done = False

    @property
    def name(self) -> str:
        return f"folder://{self.root}"

    @property
    def triggered(self) -> bool:
        """The loop paces reads (``EI_FPS``); this source does not decide when frames come."""
        return False

    @property
    def done(self) -> bool:
        return self._done

    def open(self) -> None:
        """List the folder; after a reconnect replay resumes where it stopped, not from the start."""
        playlist = self._ordered(list_images(self.root))
        if not self._playlist:
            self._playlist = playlist

    def read(self) -> Grab | None:
        if self._done:
            return None
        if self._index >= len(self._playlist):
            if not self.loop:
                self._done = True
                return None
            self._playlist = self._ordered(list_images(self.root))
            self._index = 0
        path = self._playlist[self._index]
        self._index += 1
        return Grab(image=self._load(path), source=path.name)

    def close(self) -> None:
        """Nothing to release: files are read whole, one at a time."""

    def _ordered(self, images: list[Path]) -> list[Path]:
        if self.order == "shuffle":
            self._random.shuffle(images)
        return images

    def _load(self, path: Path) -> ImageArray:
        try:
            data = path.read_bytes()
        except OSError as exc:
            if not self.root.is_dir():
                self._index -= 1  # retry this image once the folder is back
                raise SourceError(
                    f"replay folder {self.root} disappeared", hint="check the mount or volume"
                ) from exc
            raise FrameUnreadable(path.name, exc.strerror or str(exc)) from exc
        try:
            return decode(data, _encoding_of(path))
        except ImageError as exc:
            raise FrameUnreadable(
                path.name, exc.message, hint="the file is corrupt; replace or remove it"
            ) from exc


def _encoding_of(path: Path) -> str:
    """The label ``decode`` reports in errors; Pillow detects the real format from the bytes."""
    return "jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "png"
