"""The model registry in object storage: groups, numbered versions, approval status, signed packages.

Open one with :meth:`ModelRegistry.open` (``s3://bucket/prefix`` or ``file:///folder``); see
:mod:`edgeinspect_cloud.registry.registry` for the layout and how concurrent writers are handled.
"""

from edgeinspect_cloud.registry.errors import RegistryError, VersionNotFoundError
from edgeinspect_cloud.registry.records import (
    APPROVED,
    PENDING,
    REJECTED,
    ModelVersion,
    PackageRef,
    Registration,
    Status,
    StatusChange,
)
from edgeinspect_cloud.registry.registry import ModelRegistry, PackageBuilder, current_user, manifest_from_tar

__all__ = [
    "APPROVED",
    "PENDING",
    "REJECTED",
    "ModelRegistry",
    "ModelVersion",
    "PackageBuilder",
    "PackageRef",
    "Registration",
    "RegistryError",
    "Status",
    "StatusChange",
    "VersionNotFoundError",
    "current_user",
    "manifest_from_tar",
]
