"""A seeded generator of KolektorSDD2-style data, written in the real dataset's folder layout.

``write_dataset(out, count=..., defect_ratio=..., seed=...)`` writes ``train/`` and ``test/`` folders
of ``NNNNN.png`` (RGB, 232 wide x 640 high by default) beside ``NNNNN_GT.png`` (0/255 mask), so every
tool that reads the synthetic set reads the real KolektorSDD2 (or a user's own images) the same way.

Each image is a function of ``(seed, index)`` alone, so a dataset is reproducible byte for byte and one
image can be regenerated without the others. Which images are defective, and which land in ``test/``,
is fixed by ``seed`` too (stratified, so both splits keep the requested imbalance).

Why it is hard: good parts carry high-contrast specks, stains, machining marks, specular bands and
lighting gradients; defects span an order of magnitude in size and contrast, many barely above the
texture. A threshold on the brightest/darkest pixel or on global contrast scores near chance.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edgeinspect_cloud.data import textures
from edgeinspect_cloud.data.defects import check_kinds, random_defect
from edgeinspect_cloud.data.scenes import FAMILY_SETS, FamilySet, family_names, render_scene
from edgeinspect_cloud.errors import DatasetError

FIRST_ID = 10000
"""Image numbers start here, as in KolektorSDD2 (``10000.png``, ``10000_GT.png``)."""

_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`write_dataset` wrote: where, how many images per split, and how many are defective."""

    root: str
    seed: int
    height: int
    width: int
    train_images: int
    train_defective: int
    test_images: int
    test_defective: int
    families: str = "classic"
    """The family set drawn from (``classic``, ``train`` or ``heldout``: see ``scenes.render_scene``)."""
    family_counts: dict[str, int] = field(default_factory=dict)
    """Images per surface family (``train``/``heldout`` sets; empty for ``classic``)."""
    surface: str | None = None
    """The one surface family of every part (``--surface``), or ``None`` for the set's mix."""
    image_families: dict[str, str] = field(default_factory=dict)
    """Each image's surface family by file stem (``train``/``heldout`` sets), for figures per family."""

    def to_json(self, *, per_image: bool = True) -> str:
        """One-line JSON for ``synth.json`` beside the splits; ``per_image=False``: the CLI's last line
        (without the per-image families, which would make it thousands of entries long)."""
        record = asdict(self)
        if not per_image:
            record.pop("image_families")
        return json.dumps(record, sort_keys=True)


def render_sample(
    rng: np.random.Generator,
    height: int,
    width: int,
    defective: bool,
    *,
    brightness_shift: float = 0.0,
    defect_kinds: tuple[str, ...] | None = None,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """One ``HxWx3`` RGB image and its ``HxW`` 0/255 mask; the mask is empty when not ``defective``.

    ``brightness_shift`` adds that many grey levels to every pixel (negative: a darker line, as after a
    lamp change) after everything random is drawn, so the same seed gives the same part, only darker;
    it moves brightness while leaving contrast and sharpness alone. ``defect_kinds`` draws defects of
    those kinds only (e.g. ``("blister",)``, a kind the default line never makes).
    """
    plane, angle, _ = textures.surface(rng, height, width)
    strength = float(rng.uniform(0.02, 0.06))
    lum = textures.lighting(rng, height, width) + strength * plane
    lum += textures.stains(rng, height, width, amount=float(rng.uniform(0.0, 2.5)))
    lum += textures.specks(rng, height, width, count=int(rng.poisson(rng.uniform(0.0, 10.0))))
    lum += textures.machining_marks(rng, height, width, angle)
    mask = np.zeros((height, width), bool)
    if defective:
        for _ in range(int(rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1]))):
            defect = random_defect(rng, height, width, strength, defect_kinds)
            lum += defect.effect
            mask |= defect.mask
    rgb = lum[:, :, None] * textures.tint(rng)[None, None, :] * 255.0
    blur = float(rng.uniform(0.0, 1.1))
    if blur > 0.3:
        rgb = textures.f32(cv2.GaussianBlur(rgb, (0, 0), blur))
    level = np.float32(rng.uniform(1.0, 6.0))
    shared = rng.standard_normal((height, width, 1), dtype=np.float32) * (0.7 * level)
    rgb = rgb + shared + rng.standard_normal((height, width, 3), dtype=np.float32) * (0.3 * level)
    if brightness_shift:
        rgb = rgb + np.float32(brightness_shift)
    image = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return image, (mask.astype(np.uint8) * 255)


