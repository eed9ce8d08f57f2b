"""The one definition of the quality features, their fixed-bin histograms and the telemetry summary.

The edge worker summarises every window of frames with these functions, and the cloud pipeline
summarises its validation set with the *same* functions into the package manifest's ``baseline``;
the drift monitor then compares histograms over identical bin edges. Nothing here may depend on
where it runs: numpy only, no OpenCV, no clock.

Per-frame features (:data:`FEATURES` holds every feature's bin edges, version :data:`BINS_VERSION`):

- ``brightness``: mean luminance (BT.601 ``0.299 R + 0.587 G + 0.114 B``, 0..255) on the working grid;
- ``contrast``: standard deviation of that luminance;
- ``sharpness``: ``log10(1 + variance of the 4-neighbour Laplacian)`` of that luminance;
- ``cls_score`` / ``seg_score``: the primary classifier's / segmenter's image score (0..1);
- ``mask_area``: the segmenter's defect pixels as a fraction of the frame;
- ``latency_ms``: capture to result (edge only; no baseline).

The *working grid* is the luminance block-averaged by the smallest integer factor that brings its
longer side to at most :data:`WORKING_SIDE` pixels, so a frame and its dataset image of the same size
give the same figures and a 5 MP frame costs no more than a thumbnail. Rates (``defect_rate`` per
frame verdict, ``cls_defect_rate`` and ``seg_defect_rate`` per model label) are counts out of a total.

Summary (JSON, ``schema`` :data:`SCHEMA`, ``v`` :data:`VERSION`)::

    {"schema": "edgeinspect.telemetry", "v": 1, "bins": 1, "kind": "window" | "baseline",
     "line": "line-1", "thing": "press-7", "models": {"classification": "defect-cls:3", ...},
     "start_ns": ..., "end_ns": ..., "frames": 600, "verdicts": {"ok": 590, "defect": 9, "error": 1},
     "rates": {"defect_rate": {"n": 599, "k": 9}, "cls_defect_rate": {...}, "seg_defect_rate": {...}},
     "shadow": {"n": 0, "k": 0},     # frames with a shadow prediction, and those whose labels agreed
     "features": {"brightness": {"n": 600, "counts": [...], "sum": ..., "sumsq": ..., "min": ..., ...}},
     "extra": {...}}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from edgeinspect.core.errors import MessageError
from edgeinspect.core.postprocess import is_defect

SCHEMA = "edgeinspect.telemetry"
VERSION = 1
BINS_VERSION = 1
WORKING_SIDE = 256
Kind = Literal["window", "baseline"]
TASK_PREFIX = {"classification": "cls", "segmentation": "seg"}

BRIGHTNESS, CONTRAST, SHARPNESS = "brightness", "contrast", "sharpness"
CLS_SCORE, SEG_SCORE, MASK_AREA, LATENCY = "cls_score", "seg_score", "mask_area", "latency_ms"
DEFECT_RATE, CLS_DEFECT_RATE, SEG_DEFECT_RATE = "defect_rate", "cls_defect_rate", "seg_defect_rate"
IMAGE_FEATURES = (BRIGHTNESS, CONTRAST, SHARPNESS)


def _edges(low: float, high: float, bins: int) -> tuple[float, ...]:
    return tuple(float(v) for v in np.linspace(low, high, bins + 1))


FEATURES: dict[str, tuple[float, ...]] = {
    BRIGHTNESS: _edges(0.0, 256.0, 64),  # 4 grey levels per bin
    CONTRAST: _edges(0.0, 128.0, 64),  # 2 grey levels of standard deviation per bin
    SHARPNESS: _edges(0.0, 6.0, 60),  # 0.1 decade of Laplacian variance per bin
    CLS_SCORE: _edges(0.0, 1.0, 50),
    SEG_SCORE: _edges(0.0, 1.0, 50),
    MASK_AREA: (0.0, *(float(v) for v in np.logspace(-5, 0, 21))),  # [0,1e-5) holds "no defect"
    LATENCY: tuple(float(v) for v in np.logspace(-1, 5, 61)),  # 0.1 ms .. 100 s, 10 bins per decade
}
"""Bin edges of every feature (version :data:`BINS_VERSION`). A value outside the edges counts in the
first or last bin, so a histogram's counts always add up to its ``n``."""


