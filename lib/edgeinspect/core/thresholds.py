"""A line's own decision thresholds over the ones a model's package ships with.

A package carries the thresholds its quality engineer's policy chose on validation (manifest
``thresholds`` and ``operating_point``). A line often needs another operating point later (stricter
after an escape, looser after a run of false rejects) and must not wait for a new package. Two
device-local ways set one, both read by the inference worker for every verdict:

- ``EI_THRESHOLD_OVERRIDES`` on the inference worker (source ``setting``): a JSON object, e.g.
  ``{"defect-cls": {"image": 0.3}, "defect-seg:7": {"pixel": 0.6}}``;
- a ``set_threshold`` job (source ``job``, docs/jobs-protocol.md): the model manager keeps it in its
  state.json with who set it, when and why, and writes the device's table to Redis
  (:func:`edgeinspect.core.names.threshold_overrides_key`), where the workers read it.

A key is a model name (every version of it) or ``name:version`` (that version only). For each of
``image`` and ``pixel`` the most specific key that sets it wins (``name:version`` over ``name``);
for the same key a job wins over the setting. A value is a probability in [0, 1]; ``None`` means
"the manifest's". ``pixel`` only matters to segmenters.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from edgeinspect.core.errors import ConfigError
from edgeinspect.core.ids import IdentifierError, check_model_name, check_model_version

FIELDS: tuple[str, ...] = ("image", "pixel")
Source = Literal["manifest", "setting", "job"]
MAX_TABLE_BYTES = 256 * 1024
"""A real table is a few hundred bytes; anything near this is refused, not parsed."""


class ThresholdError(ConfigError, ValueError):
    """A threshold value or override key that may not be used; says which and what is allowed.

    A ``ValueError`` too, so a pydantic validator may raise it as is.
    """


def check_threshold(value: object, what: str = "threshold") -> float:
    """``value`` as a float in [0, 1]; ``ThresholdError`` for text, booleans, NaN, infinity, out of range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ThresholdError(
            f"{what} must be a number between 0 and 1, got {value!r}",
            hint="thresholds compare probabilities, e.g. 0.35",
        )
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise ThresholdError(
            f"{what} must be between 0 and 1, got {number!r}",
            hint="thresholds compare probabilities: 0 flags every part, 1 only a certain defect",
        )
    return number


def parse_threshold_text(text: str, what: str = "threshold") -> float:
    """A threshold typed on a command line or in a setting ("0.35")."""
    try:
        number = float(text)
    except ValueError:
        raise ThresholdError(
            f"{what} must be a number between 0 and 1, got {text!r}", hint="e.g. 0.35"
        ) from None
    return check_threshold(number, what)


def _optional_threshold(value: object) -> object:
    return None if value is None else check_threshold(value)


Threshold = Annotated[float | None, BeforeValidator(_optional_threshold)]


def override_key(name: str, version: str = "") -> str:
    """``name`` (every version) or ``name:version``."""
    return f"{name}:{version}" if version else name


def split_key(key: str) -> tuple[str, str]:
    """``(name, version)`` of a key (version ``""`` for every version); ``ThresholdError`` if malformed."""
    name, _, version = key.partition(":")
    try:
        check_model_name(name)
        if version or key.endswith(":"):
            check_model_version(version)
    except IdentifierError as exc:
        raise ThresholdError(
            f"override key {key!r}: {exc.message}", hint="use MODEL or MODEL:VERSION, e.g. defect-cls:7"
        ) from exc
    return name, version