def plan_labels(
    count: int, defect_ratio: float, test_fraction: float, seed: int
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Which of ``count`` images are defective and which go to ``test/``: seeded and stratified."""
    rng = np.random.default_rng([seed, 0x5EED])
    defective = np.zeros(count, bool)
    defective[rng.permutation(count)[: round(count * defect_ratio)]] = True
    test = np.zeros(count, bool)
    for label in (False, True):
        members = rng.permutation(np.flatnonzero(defective == label))
        test[members[: round(len(members) * test_fraction)]] = True
    return defective, test


def write_dataset(
    out_dir: str | Path,
    *,
    count: int = 1200,
    defect_ratio: float = 0.2,
    seed: int = 0,
    height: int = 640,
    width: int = 232,
    test_fraction: float = 0.3,
    brightness_shift: float = 0.0,
    defect_kinds: tuple[str, ...] | None = None,
    families: FamilySet = "classic",
    surface: str | None = None,
) -> SynthSummary:
    """Write ``count`` images into ``out_dir/train`` and ``out_dir/test`` and return what was written.

    ``brightness_shift`` and ``defect_kinds`` make a *shifted* line (see :func:`render_sample`): the
    drift monitor's and the retraining scenario's test data. ``families`` picks the family set:
    ``classic`` (the original line, the default), ``train`` (broad domain randomisation: twelve
    named surface families and procedural ones, lights, colours, defect-like distractors) or
    ``heldout`` (surfaces, lights and defect rules training never uses: an evaluation set only,
    which training refuses). The
    brightness and defect-kind options apply to ``classic`` only. ``surface`` narrows a ``train`` or
    ``heldout`` set to one of its families: a line whose parts all have that one surface (as a real
    line's do), with the set's lights, colours, camera and defect rules.

    Raises ``DatasetError`` for impossible settings or when ``out_dir`` already holds a dataset (a
    generator that silently mixed two seeds would poison every figure computed from it).
    """
    _check_settings(count, defect_ratio, height, width, test_fraction)
    if families not in FAMILY_SETS:
        raise DatasetError(f"unknown family set {families!r}", hint=f"use one of {', '.join(FAMILY_SETS)}")
    if families != "classic" and (brightness_shift or defect_kinds is not None):
        raise DatasetError(
            f"--brightness-shift and --defect-kinds apply to the classic family set, not {families!r}",
            hint="drop them, or use --families classic",
        )
    if surface is not None and (families == "classic" or surface not in family_names(families)):
        raise DatasetError(
            f"surface {surface!r} is not a family of the {families!r} set",
            hint=f"use one of {', '.join(family_names(families))} (or --families train/heldout)",
        )
    if defect_kinds is not None:
        try:
            check_kinds(defect_kinds)
        except ValueError as exc:
            raise DatasetError(str(exc), hint="pass --defect-kinds with known kinds") from exc
    root = Path(out_dir)
    defective, test = plan_labels(count, defect_ratio, test_fraction, seed)
    for split, used in (("train", not test.all()), ("test", test.any())):
        folder = root / split
        if folder.is_dir() and any(folder.iterdir()):
            raise DatasetError(
                f"{folder} already holds files", hint="write synthetic data into an empty folder"
            )
        if used:  # an empty split folder would be an error for every reader
            folder.mkdir(parents=True, exist_ok=True)
    family_counts: dict[str, int] = {}
    image_families: dict[str, str] = {}
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        if families == "classic":
            image, mask = render_sample(
                rng, height, width, bool(defective[index]),
                brightness_shift=brightness_shift, defect_kinds=defect_kinds,
            )  # fmt: skip
        else:
            image, mask, family = render_scene(
                rng, height, width, bool(defective[index]), families, surface=surface
            )
            family_counts[family] = family_counts.get(family, 0) + 1
        folder = root / ("test" if test[index] else "train")
        stem = f"{FIRST_ID + index:05d}"
        if families != "classic":
            image_families[stem] = family
        _write_png(folder / f"{stem}.png", np.ascontiguousarray(image[:, :, ::-1]))
        _write_png(folder / f"{stem}_GT.png", mask)
    summary = SynthSummary(
        root=str(root),
        seed=seed,
        height=height,
        width=width,
        train_images=int((~test).sum()),
        train_defective=int((defective & ~test).sum()),
        test_images=int(test.sum()),
        test_defective=int((defective & test).sum()),
        families=families,
        family_counts=dict(sorted(family_counts.items())),
        surface=surface,
        image_families=image_families,
    )
    (root / "synth.json").write_text(summary.to_json() + "\n")
    return summary


def _write_png(path: Path, pixels: npt.NDArray[np.uint8]) -> None:
    if not cv2.imwrite(str(path), pixels, _PNG):
        raise DatasetError(f"cannot write {path}", hint="check free disk space and permissions")


def _check_settings(count: int, defect_ratio: float, height: int, width: int, test_fraction: float) -> None:
    if count < 2:
        raise DatasetError(f"count must be at least 2, got {count}", hint="pass --count 2 or more")
    if not 0.0 <= defect_ratio <= 1.0:
        raise DatasetError(f"defect ratio must be within [0, 1], got {defect_ratio}", hint="e.g. 0.2")
    if not 0.0 <= test_fraction < 1.0:
        raise DatasetError(f"test fraction must be within [0, 1), got {test_fraction}", hint="e.g. 0.3")
    if height < 32 or width < 32:
        raise DatasetError(
            f"images must be at least 32x32, got {height}x{width}", hint="KolektorSDD2 is 640x232"
        )


def _synth_record(root: str | Path) -> dict[str, Any] | None:
    """A generated dataset's ``synth.json``; ``None`` when there is none or it cannot be read."""
    path = Path(root) / "synth.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def family_set_of(root: str | Path) -> str | None:
    """The family set a generated dataset was drawn from (its ``synth.json``); ``None``: not generated."""
    record = _synth_record(root)
    return None if record is None else str(record.get("families", "classic"))


def refuse_heldout(root: str | Path, *, new_line: bool = False) -> None:
    """``DatasetError`` when ``root`` is a held-out family set: it is for evaluation, never for training.

    Training on it would make every held-out figure meaningless, so training and the pipeline's data
    step call this on every dataset they are given. ``new_line`` (a fine-tune, or the good-parts-only
    model: the new-line cases) lets a ONE-surface held-out line through (``data synth --surface``):
    adapting to a surface from a few of its own frames is what those measure. The mixed held-out set
    is refused whatever the purpose.
    """
    record = _synth_record(root) or {}
    if record.get("families") != "heldout" or (new_line and record.get("surface")):
        return
    raise DatasetError(
        f"{root} is the held-out surface family set (synth.json says families=heldout): it is for "
        "evaluation only",
        hint="train on `edgeinspect data synth --families train` (or classic) and evaluate on this set "
        "with `edgeinspect evaluate --dataset`; a one-surface line (`--surface`) may be fine-tuned on",
    )