def score_feature(task: str) -> str:
    """``cls_score`` or ``seg_score``."""
    return f"{TASK_PREFIX[task]}_score"


def rate_name(task: str) -> str:
    """``cls_defect_rate`` or ``seg_defect_rate``."""
    return f"{TASK_PREFIX[task]}_defect_rate"


# --------------------------------------------------------------------------- image features


@dataclass(frozen=True, slots=True)
class ImageFeatures:
    """The three image features of one frame (see the module docstring for their definitions)."""

    brightness: float
    contrast: float
    sharpness: float

    def as_dict(self) -> dict[str, float]:
        return {BRIGHTNESS: self.brightness, CONTRAST: self.contrast, SHARPNESS: self.sharpness}


def luminance(image: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """``HxW`` float32 luminance of an ``HxW``, ``HxWx1`` or ``HxWx3`` (RGB) image."""
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        return pixels.astype(np.float32)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        return pixels[:, :, 0].astype(np.float32)
    if pixels.ndim == 3 and pixels.shape[2] >= 3:
        rgb = pixels[:, :, :3].astype(np.float32)
        out: npt.NDArray[np.float32] = rgb[:, :, 0] * 0.299 + rgb[:, :, 1] * 0.587 + rgb[:, :, 2] * 0.114
        return out
    raise MessageError(f"cannot take the luminance of an image shaped {pixels.shape}", hint="pass HxWx3 RGB")


def working_grid(plane: npt.NDArray[np.float32], side: int = WORKING_SIDE) -> npt.NDArray[np.float32]:
    """Block-average by the smallest integer factor that makes the longer side at most ``side``."""
    height, width = plane.shape
    factor = max(1, math.ceil(max(height, width) / side))
    if factor == 1:
        return plane
    h, w = height // factor, width // factor
    blocks = plane[: h * factor, : w * factor].reshape(h, factor, w, factor)
    out: npt.NDArray[np.float32] = blocks.mean(axis=(1, 3), dtype=np.float32)
    return out


def image_features(image: npt.NDArray[Any]) -> ImageFeatures:
    """Brightness, contrast and sharpness of one decoded frame (``MessageError`` for a bad shape)."""
    grid = working_grid(luminance(image))
    if grid.shape[0] < 3 or grid.shape[1] < 3:
        raise MessageError(f"image {grid.shape} is too small for image features", hint="use >= 3x3 pixels")
    laplacian = 4.0 * grid[1:-1, 1:-1] - grid[:-2, 1:-1] - grid[2:, 1:-1] - grid[1:-1, :-2] - grid[1:-1, 2:]
    return ImageFeatures(
        brightness=float(grid.mean(dtype=np.float64)),
        contrast=float(grid.std(dtype=np.float64)),
        sharpness=float(math.log10(1.0 + float(laplacian.var(dtype=np.float64)))),
    )


# --------------------------------------------------------------------------- histograms and rates


@dataclass(slots=True)
class Histogram:
    """Counts of one feature over its fixed bins, plus the moments needed for a mean and a spread."""

    feature: str
    counts: npt.NDArray[np.int64]
    n: int = 0
    sum: float = 0.0
    sumsq: float = 0.0
    min: float = math.inf
    max: float = -math.inf

    @classmethod
    def empty(cls, feature: str) -> Histogram:
        if feature not in FEATURES:
            raise MessageError(f"unknown telemetry feature {feature!r}", hint=f"one of {sorted(FEATURES)}")
        return cls(feature, np.zeros(len(FEATURES[feature]) - 1, dtype=np.int64))

    def add(self, values: float | Iterable[float]) -> None:
        """Count one value or many (NaN and infinities are ignored: they have no bin)."""
        array = np.atleast_1d(np.asarray(values, dtype=np.float64)).ravel()
        array = array[np.isfinite(array)]
        if array.size == 0:
            return
        edges = np.asarray(FEATURES[self.feature])
        index = np.clip(np.searchsorted(edges, array, side="right") - 1, 0, len(edges) - 2)
        self.counts += np.bincount(index, minlength=len(edges) - 1).astype(np.int64)
        self.n += int(array.size)
        self.sum += float(array.sum())
        self.sumsq += float(np.square(array).sum())
        self.min = min(self.min, float(array.min()))
        self.max = max(self.max, float(array.max()))

    def merge(self, other: Histogram) -> None:
        """Add another histogram of the same feature into this one."""
        if other.feature != self.feature or other.counts.shape != self.counts.shape:
            raise MessageError(f"cannot merge histogram {other.feature!r} into {self.feature!r}")
        self.counts += other.counts
        self.n += other.n
        self.sum += other.sum
        self.sumsq += other.sumsq
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else math.nan

    @property
    def std(self) -> float:
        if not self.n:
            return math.nan
        return math.sqrt(max(0.0, self.sumsq / self.n - self.mean**2))

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"n": self.n, "counts": [int(c) for c in self.counts]}
        body.update(sum=round(self.sum, 6), sumsq=round(self.sumsq, 6))
        if self.n:
            body.update(min=self.min, max=self.max)
        return body

    @classmethod
    def from_json(cls, feature: str, body: Any) -> Histogram:
        hist = cls.empty(feature)
        try:
            counts = np.asarray(body["counts"], dtype=np.int64)
            if counts.shape != hist.counts.shape or (counts < 0).any():
                raise ValueError(
                    f"{counts.size} counts where bins version {BINS_VERSION} has {hist.counts.size}"
                )
            hist.counts = counts
            hist.n = int(body["n"])
            hist.sum, hist.sumsq = float(body.get("sum", 0.0)), float(body.get("sumsq", 0.0))
            hist.min = float(body.get("min", math.inf))
            hist.max = float(body.get("max", -math.inf))
        except (KeyError, TypeError, ValueError) as exc:
            raise MessageError(
                f"malformed {feature} histogram: {exc}", hint="check the summary's bins"
            ) from exc
        return hist


