"""The model package manifest: what a model expects, what it outputs, and the hash of every file.

The manifest is the one place where preprocessing, thresholds and evaluation results travel from the
cloud to the edge, so that the device computes exactly what evaluation measured. It is signed as
bytes, so its serialisation must be deterministic: :meth:`Manifest.to_json_bytes` sorts keys and
fixes separators, and a device verifies the bytes it received, never a re-serialisation.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    model_validator,
)

from edgeinspect.core import safejson
from edgeinspect.core.errors import PackageError
from edgeinspect.core.package.version import parse_version

SCHEMA_VERSION: Literal[1] = 1
"""The only manifest schema this code reads and writes; anything else is refused, not guessed at."""

MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
MAX_MANIFEST_BYTES = 1 << 20
"""A real manifest is a few KB; anything near this is refused before it is read, let alone parsed."""
MAX_SIGNATURE_BYTES = 64 * 1024
"""An Ed25519 signature file is well under 1 KB."""
MODEL_FILE = "model.onnx"
INT8_MODEL_FILE = "model.int8.onnx"
GOLDEN_INPUT_FILE = "golden/input.npy"
UNHASHED_FILES = frozenset({MANIFEST_FILE, SIGNATURE_FILE})
"""Files that cannot list their own hash: the manifest and the signature over it."""

NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$"
"""Model names: the same rule as SageMaker Edge ``LoadModel`` names, so a name works on both APIs."""

_SHA256_PATTERN = r"^[0-9a-f]{64}$"
_RELPATH_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

Task = Literal["classification", "segmentation", "multitask", "anomaly"]
"""``multitask``: one model, one pass, both answers (an image score output AND a mask output).
``anomaly``: trained on good parts only; the same two outputs (a score and an anomaly map), one verdict."""
TWO_OUTPUT_TASKS: frozenset[str] = frozenset({"multitask", "anomaly"})
"""Tasks whose model answers with an image score output first and a mask output second."""
Colour = Literal["RGB", "BGR", "GRAY"]
InputDtype = Literal["uint8", "float16", "float32"]
OutputMeaning = Literal[
    "defect_probability",
    "defect_logit",
    "class_probabilities",
    "class_logits",
    "mask_probability",
    "mask_logit",
]


def _check_version(value: str) -> str:
    """Re-raise a bad version as ``ValueError`` so pydantic reports it with the field's location."""
    try:
        parse_version(value)
    except PackageError as exc:
        raise ValueError(exc.message) from exc
    return value


def _check_relpath(value: str) -> str:
    """Accept only plain relative POSIX paths, so a manifest can never point outside its package."""
    parts = value.split("/")
    if not all(_RELPATH_PART.match(part) for part in parts):
        raise ValueError(f"{value!r} is not a plain relative path (letters, digits, '_', '.', '-', '/')")
    return value


RelPath = Annotated[str, AfterValidator(_check_relpath)]
Sha256Hex = Annotated[str, Field(pattern=_SHA256_PATTERN)]
Dim = Annotated[int, Field(ge=-1)]


class _Strict(BaseModel):
    """Base of every manifest model: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Framework(_Strict):
    """The training framework the model came from, for provenance (e.g. ``torch`` ``2.13.0``)."""

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)


class Resize(_Strict):
    """How a camera frame becomes the model's height x width.

    ``stretch`` ignores aspect ratio; ``letterbox`` scales to fit and centres on a padded canvas;
    ``pad`` pads (or crops) without scaling. The edge must use the same policy as evaluation did.
    """

    height: int = Field(gt=0)
    width: int = Field(gt=0)
    mode: Literal["stretch", "letterbox", "pad"]


class Normalisation(_Strict):
    """``x = (pixel * scale - mean) / std`` per channel, in the input's colour order."""

    mean: list[float] = Field(min_length=1)
    std: list[float] = Field(min_length=1)
    scale: float = Field(default=1.0 / 255.0, gt=0)

    @model_validator(mode="after")
    def _same_lengths(self) -> Normalisation:
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean has {len(self.mean)} values but std has {len(self.std)}")
        if any(value == 0 for value in self.std):
            raise ValueError("std must not contain 0 (it divides)")
        return self


