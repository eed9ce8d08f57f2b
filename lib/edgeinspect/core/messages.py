"""Typed, versioned records that travel on the Redis streams (see docs/architecture.md, "Streams").

Each record is a frozen dataclass with ``to_fields()`` (what XADD stores) and ``from_fields()`` (what a
reader gets back, bytes keys and values). A malformed entry raises ``MessageError`` naming the field, so
a consumer can dead-letter it with a reason instead of crashing or silently skipping it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeVar, get_args, get_origin, get_type_hints

from edgeinspect.core import safejson
from edgeinspect.core.errors import MessageError

SCHEMA_VERSION = 1
Verdict = Literal["ok", "defect", "error", "no_model"]
"""``no_model``: the frame was not inspected, because no model was loaded for the line (after the
worker's bounded wait for one); a state of the line, not an error."""
Encoding = Literal["png", "jpeg", "raw"]
VERDICTS: tuple[str, ...] = get_args(Verdict)
ENCODINGS: tuple[str, ...] = get_args(Encoding)

FieldValue = bytes | str | int | float
RawFields = Mapping[bytes, bytes] | Mapping[str, bytes] | Mapping[str, FieldValue]
R = TypeVar("R", bound="StreamRecord")


def now_ns() -> int:
    """Wall-clock time in ns: the timestamp every record carries (capture time for frames)."""
    return time.time_ns()


@dataclasses.dataclass(frozen=True, slots=True)
class Prediction:
    """One model's opinion on one frame (an element of a result's ``predictions`` JSON list)."""

    model: str
    version: str
    task: Literal["classification", "segmentation"]
    label: Literal["ok", "defect"]
    score: float
    threshold: float
    latency_ms: float
    role: Literal["primary", "shadow"] = "primary"
    defect_area_px: int = 0
    bbox: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 at the frame's resolution

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["bbox"] = list(self.bbox) if self.bbox is not None else None
        return data

    @classmethod
    def from_json(cls, data: Any) -> Prediction:
        if not isinstance(data, dict):
            raise MessageError(f"a prediction must be a JSON object, got {type(data).__name__}")
        try:
            bbox = data.get("bbox")
            return cls(
                model=str(data["model"]),
                version=str(data["version"]),
                task=data["task"],
                label=data["label"],
                score=float(data["score"]),
                threshold=float(data["threshold"]),
                latency_ms=float(data["latency_ms"]),
                role=data.get("role", "primary"),
                defect_area_px=int(data.get("defect_area_px", 0)),
                bbox=tuple(int(v) for v in bbox) if bbox is not None else None,  # type: ignore[arg-type]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MessageError(f"malformed prediction {safejson.clip(data)}: {exc}") from exc


def _text(raw: FieldValue) -> str:
    return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)


def _decode(name: str, kind: Any, raw: FieldValue) -> Any:
    """Turn one stored field back into its Python type, or raise ``MessageError`` naming it."""
    try:
        if kind is bytes:
            return raw if isinstance(raw, bytes) else str(raw).encode("utf-8")
        if kind is str:
            return _text(raw)
        if kind is int:
            return int(_text(raw))
        if kind is float:
            return float(_text(raw))
        if kind is bool:
            return _text(raw) == "1"
        return safejson.loads(raw if isinstance(raw, bytes) else _text(raw), what=f"field {name!r}")
    except (ValueError, UnicodeDecodeError) as exc:  # JsonInputError is a ValueError too
        raise MessageError(
            f"field {name!r} is not a valid {getattr(kind, '__name__', kind)}: {safejson.clip(str(exc), 300)}"
        ) from exc


def _encode(value: Any) -> FieldValue:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, bytes | str | int | float):
        return value
    return json.dumps(value, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Prediction):
        return value.to_json()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


class StreamRecord:
    """Shared ``to_fields``/``from_fields`` for the dataclass records below."""

    KIND: ClassVar[str]
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    def to_fields(self) -> dict[str, FieldValue]:
        """Fields for XADD; ``None`` values are omitted, ``v`` is the schema version."""
        fields: dict[str, FieldValue] = {"v": SCHEMA_VERSION, "kind": self.KIND}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if value is not None:
                fields[field.name] = _encode(value)
        return fields

    @classmethod
    def from_fields(cls: type[R], raw: RawFields) -> R:
        """Parse an entry read from a stream; ``MessageError`` on any malformed or missing field."""
        fields = {_text(k): v for k, v in raw.items()}
        version = fields.get("v")
        if version is None:
            raise MessageError(f"{cls.KIND} entry has no schema version field 'v'")
        if _decode("v", int, version) != SCHEMA_VERSION:
            raise MessageError(
                f"{cls.KIND} entry has schema version {_text(version)!r}; "
                f"this service reads {SCHEMA_VERSION}",
                hint="upgrade the reading service or the writer so both speak the same schema",
            )
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            if field.name not in fields:
                if field.name in cls.OPTIONAL or field.default is not dataclasses.MISSING:
                    continue
                raise MessageError(f"{cls.KIND} entry is missing field {field.name!r}")
            values[field.name] = _decode_field(cls.KIND, field.name, hints[field.name], fields[field.name])
        record = cls(**values)
        record._validate()
        return record

    def _validate(self) -> None:
        """Per-record invariants beyond types; override where the contract has them."""