@dataclass(frozen=True, slots=True)
class Rate:
    """``k`` of ``n`` (defects out of frames judged, agreements out of frames compared)."""

    n: int = 0
    k: int = 0

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else math.nan

    def __add__(self, other: Rate) -> Rate:
        return Rate(self.n + other.n, self.k + other.k)

    def to_json(self) -> dict[str, int]:
        return {"n": self.n, "k": self.k}

    @classmethod
    def from_json(cls, body: Any) -> Rate:
        try:
            return cls(int(body["n"]), int(body["k"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise MessageError(f"malformed rate {body!r}: {exc}") from exc


# --------------------------------------------------------------------------- summaries


@dataclass
class TelemetrySummary:
    """A window of edge frames or a validation baseline, in one schema (see the module docstring)."""

    kind: Kind = "window"
    line: str = ""
    thing: str = ""
    models: dict[str, str] = field(default_factory=dict)
    start_ns: int = 0
    end_ns: int = 0
    frames: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    rates: dict[str, Rate] = field(default_factory=dict)
    shadow: Rate = field(default_factory=Rate)
    features: dict[str, Histogram] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def histogram(self, feature: str) -> Histogram:
        """The feature's histogram, created empty on first use."""
        if feature not in self.features:
            self.features[feature] = Histogram.empty(feature)
        return self.features[feature]

    def count_rate(self, name: str, hit: bool) -> None:
        self.rates[name] = self.rates.get(name, Rate()) + Rate(1, int(hit))

    def merge(self, other: TelemetrySummary) -> None:
        """Add ``other`` into this summary (time span widened, counts and histograms summed)."""
        self.start_ns = min(self.start_ns or other.start_ns, other.start_ns or self.start_ns)
        self.end_ns = max(self.end_ns, other.end_ns)
        self.frames += other.frames
        for verdict, count in other.verdicts.items():
            self.verdicts[verdict] = self.verdicts.get(verdict, 0) + count
        for name, rate in other.rates.items():
            self.rates[name] = self.rates.get(name, Rate()) + rate
        self.shadow = self.shadow + other.shadow
        for name, hist in other.features.items():
            self.histogram(name).merge(hist)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "v": VERSION,
            "bins": BINS_VERSION,
            "kind": self.kind,
            "line": self.line,
            "thing": self.thing,
            "models": dict(sorted(self.models.items())),
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "frames": self.frames,
            "verdicts": dict(sorted(self.verdicts.items())),
            "rates": {name: rate.to_json() for name, rate in sorted(self.rates.items())},
            "shadow": self.shadow.to_json(),
            "features": {name: hist.to_json() for name, hist in sorted(self.features.items())},
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, body: Any) -> TelemetrySummary:
        """Parse a summary; ``MessageError`` names a wrong schema, version, bins or field."""
        if not isinstance(body, Mapping) or body.get("schema") != SCHEMA:
            raise MessageError("not an edgeinspect telemetry summary (schema field missing or different)")
        if body.get("v") != VERSION or body.get("bins") != BINS_VERSION:
            raise MessageError(
                f"telemetry summary v{body.get('v')} bins {body.get('bins')}; this code reads "
                f"v{VERSION} bins {BINS_VERSION}",
                hint="upgrade the monitor or the device so both speak the same telemetry schema",
            )
        try:
            return cls(
                kind=body.get("kind", "window"),
                line=str(body.get("line", "")),
                thing=str(body.get("thing", "")),
                models={str(k): str(v) for k, v in dict(body.get("models", {})).items()},
                start_ns=int(body.get("start_ns", 0)),
                end_ns=int(body.get("end_ns", 0)),
                frames=int(body.get("frames", 0)),
                verdicts={str(k): int(v) for k, v in dict(body.get("verdicts", {})).items()},
                rates={str(k): Rate.from_json(v) for k, v in dict(body.get("rates", {})).items()},
                shadow=Rate.from_json(body.get("shadow", {"n": 0, "k": 0})),
                features={
                    str(k): Histogram.from_json(str(k), v)
                    for k, v in dict(body.get("features", {})).items()
                    if k in FEATURES  # a newer device's extra feature is skipped, not fatal
                },
                extra=dict(body.get("extra", {})),
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise MessageError(f"malformed telemetry summary: {exc}") from exc


def merge_summaries(summaries: Iterable[TelemetrySummary], **fields: Any) -> TelemetrySummary:
    """One summary adding up ``summaries`` (``fields`` set kind, line, thing, models of the result)."""
    total = TelemetrySummary(**fields)
    for summary in summaries:
        total.merge(summary)
    return total


def baseline_from_validation(
    images: Iterable[npt.NDArray[Any]],
    scores: Sequence[float],
    masks: Sequence[npt.NDArray[np.bool_]] | None = None,
    *,
    task: str = "classification",
    threshold: float = 0.5,
    models: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The drift baseline of a validation set: what the monitor compares the field with.

    ``images`` are the decoded frames (``HxWx3`` RGB at camera resolution, as the edge sees them),
    ``scores`` the model's image scores on them, ``masks`` (segmentation) its binary masks at frame
    resolution. ``threshold`` is the image threshold that makes a score a defect. Returns the JSON of a
    ``kind: baseline`` summary, ready for the manifest's ``baseline`` field.
    """
    if task not in TASK_PREFIX:
        raise MessageError(f"unknown task {task!r}", hint=f"one of {sorted(TASK_PREFIX)}")
    summary = TelemetrySummary(kind="baseline", models=dict(models or {}))
    count = 0
    for image in images:
        for name, value in image_features(image).as_dict().items():
            summary.histogram(name).add(value)
        count += 1
    if count != len(scores) or (masks is not None and len(masks) != count):
        raise MessageError(
            f"baseline needs one score (and mask) per image: {count} images, {len(scores)} scores, "
            f"{len(masks) if masks is not None else 'no'} masks"
        )
    summary.frames = count
    summary.histogram(score_feature(task)).add(list(scores))
    for score in scores:
        summary.count_rate(rate_name(task), is_defect(score, threshold))
    if masks is not None:
        summary.histogram(MASK_AREA).add([float(m.mean()) if m.size else 0.0 for m in masks])
    summary.extra = {"task": task, "threshold": threshold}
    return summary.to_json()
