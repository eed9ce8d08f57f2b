"""SHA-256 helpers shared by everything that checks integrity (packages, downloads, captures).

One implementation so that the digest a builder records and the digest a device checks are computed
the same way: lowercase hex, file contents streamed in fixed chunks so a multi-GB model never has to
fit in memory.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK_BYTES = 1 << 20
"""Read size for streamed hashing: large enough to be fast, small enough for an edge box's memory."""


def sha256_bytes(data: bytes) -> str:
    """Return the lowercase hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, *, chunk_bytes: int = CHUNK_BYTES) -> str:
    """Return the lowercase hex SHA-256 of the file at ``path``, read in ``chunk_bytes`` pieces.

    Raises ``OSError`` (e.g. ``FileNotFoundError``) as is: callers know which domain error fits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()