class InputSpec(_Strict):
    """The model's single image input: tensor name, NCHW shape (-1 = dynamic), dtype and preprocessing.

    ``normalisation_in_graph`` means the ONNX graph takes raw ``uint8`` pixels and normalises inside;
    the edge then must not normalise again (``normalisation`` is kept for documentation and parity).
    """

    name: str = Field(min_length=1)
    shape: list[Dim] = Field(min_length=4, max_length=4)
    dtype: InputDtype
    colour: Colour
    resize: Resize
    normalisation: Normalisation
    normalisation_in_graph: bool = False

    @property
    def channels(self) -> int:
        """Channels implied by the colour order (1 for GRAY, else 3)."""
        return 1 if self.colour == "GRAY" else 3

    @model_validator(mode="after")
    def _consistent(self) -> InputSpec:
        _, channels, height, width = self.shape
        if channels not in (-1, self.channels):
            raise ValueError(f"shape has {channels} channels but colour {self.colour} has {self.channels}")
        if (height, width) != (self.resize.height, self.resize.width) and -1 not in (height, width):
            raise ValueError(
                f"shape H x W {height}x{width} differs from resize {self.resize.height}x{self.resize.width}"
            )
        if len(self.normalisation.mean) not in (1, self.channels):
            raise ValueError(
                f"normalisation needs 1 or {self.channels} values, got {len(self.normalisation.mean)}"
            )
        if self.normalisation_in_graph and self.dtype != "uint8":
            raise ValueError("normalisation_in_graph requires dtype uint8 (the graph takes raw pixels)")
        return self


class OutputSpec(_Strict):
    """One model output: tensor name, what its values mean, and its shape (-1 = dynamic)."""

    name: str = Field(min_length=1)
    meaning: OutputMeaning
    shape: list[Dim] = Field(min_length=1)


class Thresholds(_Strict):
    """Decision thresholds chosen at evaluation: image score and (segmentation) per-pixel score."""

    image: float
    pixel: float | None = None


class OperatingPoint(_Strict):
    """How the image threshold was chosen, and what it did on the split it was chosen on.

    ``policy`` is the quality engineer's rule (``best-f1``, ``target-recall:0.99``,
    ``max-false-reject:0.01``); the figures are the decision ``score >= threshold`` on ``split``
    (validation). ``met`` is false when that split could not satisfy the policy (too few defects or
    good parts to judge it, or no threshold reaching the target): the threshold is then the closest
    one, and a reviewer should look. ``None`` figures are undefined (no defective or no good image).
    """

    policy: str = Field(min_length=1, max_length=64)
    threshold: float = Field(ge=0, le=1)
    split: str = Field(default="validation", min_length=1, max_length=32)
    met: bool = True
    precision: float | None = Field(default=None, ge=0, le=1)
    recall: float | None = Field(default=None, ge=0, le=1)
    false_reject_rate: float | None = Field(default=None, ge=0, le=1)
    f1: float | None = Field(default=None, ge=0, le=1)
    images: int = Field(default=0, ge=0)
    defective: int = Field(default=0, ge=0)
    false_rejects: int = Field(default=0, ge=0)
    escapes: int = Field(default=0, ge=0)


Variant = Literal["fp32", "int8"]
"""A model file's precision: ``fp32`` is ``model.onnx``, ``int8`` is ``model.int8.onnx``."""


class Int8Gate(_Strict):
    """int8 against fp32 on one image set, verdicts at the shipped image threshold.

    ``set`` is ``validation`` (the held-out split) or ``shifted`` (frames the model was not tuned on:
    a ``--shift-data`` folder, or the validation frames under deterministic photometric shifts, as
    ``source`` says). ``verdict_agreement`` is the share of the judged images (all but ``borderline``
    ones, whose fp32 score lies within ``margin`` of ``threshold``) given the same verdict by both;
    ``false_rejects_*`` count good parts (label 0) called defective, ``None`` without labels.
    """

    set: str = Field(min_length=1, max_length=32)
    source: str = Field(default="", max_length=200)
    images: int = Field(ge=0)
    threshold: float
    margin: float = Field(default=0.0, ge=0)
    borderline: int = Field(default=0, ge=0)
    verdict_agreement: float = Field(ge=0, le=1)
    min_agreement: float = Field(ge=0, le=1)
    passed: bool
    good: int | None = Field(default=None, ge=0)
    false_rejects_fp32: int | None = Field(default=None, ge=0)
    false_rejects_int8: int | None = Field(default=None, ge=0)


