"""Where a version came from and what it was checked on: its parent, its weights, its lines.

A fine-tuned version (``pipeline run --init-from GROUP:VERSION``) starts from its parent's stored
training checkpoint (:class:`~edgeinspect_cloud.registry.records.WeightsRef`) and must not get worse
on any line the parent was checked on. So every registered version records, in
``registration.extra["lines"]``, each dataset it was evaluated on (name, where it lives, fingerprint,
test-split figures): its own training datasets and every line inherited from its parent. The next
fine-tune reads that list to know which earlier lines its gate must re-check.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from edgeinspect_cloud.registry.errors import RegistryError
from edgeinspect_cloud.registry.records import APPROVED, ModelVersion
from edgeinspect_cloud.registry.registry import ModelRegistry

LINES_KEY = "lines"
"""``registration.extra["lines"]``: the datasets a version was evaluated on (:class:`LineRecord`)."""
INIT_FROM_KEY = "init_from"
"""``registration.extra["init_from"]``: ``GROUP:VERSION`` of the parent a version was fine-tuned from."""

_REF = re.compile(r"^(?P<group>[A-Za-z0-9-]+):(?P<version>\d+|approved|latest)$")
Selector = int | Literal["approved", "latest"]


class LineRecord(BaseModel):
    """One dataset (a line) a version was evaluated on, and its figures on that dataset's split."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    source: str = Field(min_length=1)
    """Where the dataset lives: an absolute folder or an ``s3://``/``file://`` URL."""
    fingerprint: str = ""
    split: str = "test"
    images: int = Field(default=0, ge=0)
    metrics: dict[str, float] = Field(default_factory=dict)

    def to_json(self) -> dict[str, JsonValue]:
        data: dict[str, JsonValue] = self.model_dump(mode="json")
        return data


def parse_model_ref(text: str) -> tuple[str, Selector]:
    """``defect-cls:3`` -> ``("defect-cls", 3)``; ``:approved`` (latest approved) and ``:latest`` too."""
    match = _REF.match(text.strip())
    if not match:
        raise RegistryError(
            f"--init-from {text!r} is not GROUP:VERSION",
            hint="e.g. --init-from defect-cls:3, or defect-cls:approved for the latest approved version",
        )
    version = match["version"]
    selector: Selector = int(version) if version.isdigit() else version  # type: ignore[assignment]
    return match["group"], selector


def resolve_version(registry: ModelRegistry, text: str) -> ModelVersion:
    """The version ``text`` names (``GROUP:N``, ``GROUP:approved``, ``GROUP:latest``), or a clear error."""
    group, selector = parse_model_ref(text)
    if isinstance(selector, int):
        return registry.get(group, selector)
    found = registry.latest(group, APPROVED if selector == "approved" else None)
    if found is None:
        what = "approved version" if selector == "approved" else "version"
        raise RegistryError(
            f"{group} has no {what} in registry {registry.url} to fine-tune from",
            hint=f"known versions: {registry.version_numbers(group) or 'none'}; "
            "approve one (edgeinspect registry approve) or name a version number",
        )
    return found


def fetch_weights(registry: ModelRegistry, mv: ModelVersion, folder: Path) -> Path:
    """Download the version's training checkpoint (sha256-checked) into ``folder``; its path."""
    weights = mv.registration.weights
    if weights is None:
        raise RegistryError(
            f"{mv.group} version {mv.version} has no stored training weights (only its ONNX package, "
            "which cannot be fine-tuned): it was registered before versions kept their checkpoint",
            hint="fine-tune from a version registered by this edgeinspect (pipeline run ... register "
            "stores the checkpoint), or train from scratch without --init-from",
        )
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / weights.filename
    registry.store.download(weights.key, target, expected_sha256=weights.sha256)
    return target


def lines_of(mv: ModelVersion) -> list[LineRecord]:
    """The lines ``mv`` was evaluated on (empty for a version registered before lines were recorded)."""
    raw = mv.registration.extra.get(LINES_KEY)
    if not isinstance(raw, list):
        return []
    try:
        return [LineRecord.model_validate(item) for item in raw]
    except ValidationError as exc:
        raise RegistryError(
            f"{mv.group} version {mv.version} has a damaged lines record: {exc.errors()[0]['msg']}",
            hint="register the model again with edgeinspect pipeline run",
        ) from exc
