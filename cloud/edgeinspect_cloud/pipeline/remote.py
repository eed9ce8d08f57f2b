"""A run folder whose home is object storage: how one container of an engine's pipeline runs one step.

With ``--run-url s3://bucket/runs/X``, ``pipeline run`` pulls the run folder from that URL before its
steps and pushes what changed after each step; ``--dataset`` may be an ``s3://`` or ``file://`` URL,
fetched into ``RUN_DIR/.datasets/d{i}`` (never pushed: the dataset already lives in storage). Links
(the union of several datasets) are not pushed either: the data step's join is re-made from the
fetched datasets when a later step needs it, so every container sees the same paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeinspect.core.hashing import sha256_file
from edgeinspect.core.observability import get_logger
from edgeinspect.core.storage import ObjectStore, open_store

from edgeinspect_cloud.pipeline.layout import PipelineError

log = get_logger(__name__)

DATASETS_DIR = ".datasets"
URL_SCHEMES = ("s3://", "file://")


def is_url(text: str) -> bool:
    return text.startswith(URL_SCHEMES)


def _store(url: str, endpoint_url: str | None) -> ObjectStore:
    options: dict[str, Any] = (
        {"endpoint_url": endpoint_url} if endpoint_url and url.startswith("s3://") else {}
    )
    return open_store(url.rstrip("/"), **options)


def pull(url: str, folder: Path, endpoint_url: str | None = None) -> int:
    """Download every object under ``url`` into ``folder`` (skipping files already identical)."""
    store = _store(url, endpoint_url)
    count = 0
    for info in store.list(""):
        target = folder / info.key
        if target.is_file() and target.stat().st_size == info.size and _same(target, info.sha256):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        store.download(info.key, target)
        count += 1
    log.info("run_pulled", url=url, objects=count)
    return count


def push(folder: Path, url: str, endpoint_url: str | None = None) -> int:
    """Upload the run folder's regular files that the store lacks or holds differently."""
    store = _store(url, endpoint_url)
    stored = {info.key: info for info in store.list("")}
    count = 0
    for path in sorted(_run_files(folder)):
        key = path.relative_to(folder).as_posix()
        info = stored.get(key)
        if info is not None and info.size == path.stat().st_size and _same(path, info.sha256, strict=True):
            continue
        store.put_file(key, path)
        count += 1
    log.info("run_pushed", url=url, objects=count)
    return count


def fetch_dataset(url: str, folder: Path, endpoint_url: str | None = None) -> Path:
    """A dataset at ``url`` (a folder of ``train/`` and ``test/``) copied into ``folder``."""
    if pull(url, folder, endpoint_url) == 0 and not folder.is_dir():
        raise PipelineError(f"dataset {url} is empty or missing", hint="check --dataset")
    if not (folder / "train").is_dir():
        raise PipelineError(f"dataset {url} has no train/ folder", hint="upload the dataset folder itself")
    return folder


def _run_files(folder: Path) -> list[Path]:
    """Regular files of the run folder, without links, temporary files and the fetched datasets."""
    files = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if relative.parts[0] == DATASETS_DIR or path.is_symlink() or not path.is_file():
            continue
        if any(part.startswith(".") and part.endswith(".tmp") for part in relative.parts):
            continue
        if any(parent.is_symlink() for parent in path.parents if folder in parent.parents):
            continue
        files.append(path)
    return files


def _same(path: Path, sha256: str | None, *, strict: bool = False) -> bool:
    """Whether ``path`` holds the object with ``sha256``; unknown hashes count as the same unless strict."""
    if sha256 is None:
        return not strict
    return sha256_file(path) == sha256