class Precision(_Strict):
    """Which model file a device loads by default, and the gate figures behind that choice.

    ``default`` is ``int8`` only when every int8 gate passed; ``fp32`` (``model.onnx``) is always in the
    package as the fallback. ``reason`` says why int8 is not the default (gate failed: which set,
    agreement and tolerance; or no int8 was built). A package without this field predates it: its
    default is fp32, whatever files it holds.
    """

    default: Variant
    fallback: Literal["fp32"] = "fp32"
    reason: str | None = Field(default=None, max_length=500)
    gates: list[Int8Gate] = Field(default_factory=list, max_length=8)


class TilingHint(_Strict):
    """How the model wants frames larger than its input tiled (``docs/model-contract.md``).

    A tile is ``tile_height x tile_width`` frame pixels (default: the input size, for a model trained
    on crops at the camera's resolution; a model trained on whole frames resized down gives its
    training frame size, so every tile is shrunk as training shrank). ``mode``: ``auto`` tiles frames
    at least ``min_scale`` tiles long on an axis, ``on`` every frame larger than a tile, ``off`` never
    (a model that needs the whole part in view). Unset fields defer to the line's settings.
    """

    mode: Literal["auto", "on", "off"] = "auto"
    tile_height: int | None = Field(default=None, gt=0)
    tile_width: int | None = Field(default=None, gt=0)
    overlap: float | None = Field(default=None, ge=0, lt=0.9)
    min_scale: float | None = Field(default=None, ge=1)
    blend: Literal["max", "mean"] | None = None


class Golden(_Strict):
    """Where the smoke-test input and expected outputs live inside the package (filled by the builder)."""

    input: RelPath = GOLDEN_INPUT_FILE
    outputs: dict[str, RelPath] = Field(min_length=1)


