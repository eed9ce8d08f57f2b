"""The dataset fingerprint recorded with every model: which files, with which bytes, it learned from.

``sha256`` over the sorted relative paths of every image and mask of the dataset's splits, each
followed by the sha256 of its contents. Renaming, adding, removing or editing any file changes it;
where the dataset lives (its absolute path) and file timestamps do not.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from edgeinspect.core.hashing import sha256_file

from edgeinspect_cloud.data.dataset import SPLITS, list_split
from edgeinspect_cloud.errors import DatasetError


def dataset_fingerprint(root: str | Path, splits: tuple[str, ...] | None = None) -> str:
    """Lowercase hex sha256 of the dataset under ``root`` (its ``train``/``test`` splits that exist).

    ``splits`` restricts it to named splits (each must exist). Raises ``DatasetError`` when no split
    is found or a split is unusable (see :func:`~edgeinspect_cloud.data.dataset.list_split`).
    """
    base = Path(root)
    names = splits if splits is not None else tuple(s for s in SPLITS if (base / s).is_dir())
    if not names:
        raise DatasetError(f"{base} holds no {' or '.join(SPLITS)} folder", hint="point at a dataset root")
    files: list[Path] = []
    for split in names:
        for sample in list_split(base, split):
            files.extend([sample.image_path, sample.mask_path])
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.relative_to(base).as_posix()):
        digest.update(path.relative_to(base).as_posix().encode("utf-8") + b"\0")
        digest.update(bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()