def _decode_field(record: str, name: str, hint: Any, raw: FieldValue) -> Any:
    """One field of a ``record`` entry as its annotated type; a ``list[Prediction]`` field (a result's
    or a capture's ``predictions``) comes back as ``Prediction`` objects, not bare JSON."""
    value = _decode(name, _base_type(hint), raw)
    if hint != list[Prediction]:
        return value
    if not isinstance(value, list):
        raise MessageError(f"{record} entry: field {name!r} must be a JSON list, got {type(value).__name__}")
    return [Prediction.from_json(item) for item in value]


def _base_type(hint: Any) -> Any:
    """``bytes | None`` -> bytes; ``Literal['a']`` -> str; lists/dicts -> JSON (None marker)."""
    if get_origin(hint) in (list, dict, tuple):
        return None
    args = [a for a in get_args(hint) if a is not type(None)]
    if hint in (bytes, str, int, float, bool):
        return hint
    if args and all(isinstance(a, str) for a in args):
        return str
    if len(args) == 1 and args[0] in (bytes, str, int, float, bool):
        return args[0]
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class Frame(StreamRecord):
    """A camera frame on ``ei:frames:{line}``; ``ts_ns`` is the capture time."""

    KIND: ClassVar[str] = "frame"

    frame_id: str
    line: str
    camera: str
    ts_ns: int
    encoding: Encoding
    height: int
    width: int
    channels: int
    data: bytes
    source: str = ""
    part_id: str = ""  # the PLC's part id (serial) when a trigger sent one; travels to result and capture

    def _validate(self) -> None:
        if self.encoding not in ENCODINGS:
            raise MessageError(
                f"frame {self.frame_id}: unknown encoding {self.encoding!r}; use one of {ENCODINGS}"
            )
        if min(self.height, self.width, self.channels) <= 0:
            raise MessageError(f"frame {self.frame_id}: height, width and channels must be positive")


@dataclasses.dataclass(frozen=True, slots=True)
class Result(StreamRecord):
    """The verdict for one frame on ``ei:results:{line}``; ``error`` says why when verdict is error."""

    KIND: ClassVar[str] = "result"

    frame_id: str
    line: str
    ts_ns: int
    verdict: Verdict
    score: float
    predictions: list[Prediction]
    e2e_ms: float
    mask: bytes | None = None
    error: str = ""
    source: str = ""
    part_id: str = ""  # copied from the frame
    frame_entry: str = ""
    """The frame's entry id in ``ei:frames:{line}``, stamped at commit: the UI fetches the frame by it
    in one read, however many frames a burst or a backlog stored around it (empty: not known)."""

    def _validate(self) -> None:
        if self.verdict not in VERDICTS:
            raise MessageError(
                f"result {self.frame_id}: unknown verdict {self.verdict!r}; use one of {VERDICTS}"
            )


@dataclasses.dataclass(frozen=True, slots=True)
class Capture(StreamRecord):
    """A frame and its result, chosen by the capture policy, on ``ei:capture`` for the uploader."""

    KIND: ClassVar[str] = "capture"

    frame_id: str
    line: str
    ts_ns: int
    encoding: Encoding
    height: int
    width: int
    channels: int
    data: bytes
    verdict: Verdict
    score: float
    predictions: list[Prediction]
    reasons: list[str]
    e2e_ms: float = 0.0
    mask: bytes | None = None
    error: str = ""
    source: str = ""
    camera: str = ""
    attachments: bytes | None = None  # core.attachments: extra files stored beside the image
    part_id: str = ""

    @classmethod
    def from_frame_and_result(cls, frame: Frame, result: Result, reasons: list[str]) -> Capture:
        """Join a frame and its verdict; ``reasons`` says which capture rule chose it."""
        return cls(
            frame_id=frame.frame_id,
            line=frame.line,
            ts_ns=frame.ts_ns,
            encoding=frame.encoding,
            height=frame.height,
            width=frame.width,
            channels=frame.channels,
            data=frame.data,
            verdict=result.verdict,
            score=result.score,
            predictions=list(result.predictions),
            reasons=list(reasons),
            e2e_ms=result.e2e_ms,
            mask=result.mask,
            error=result.error,
            source=frame.source,
            camera=frame.camera,
            part_id=frame.part_id or result.part_id,
        )

    def _validate(self) -> None:
        if self.verdict not in VERDICTS:
            raise MessageError(f"capture {self.frame_id}: unknown verdict {self.verdict!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class Event(StreamRecord):
    """Something that happened (model loaded, job failed, frame dropped) on ``ei:events``."""

    KIND: ClassVar[str] = "event"

    type: str
    ts_ns: int
    detail: dict[str, Any]
    service: str = ""
    line: str = ""
    level: Literal["info", "warning", "error"] = "info"

    @classmethod
    def new(cls, type_: str, service: str, *, line: str = "", level: str = "info", **detail: Any) -> Event:
        """An event stamped now; ``detail`` must be JSON-serialisable."""
        return cls(type=type_, ts_ns=now_ns(), detail=dict(detail), service=service, line=line, level=level)  # type: ignore[arg-type]

    def _validate(self) -> None:
        if not isinstance(self.detail, dict):
            raise MessageError(f"event {self.type!r}: detail must be a JSON object")