class Override(BaseModel):
    """The thresholds one key sets (``None``: the manifest's) and where they came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: Threshold = None
    pixel: Threshold = None
    source: Literal["setting", "job"] = "job"
    set_by: str = Field(default="", max_length=256)
    set_at: float = 0.0
    job_id: str = Field(default="", max_length=64)
    reason: str = Field(default="", max_length=1024)

    @property
    def empty(self) -> bool:
        """Sets nothing (every value is the manifest's): the key can be forgotten."""
        return self.image is None and self.pixel is None

    def values(self) -> dict[str, float | None]:
        return {"image": self.image, "pixel": self.pixel}


@dataclass(frozen=True)
class Effective:
    """The thresholds a verdict uses for one model version, and where each came from."""

    image: float
    pixel: float | None
    image_source: Source = "manifest"
    pixel_source: Source = "manifest"
    manifest_image: float = 0.5
    manifest_pixel: float | None = None
    by: Override | None = None
    """The most specific override that set a value (who, when, why), None when nothing is overridden."""

    @property
    def overridden(self) -> bool:
        return self.image_source != "manifest" or self.pixel_source != "manifest"


class OverrideTable:
    """Overrides by key (see the module docstring); immutable once built."""

    def __init__(self, entries: Mapping[str, Override] | None = None) -> None:
        self.entries: dict[str, Override] = {}
        for key, entry in (entries or {}).items():
            split_key(key)
            if not entry.empty:
                self.entries[key] = entry

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OverrideTable) and self.entries == other.entries

    def __hash__(self) -> int:  # pragma: no cover - tables are compared, never hashed
        return hash(tuple(sorted(self.entries)))

    def __bool__(self) -> bool:
        return bool(self.entries)

    def layered(self, over: OverrideTable) -> OverrideTable:
        """This table with ``over``'s values on top, field by field for the same key."""
        merged = dict(self.entries)
        for key, entry in over.entries.items():
            below = merged.get(key)
            if below is None:
                merged[key] = entry
                continue
            values = {f: v for f, v in entry.values().items() if v is not None}
            merged[key] = entry.model_copy(update={**below.values(), **values})
        return OverrideTable(merged)

    def effective(self, name: str, version: str, image: float, pixel: float | None) -> Effective:
        """The thresholds for ``name:version`` whose manifest says ``image``/``pixel``."""
        found: dict[str, tuple[float | None, Source]] = {
            "image": (image, "manifest"),
            "pixel": (pixel, "manifest"),
        }
        by: Override | None = None
        for key in (override_key(name), override_key(name, version)):  # the more specific one last
            entry = self.entries.get(key)
            if entry is None:
                continue
            for field_name, value in entry.values().items():
                if value is not None and (field_name == "image" or pixel is not None):
                    found[field_name] = (value, entry.source)
                    by = entry
        new_image, image_source = found["image"]
        new_pixel, pixel_source = found["pixel"]  # a classifier (pixel None) has no pixel decision
        return Effective(
            image=float(new_image if new_image is not None else image),
            pixel=new_pixel,
            image_source=image_source,
            pixel_source=pixel_source,
            manifest_image=image,
            manifest_pixel=pixel,
            by=by,
        )

    def to_json(self) -> dict[str, Any]:
        return {key: entry.model_dump(mode="json") for key, entry in sorted(self.entries.items())}

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, raw: object, *, source: Literal["setting", "job"] | None, what: str) -> OverrideTable:
        """A table from a JSON object; ``ThresholdError`` naming the bad key or value.

        ``source`` stamps every entry (a setting, a job table); ``None`` keeps each entry's own (a
        worker's applied table, which mixes both).
        """
        if isinstance(raw, str | bytes):
            if len(raw) > MAX_TABLE_BYTES:
                raise ThresholdError(f"{what} is larger than {MAX_TABLE_BYTES} bytes", hint="fewer overrides")
            try:
                raw = json.loads(raw) if raw.strip() else {}
            except (ValueError, UnicodeDecodeError) as exc:
                raise ThresholdError(
                    f"{what} is not JSON: {exc}", hint='e.g. {"defect-cls": {"image": 0.3}}'
                ) from exc
        if not isinstance(raw, dict):
            raise ThresholdError(
                f"{what} must be a JSON object of MODEL[:VERSION] -> thresholds, got {type(raw).__name__}",
                hint='e.g. {"defect-cls": {"image": 0.3}}',
            )
        entries: dict[str, Override] = {}
        for key, value in raw.items():
            try:
                split_key(str(key))
            except ThresholdError as exc:
                raise ThresholdError(f"{what}: {exc.message}", hint=exc.hint) from exc
            if not isinstance(value, dict):
                raise ThresholdError(
                    f'{what}: {key!r} must map to an object like {{"image": 0.3}}, got {value!r}',
                    hint="keys: image, pixel",
                )
            try:
                entries[str(key)] = Override.model_validate(
                    value if source is None else {**value, "source": source}
                )
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(part) for part in first["loc"]) or "<root>"
                raise ThresholdError(
                    f"{what}: {key!r} is invalid: {where}: {first['msg']}",
                    hint="image and pixel are numbers between 0 and 1, or null for the manifest's",
                ) from exc
        return cls(entries)
