"""Errors of the model registry, rooted in the core hierarchy so the CLI prints them like any other."""

from __future__ import annotations

from edgeinspect.core.errors import EdgeInspectError


class RegistryError(EdgeInspectError):
    """A registry operation cannot be done: unknown group or version, bad name, a package that is missing."""


class VersionNotFoundError(RegistryError):
    """The group has no such version (or no versions at all)."""
