"""Architecture recipes of the multi-task network: named presets, and ``key=value`` overrides of them.

The multi-task network's cost and its mask quality pull against each other; :class:`MultiTaskArch`
names every choice ``bench.multitask_sweep`` benchmarks, so a run says exactly what it trained and
the same text rebuilds it (``--arch`` of ``edgeinspect pipeline run``, ``TrainConfig.arch``):

- ``width``: channels of the first encoder level (each deeper stage doubles them); ``None`` keeps
  the training profile's ``width``;
- ``stages``: encoder stages after the stem, each halving the resolution;
- ``stem``: the first layer's stride, 2 (3x3 convolution) or 4 (4x4 "patchify" convolution: a
  quarter of the pixels for every later layer, the mask head then works at stride 4);
- ``block``: ``plain`` 3x3 convolutions or ``separable`` (depthwise 3x3 + pointwise 1x1, ~8x fewer
  multiply-adds a layer at the same width);
- ``skips``: U-Net skip connections from the encoder into the decoder;
- ``input``: the model input ``HEIGHTxWIDTH``; ``None`` keeps the profile's;
- ``mask_weight``: weight of the mask loss beside the image loss; ``seg_warmup``: epochs at the
  start in which the image loss is off, so the shared features learn the masks first;
- ``input_norm``: ``fixed`` feeds the network the manifest's normalisation alone; ``image`` also
  standardises each frame's channels by their own mean and spread inside the graph, so a part's
  colour, exposure and camera gain (which vary from line to line) reach the network as one scale;
- ``views``: ``none`` answers from the frame alone; ``h`` averages the frame and its left-right
  mirror, ``hv`` also the upside-down mirror and both (2 or 4 passes inside the graph, at inference
  only: :mod:`edgeinspect_cloud.training.mirrored_views`).

Text form: a preset name, optionally followed by overrides, e.g. ``sep16`` or
``baseline,width=12,block=separable,input=320x112``; :func:`parse_arch` checks every field and says
what was wrong. This module imports no torch: the CLI validates ``--arch`` before anything slow runs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from edgeinspect_cloud.errors import TrainingError

Block = Literal["plain", "separable"]
BLOCKS: tuple[Block, ...] = ("plain", "separable")
InputNorm = Literal["fixed", "image"]
INPUT_NORMS: tuple[InputNorm, ...] = ("fixed", "image")
Views = Literal["none", "h", "hv"]
VIEWS: tuple[Views, ...] = ("none", "h", "hv")
STEMS = (2, 4)
MAX_STAGES = 5


def _check(arch: MultiTaskArch) -> None:
    """Reject recipes the network cannot build, with the field and the accepted range."""
    if arch.width is not None and not 2 <= arch.width <= 256:
        raise TrainingError(f"architecture width must be 2..256, got {arch.width}", hint="e.g. width=8")
    if not 1 <= arch.stages <= MAX_STAGES:
        raise TrainingError(
            f"architecture stages must be 1..{MAX_STAGES}, got {arch.stages}", hint="e.g. stages=3"
        )
    if arch.stem not in STEMS:
        raise TrainingError(f"architecture stem stride must be 2 or 4, got {arch.stem}", hint="stem=2")
    if arch.block not in BLOCKS:
        raise TrainingError(
            f"architecture block must be plain or separable, got {arch.block!r}", hint="block=separable"
        )
    if arch.input_norm not in INPUT_NORMS:
        raise TrainingError(
            f"architecture input_norm must be fixed or image, got {arch.input_norm!r}",
            hint="input_norm=image",
        )
    if arch.views not in VIEWS:
        raise TrainingError(f"architecture views must be none, h or hv, got {arch.views!r}", hint="views=hv")
    if arch.mask_weight <= 0 or arch.seg_warmup < 0:
        raise TrainingError(
            f"mask_weight must be > 0 and seg_warmup >= 0, got {arch.mask_weight} and {arch.seg_warmup}",
            hint="e.g. mask_weight=3,seg_warmup=2",
        )
    if arch.input is not None and min(arch.input) < arch.stride:
        raise TrainingError(
            f"input {arch.input[0]}x{arch.input[1]} is smaller than the network's stride {arch.stride}",
            hint="a larger input, or fewer stages / a stride-2 stem",
        )


@dataclass(frozen=True)
class MultiTaskArch:
    """One architecture (and its loss weighting) of the multi-task network; see the module doc."""

    width: int | None = None
    stages: int = 3
    stem: int = 2
    block: Block = "plain"
    skips: bool = True
    input: tuple[int, int] | None = None
    mask_weight: float = 1.0
    seg_warmup: int = 0
    input_norm: InputNorm = "fixed"
    views: Views = "none"

    def __post_init__(self) -> None:
        _check(self)

    @property
    def stride(self) -> int:
        """Total stride of the encoder: inputs are padded to a multiple of it inside the graph."""
        return int(self.stem * 2**self.stages)

    def text(self) -> str:
        """The ``key=value`` form that :func:`parse_arch` reads back to this recipe."""
        parts = []
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None:
                continue
            if item.name == "input":
                value = f"{value[0]}x{value[1]}"
            elif isinstance(value, bool):
                value = "yes" if value else "no"
            parts.append(f"{item.name}={value}")
        return ",".join(parts)


PRESETS: dict[str, MultiTaskArch] = {
    # the network as first shipped: 3 plain stages after a stride-2 stem, skips, equal loss weights
    "baseline": MultiTaskArch(),
    # the segmentation-first recipe: mask loss x3 and two epochs of masks alone before the image loss
    "seg-first": MultiTaskArch(mask_weight=3.0, seg_warmup=2),
    # twice the baseline's demo width
    "wide16": MultiTaskArch(width=16),
    # depthwise-separable blocks at width 16: about the multiply-adds of plain width 8
    "sep16": MultiTaskArch(width=16, block="separable"),
    # one stage deeper (stride 32): a wider receptive field for long scratches
    "deep4": MultiTaskArch(stages=4),
    # stride-4 stem at width 16: the cheapest per pixel; the mask head works at stride 4
    "stem4-w16": MultiTaskArch(width=16, stem=4),
    # the baseline at a larger model input (the profile's is 256x96 in demo)
    "in320": MultiTaskArch(input=(320, 112)),
    # the seg-first recipe on the separable width-16 network
    "sep16-seg": MultiTaskArch(width=16, block="separable", mask_weight=3.0, seg_warmup=2),
    # seg-first with each frame standardised in the graph (colour, exposure and gain cancel out),
    # answering for the frame and its three mirror images
    "robust": MultiTaskArch(mask_weight=3.0, seg_warmup=2, input_norm="image", views="hv"),
}
"""The named presets; ``bench.multitask_sweep`` trains each of them."""

DEFAULT_PRESET = "robust"
"""The preset ``--task multitask`` trains when no ``--arch`` is given: the ``seg-first`` weighting
(mask loss x3 and two mask-only epochs first, which beat the baseline's equal weights on image AP
and Dice in ``bench.multitask_sweep``) with per-image input normalisation, which lifted image AP on
the held-out surface families (``bench.heldout``) without costing the classic line (bench/README.md),
and four mirrored views (``mirrored_views``: ``hv`` ranked unseen surfaces best of ``none``, ``h``
and ``hv``, and keeps the line's speed goals on two cores with room to spare, bench/README.md)."""


def parse_arch(text: str | None) -> MultiTaskArch:
    """``"preset[,key=value...]"`` (or ``None``/empty: :data:`DEFAULT_PRESET`) -> the recipe.

    Text with no preset name (``width=8,...``, as :meth:`MultiTaskArch.text` records a recipe in
    checkpoints and manifests) starts from the field defaults, so a recipe recorded before a field
    existed reads back as it was trained (a field added later keeps its default there).
    """
    parts = [p.strip() for p in (text or DEFAULT_PRESET).split(",") if p.strip()]
    if not parts:
        parts = [DEFAULT_PRESET]
    base = MultiTaskArch()  # key=value text alone (what text() records) starts from the field defaults
    if "=" not in parts[0]:
        name = parts.pop(0)
        if name not in PRESETS:
            raise TrainingError(
                f"unknown multi-task architecture preset {name!r}",
                hint=f"use one of {', '.join(PRESETS)}, optionally followed by ,key=value overrides",
            )
        base = PRESETS[name]
    changes: dict[str, Any] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        changes[key.strip()] = _value(key.strip(), value.strip(), sep)
    return replace(base, **changes)


def parse_size(text: str) -> tuple[int, int]:
    """``HEIGHTxWIDTH`` (e.g. ``320x112``) -> ``(height, width)``; ``ValueError`` when it is not one."""
    height, _, width = text.strip().lower().partition("x")
    return (int(height), int(width))


_KEYS = (
    "width",
    "stages",
    "stem",
    "block",
    "skips",
    "input",
    "mask_weight",
    "seg_warmup",
    "input_norm",
    "views",
)


def _value(key: str, value: str, sep: str) -> Any:
    """One override's typed value; every mistake names the key and what it accepts."""
    if key not in _KEYS:
        raise TrainingError(
            f"unknown multi-task architecture field {key!r}", hint=f"fields are: {', '.join(_KEYS)}"
        )
    if not sep or not value:
        raise TrainingError(f"architecture field {key!r} has no value", hint=f"write {key}=VALUE")
    try:
        if key in ("width", "stages", "stem", "seg_warmup"):
            return int(value)
        if key == "mask_weight":
            return float(value)
        if key == "skips":
            if value.lower() not in ("yes", "no", "true", "false", "1", "0"):
                raise ValueError(value)
            return value.lower() in ("yes", "true", "1")
        if key == "input":
            return parse_size(value)
    except ValueError:
        raise TrainingError(
            f"architecture field {key}={value!r} is not valid",
            hint="width/stages/stem/seg_warmup are integers, mask_weight a number, skips yes/no, "
            "input HEIGHTxWIDTH (e.g. 256x96)",
        ) from None
    return value
