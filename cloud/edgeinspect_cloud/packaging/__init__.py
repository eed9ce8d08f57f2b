"""Signed model packages from compiled models: drafts (version-free) and the device-side check.

Build: :meth:`PackageDraft.create` once after compile, then :meth:`PackageDraft.build` for the version
the registry assigns. Check: :func:`check_package` verifies and smoke-tests a package as a device would.
"""

from edgeinspect_cloud.packaging.draft import PLACEHOLDER_VERSION, PackageDraft, precision_from_report
from edgeinspect_cloud.packaging.verify import FP32_TOLERANCE, INT8_TOLERANCE, PackageCheck, check_package

__all__ = [
    "FP32_TOLERANCE",
    "INT8_TOLERANCE",
    "PLACEHOLDER_VERSION",
    "PackageCheck",
    "PackageDraft",
    "check_package",
    "precision_from_report",
]
