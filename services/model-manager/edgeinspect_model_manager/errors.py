"""The model manager's own error types, each a subclass of the core hierarchy.

A job fails with exactly one of these; its ``message`` becomes the job's ``statusDetails.reason``, so it
must read well on a fleet dashboard ("sha256 mismatch for s3://...", "not enough disk space ...").
"""

from __future__ import annotations

import errno

from edgeinspect.core.errors import EdgeInspectError, MessageError, PackageError, StorageError

_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class JobDocumentError(MessageError):
    """A job document is not one this device understands (malformed JSON, unknown operation, bad field)."""


class DiskFullError(StorageError):
    """Not enough free space for a deployment, found before starting or as ENOSPC while writing."""


class SmokeTestError(PackageError):
    """The package loaded, but its golden input did not give its golden output on this device."""


class DeployError(EdgeInspectError):
    """A deployment step refused to go on (a conflict with what the device holds, a missing alias)."""


class JobInterrupted(Exception):
    """The service is stopping: leave the job IN_PROGRESS so it is resumed after the restart."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` or anything in its cause chain is an ENOSPC/EDQUOT ``OSError``.

    The core wraps OS errors in ``StorageError``/``PackageError`` (with the ``OSError`` as cause), so a
    full disk deep inside a download or an unpack is still recognised and reported as such.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _DISK_FULL_ERRNOS:
            return True
        current = current.__cause__ or current.__context__
    return False