class Manifest(_Strict):
    """Everything a device needs to trust, load, feed and judge a model; signed as exact bytes."""

    schema_version: Literal[1] = SCHEMA_VERSION
    name: str = Field(pattern=NAME_PATTERN, max_length=63)
    version: Annotated[str, Field(max_length=64), AfterValidator(_check_version)]
    task: Task
    framework: Framework
    created_at: AwareDatetime
    input: InputSpec
    outputs: list[OutputSpec] = Field(min_length=1)
    thresholds: Thresholds
    metrics: dict[str, float] = Field(default_factory=dict)
    dataset_fingerprint: str = Field(min_length=1)
    files: dict[RelPath, Sha256Hex] = Field(default_factory=dict)
    golden: Golden | None = None
    baseline: dict[str, JsonValue] | None = None
    operating_point: OperatingPoint | None = None
    """Left out of the JSON when ``None``, so a package without one reads on devices that predate it."""
    precision: Precision | None = None
    """Left out of the JSON when ``None`` (like ``operating_point``); ``None`` means fp32 by default."""
    tiling: TilingHint | None = None
    """How to tile frames larger than the input; left out of the JSON when ``None``, like the above."""

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        names = [output.name for output in self.outputs]
        if len(set(names)) != len(names):
            raise ValueError(f"output names must be unique, got {names}")
        if self.task in ("segmentation", *TWO_OUTPUT_TASKS) and self.thresholds.pixel is None:
            raise ValueError(f"a {self.task} model needs thresholds.pixel")
        if self.task in TWO_OUTPUT_TASKS:
            _check_multitask_outputs(self.outputs, self.task)
        if UNHASHED_FILES & set(self.files):
            raise ValueError(f"files must not list {sorted(UNHASHED_FILES)} (they cannot hash themselves)")
        int8_default = self.precision is not None and self.precision.default == "int8"
        if int8_default and self.files and INT8_MODEL_FILE not in self.files:
            raise ValueError(f"precision.default is int8 but files do not list {INT8_MODEL_FILE}")
        if self.golden is not None and not set(self.golden.outputs) <= set(names):
            unknown = sorted(set(self.golden.outputs) - set(names))
            raise ValueError(f"golden outputs {unknown} are not among the model outputs {names}")
        return self

    @property
    def package_filename(self) -> str:
        """``{name}-{version}.tar.gz``, the name the package is stored and downloaded under."""
        return f"{self.name}-{self.version}.tar.gz"

    @property
    def has_int8(self) -> bool:
        """Whether the package carries a quantized ``model.int8.onnx`` beside ``model.onnx``."""
        return INT8_MODEL_FILE in self.files

    @property
    def default_variant(self) -> Variant:
        """The precision a device loads unless told otherwise: the manifest's choice, else fp32."""
        return self.precision.default if self.precision is not None else "fp32"

    def output(self, name: str) -> OutputSpec:
        """Return the output called ``name``; ``KeyError`` if the model has none."""
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def to_json_bytes(self) -> bytes:
        """Serialise deterministically (sorted keys, fixed indent, trailing newline): the signed bytes."""
        data = self.model_dump(mode="json")
        for optional in ("operating_point", "precision", "tiling"):
            if data.get(optional) is None:
                data.pop(optional, None)
        text = json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False)
        return (text + "\n").encode("utf-8")

    @classmethod
    def from_json_bytes(
        cls, data: bytes, *, source: str = MANIFEST_FILE, max_bytes: int = MAX_MANIFEST_BYTES
    ) -> Manifest:
        """Parse manifest bytes, raising ``PackageError`` that names the bad field or schema version.

        ``max_bytes`` caps what is parsed (a device reads untrusted bytes); only the builder, which
        parses its own output, lifts it.
        """
        raw = _decode_json(data, source, max_bytes)
        version = raw.get("schema_version")
        if version != SCHEMA_VERSION:
            raise PackageError(
                f"{source}: unsupported manifest schema_version {version!r} "
                f"(this device reads {SCHEMA_VERSION})",
                hint="rebuild the package with a matching edgeinspect version, or upgrade the device",
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
            )
            raise PackageError(f"{source} is invalid: {problems}", hint="rebuild the package") from exc


_IMAGE_MEANINGS = frozenset({"defect_probability", "defect_logit", "class_probabilities", "class_logits"})
_MASK_MEANINGS = frozenset({"mask_probability", "mask_logit"})


def _check_multitask_outputs(outputs: list[OutputSpec], task: str = "multitask") -> None:
    """A multi-task (or anomaly) model declares one image-score output, FIRST, and one mask output.

    First, because whatever reads one score per model (the agent's shadow comparison and capture)
    reads ``outputs[0]``: for a multi-task model that is its classification score.
    """
    meanings = [output.meaning for output in outputs]
    images = [m for m in meanings if m in _IMAGE_MEANINGS]
    masks = [m for m in meanings if m in _MASK_MEANINGS]
    if len(images) != 1 or len(masks) != 1 or meanings[0] not in _IMAGE_MEANINGS:
        raise ValueError(
            f"a {task} model needs one image-score output (defect_probability, ...) first and one "
            f"mask output (mask_probability, ...), got meanings {meanings}"
        )


def _decode_json(data: bytes, source: str, max_bytes: int) -> dict[str, Any]:
    """Decode JSON bytes into an object, turning every failure into a ``PackageError``."""
    try:
        raw = safejson.loads(data, what=source, max_bytes=max_bytes)
    except safejson.JsonInputError as exc:
        raise PackageError(
            f"{source} is not valid UTF-8 JSON: {exc.message}", hint="rebuild the package"
        ) from exc
    if not isinstance(raw, dict):
        raise PackageError(
            f"{source} must hold a JSON object, got {type(raw).__name__}", hint="rebuild the package"
        )
    return raw


def utc_now() -> datetime:
    """The current time, timezone-aware, for ``created_at`` (a naive time is refused by the model)."""
    return datetime.now(UTC)
