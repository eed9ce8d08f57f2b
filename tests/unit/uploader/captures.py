"""Seeded synthetic captures for the uploader tests: real encoded images in ``Capture`` records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from edgeinspect.core.images import encode, encode_mask
from edgeinspect.core.messages import Capture, Prediction, Verdict

DAY_NS = 86_400 * 1_000_000_000
T0 = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z

KINDS: dict[str, tuple[Verdict, tuple[str, ...]]] = {
    "good": ("ok", ("sample_good",)),
    "uncertain": ("ok", ("near_threshold",)),
    "defect": ("defect", ("defect",)),
    "error": ("error", ("error",)),
}


def make_capture(
    rng: np.random.Generator,
    *,
    line: str,
    frame_id: str,
    ts_ns: int = T0,
    kind: str = "defect",
    height: int = 48,
    width: int = 64,
    encoding: Literal["png", "jpeg", "raw"] = "png",
    mask: bool | None = None,
) -> Capture:
    """A capture whose image is seeded noise (incompressible, so its size is predictable)."""
    verdict, reasons = KINDS[kind]
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    with_mask = verdict == "defect" if mask is None else mask
    mask_png = encode_mask(pixels[:, :, 0] > 200) if with_mask else None
    score = {"ok": 0.1, "defect": 0.9, "error": 0.0}[verdict]
    if kind == "uncertain":
        score = 0.48
    preds = [Prediction("cls", "1", "classification", "defect" if score >= 0.5 else "ok", score, 0.5, 2.0)]
    return Capture(
        frame_id=frame_id,
        line=line,
        ts_ns=ts_ns,
        encoding=encoding,
        height=height,
        width=width,
        channels=3,
        data=encode(pixels, encoding),
        verdict=verdict,
        score=score,
        predictions=preds if verdict != "error" else [],
        reasons=list(reasons),
        e2e_ms=12.5,
        mask=mask_png,
        error="agent unavailable" if verdict == "error" else "",
        source="synthetic.png",
        camera="cam0",
    )


def make_captures(
    seed: int,
    line: str,
    kinds: Sequence[str],
    *,
    start_ns: int = T0,
    step_ns: int = 1_000_000_000,
    height: int = 48,
    width: int = 64,
    mask: bool | None = None,
) -> list[Capture]:
    """One capture per kind, frame ids ``f0000``.., one ``step_ns`` apart from ``start_ns``."""
    rng = np.random.default_rng(seed)
    out: list[Capture] = []
    for i, kind in enumerate(kinds):
        ts_ns = start_ns + i * step_ns
        out.append(
            make_capture(
                rng,
                line=line,
                frame_id=f"f{i:04d}",
                ts_ns=ts_ns,
                kind=kind,
                height=height,
                width=width,
                mask=mask,
            )
        )
    return out
