"""Extra files that travel with a capture (``Capture.attachments``) and are stored beside its image.

The agent's ``CaptureData`` keeps what a SageMaker Edge client sent: every tensor as
``input-<name>.npy`` / ``output-<name>.npy`` and the auxiliary data as ``auxiliary.json``. They travel
on ``ei:capture`` in one field, an uncompressed zip (what ``numpy.savez`` writes, so ``numpy.load``
reads it too), and the uploader unpacks them into the capture's folder. Both ends go through this
module, so the names and limits are checked the same way on the way in and on the way out.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping

import numpy as np

from edgeinspect.core.errors import MessageError

MAX_FILES = 64
MAX_TOTAL_BYTES = 256 * 1024 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_RESERVED = ("image.", "mask.png", "result.json")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(text: str, limit: int = 80) -> str:
    """A client's tensor name made into a file-name part (``data/0:x`` -> ``data_0_x``)."""
    cleaned = _UNSAFE.sub("_", text).strip("._-")[:limit]
    return cleaned or "unnamed"


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` in the ``.npy`` format (no pickles: only plain dtypes travel)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def check_name(name: str) -> None:
    """A file name that cannot leave the capture's folder nor replace its image, mask or result."""
    if not _NAME.match(name) or name.startswith(_RESERVED):
        raise MessageError(
            f"attachment name {name[:120]!r} is not allowed",
            hint="1-100 letters, digits, '_', '.', '-', not image.*, mask.png or result.json",
        )


def pack(files: Mapping[str, bytes]) -> bytes:
    """The files as one uncompressed zip; ``MessageError`` for a bad name or too much data."""
    if len(files) > MAX_FILES:
        raise MessageError(f"{len(files)} attachments; a capture carries at most {MAX_FILES}")
    if sum(len(data) for data in files.values()) > MAX_TOTAL_BYTES:
        raise MessageError(f"attachments exceed {MAX_TOTAL_BYTES} bytes")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            check_name(name)
            archive.writestr(name, data)
    return buffer.getvalue()


def unpack(blob: bytes) -> dict[str, bytes]:
    """The files packed by :func:`pack`; ``MessageError`` if the blob is not one (checked, bounded)."""
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            members = archive.infolist()
            if len(members) > MAX_FILES or sum(m.file_size for m in members) > MAX_TOTAL_BYTES:
                raise MessageError(f"attachments exceed {MAX_FILES} files or {MAX_TOTAL_BYTES} bytes")
            files: dict[str, bytes] = {}
            for member in members:
                check_name(member.filename)
                files[member.filename] = archive.read(member)
            return files
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise MessageError(f"capture attachments are not a valid zip: {exc}") from exc
