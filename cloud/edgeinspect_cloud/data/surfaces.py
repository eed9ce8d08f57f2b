"""More surface families for domain randomisation: training families and a HELD-OUT set.

Each family is a function ``(rng, height, width) -> (plane, angle)``: a zero-mean, unit-std float32
luminance texture and the direction of its dominant lines in degrees (defects "along the grain" and
benign marks follow it). The classic four (brushed, grain, cast, plastic) live in
:mod:`edgeinspect_cloud.data.textures`; :data:`TRAIN_FAMILIES` adds eight more and
a procedural family (a random composition of generic texture primitives, new for every part), and
:data:`HELDOUT_FAMILIES` are four surfaces built by rules no training family uses (knurled
cross-hatch, galvanised spangle crystals, twill carbon weave, perforated sheet). Training and the
default pipeline never draw a held-out family: they exist to measure how a model fares on a surface
it has never seen.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from edgeinspect_cloud.data import textures
from edgeinspect_cloud.data.procedural import procedural
from edgeinspect_cloud.data.textures import Plane, smooth_noise

Family = Callable[[np.random.Generator, int, int], tuple[Plane, float]]


def _standardise(plane: Plane) -> Plane:
    plane = textures.f32(plane)
    std = float(plane.std())
    return textures.f32((plane - plane.mean()) / (std if std > 1e-6 else 1.0))


def _axes(rng: np.random.Generator, height: int, width: int, angle: float) -> tuple[Plane, Plane]:
    """Pixel coordinates rotated so ``u`` runs along ``angle`` (degrees) and ``v`` across it."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    theta = np.deg2rad(angle)
    u = xs * np.cos(theta) + ys * np.sin(theta)
    v = -xs * np.sin(theta) + ys * np.cos(theta)
    return textures.f32(u), textures.f32(v)


def _main_angle(rng: np.random.Generator) -> float:
    """Mostly along or across the part (0 or 90 degrees), sometimes oblique."""
    if rng.random() < 0.75:
        return float(rng.choice([0.0, 90.0]) + rng.normal(0.0, 3.0))
    return float(rng.uniform(0.0, 180.0))


# --- training families -------------------------------------------------------------------------


def classic(kind: str) -> Family:
    """One of the original four families (:data:`textures.SURFACES`) in the family signature."""

    def draw(rng: np.random.Generator, height: int, width: int) -> tuple[Plane, float]:
        if kind == "brushed":
            return textures.brushed(rng, height, width)
        plane = {"grain": textures.grain, "cast": textures.cast, "plastic": textures.plastic}[kind](
            rng, height, width
        )
        return plane, float(rng.choice([0.0, 90.0]))

    return draw


def sandblasted(rng: np.random.Generator, height: int, width: int) -> tuple[Plane, float]:
    """Sand-blasted metal: dense 1-px grit over a faint mottling, no direction."""
    grit = rng.standard_normal((height, width)).astype(np.float32)
    grit = textures.f32(cv2.GaussianBlur(grit, (0, 0), float(rng.uniform(0.5, 1.0))))
    plane = _standardise(grit) + 0.3 * smooth_noise(rng, height, width, int(rng.integers(15, 50)))
    return _standardise(plane), float(rng.choice([0.0, 90.0]))


def woven(rng: np.random.Generator, height: int, width: int) -> tuple[Plane, float]:
    """Woven fabric: plain weave of warp and weft threads, each cell a rounded thread segment."""
    angle = _main_angle(rng)
    u, v = _axes(rng, height, width, angle)
    period = float(rng.uniform(4.0, 10.0))
    parity = (np.floor(u / period) + np.floor(v / period)) % 2
    warp = np.abs(np.sin(np.pi * v / period))
    weft = np.abs(np.sin(np.pi * u / period))
    plane = np.where(parity > 0, warp, weft) + 0.25 * rng.standard_normal((height, width))
    return _standardise(textures.f32(cv2.GaussianBlur(textures.f32(plane), (0, 0), 0.6))), angle


def wood(rng: np.random.Generator, height: int, width: int) -> tuple[Plane, float]:
    """Wood-like grain: long wavy growth lines with fine streaks along them."""
    angle = _main_angle(rng)
    _, v = _axes(rng, height, width, angle)
    period = float(rng.uniform(6.0, 18.0))
    warp = 3.0 * period * smooth_noise(rng, height, width, int(rng.integers(40, 120)))
    rings = np.sin(2 * np.pi * (v + warp) / period) ** 3
    fine = cv2.filter2D(
        rng.standard_normal((height, width)).astype(np.float32), -1, textures._motion_kernel(31, angle)
    )
    plane = rings + 0.6 * _standardise(textures.f32(fine))
    return _standardise(textures.f32(plane)), angle


def orange_peel(rng: np.random.Generator, height: int, width: int) -> tuple[Plane, float]:
    """Painted, orange-peel finish: small smooth bumps seen under raking light (relief shading)."""
    relief = smooth_noise(rng, height, width, int(rng.integers(3, 9)))
    gy, gx = np.gradient(relief)
    light = rng.uniform(0, 2 * np.pi)
    shading = np.cos(light) * gx + np.sin(light) * gy
    return _standardise(textures.f32(shading + 0.2 * relief)), float(rng.choice([0.0, 90.0]))


def machined(rng: np.random.Generator, height: int, width: int) -> tuple[Plane, float]:
    """Machined with tool marks: fine periodic grooves (turned straight, or milled arcs) plus chatter."""
    period = float(rng.uniform(2.5, 8.0))
    if rng.random() < 0.5:  # turning / planing: straight grooves
        angle = _main_angle(rng)
        _, v = _axes(rng, height, width, angle)
        phase = v
    else:  # face milling: arcs of a cutter whose centre is far off the part
        angle = float(rng.choice([0.0, 90.0]))
        radius = float(rng.uniform(1.5, 4.0) * max(height, width))
        cx, cy = width / 2 + rng.normal(0, width), -radius if angle == 0.0 else height / 2
        if angle == 90.0:
            cx = -radius
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        phase = np.hypot(xs - cx, ys - cy)
    grooves = np.sin(2 * np.pi * phase / period) + 0.4 * np.sin(4 * np.pi * phase / period + 1.0)
    chatter = 0.3 * smooth_noise(rng, height, width, int(rng.integers(10, 40)))
    plane = grooves * (1.0 + chatter) + 0.3 * rng.standard_normal((height, width))
    return _standardise(textures.f32(plane)), angle


def printed(rng: np.random.Generator, height: int, width: int) -> tuple[Plane, float]:
    """Printed / patterned surface: a regular halftone of dots, a grid, or stripes, slightly jittered."""
    angle = float(rng.choice([0.0, 90.0, 45.0]) + rng.normal(0, 2))
    u, v = _axes(rng, height, width, angle)
    period = float(rng.uniform(6.0, 16.0))
    style = int(rng.integers(0, 3))
    if style == 0:  # dots
        plane = np.cos(2 * np.pi * u / period) * np.cos(2 * np.pi * v / period)
        plane = np.maximum(plane, 0) ** 2
    elif style == 1:  # grid lines
        plane = np.maximum(np.cos(2 * np.pi * u / period), np.cos(2 * np.pi * v / period)) ** 8
    else:  # stripes
        plane = (np.cos(2 * np.pi * v / period) > rng.uniform(-0.5, 0.5)).astype(np.float32)
    plane = textures.f32(cv2.GaussianBlur(textures.f32(plane), (0, 0), 0.7))
    plane = plane + 0.2 * rng.standard_normal((height, width)).astype(np.float32)
    return _standardise(plane), angle


def speckled(rng: np.random.Generator, height: int, width: int) -> tuple[Plane, float]:
    """Speckled plastic: a smooth base with many small flecks, light and dark (all harmless)."""
    plane = 0.5 * smooth_noise(rng, height, width, int(rng.integers(30, 90)))
    flecks = np.zeros((height, width), np.float32)
    count = int(rng.integers(100, 600))
    ys, xs = rng.integers(0, height, count), rng.integers(0, width, count)
    flecks[ys, xs] = rng.choice([-1.0, 1.0], count) * rng.uniform(1.0, 3.0, count)
    flecks = textures.f32(cv2.GaussianBlur(flecks, (0, 0), float(rng.uniform(0.6, 1.4)))) * 4.0
    return _standardise(textures.f32(plane + flecks + 0.2 * rng.standard_normal((height, width)))), 0.0


def hairline_brushed(rng: np.random.Generator, height: int, width: int) -> tuple[Plane, float]:
    """Coarse brushed / ground finish: long, sharp, crack-like lines along one direction (all good)."""
    angle = _main_angle(rng)
    fine = (rng.random((height, width)) < 0.01).astype(np.float32) * rng.choice([-1.0, 1.0], (height, width))
    lines = cv2.filter2D(
        fine.astype(np.float32), -1, textures._motion_kernel(int(rng.integers(61, 151)), angle)
    )
    plane = _standardise(textures.f32(lines)) + 0.5 * textures.brushed(rng, height, width)[0]
    return _standardise(plane), angle


# --- held-out families (never used in training) --------------------------------------------------


def knurled(rng: np.random.Generator, height: int, width: int) -> tuple[Plane, float]:
    """HELD OUT. Knurled grip: a diamond cross-hatch of two sharp ridge sets, shaded on one side."""
    angle = float(rng.uniform(25.0, 65.0))
    u1, _ = _axes(rng, height, width, angle)
    u2, _ = _axes(rng, height, width, -angle)
    period = float(rng.uniform(5.0, 12.0))
    ridge1 = 2 * np.abs((u1 / period) % 1.0 - 0.5)
    ridge2 = 2 * np.abs((u2 / period) % 1.0 - 0.5)
    plane = np.minimum(ridge1, ridge2) + 0.3 * (ridge1 - ridge2)
    plane = plane + 0.15 * rng.standard_normal((height, width))
    return _standardise(textures.f32(cv2.GaussianBlur(textures.f32(plane), (0, 0), 0.6))), angle


def spangle(rng: np.random.Generator, height: int, width: int) -> tuple[Plane, float]:
    """HELD OUT. Hot-dip galvanised spangle: crystal cells of flat, random brightness with sharp borders."""
    seeds = np.ones((height, width), np.uint8)
    count = int(rng.integers(8, 40))
    ys, xs = rng.integers(0, height, count), rng.integers(0, width, count)
    seeds[ys, xs] = 0
    _, labels = cv2.distanceTransformWithLabels(seeds, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    levels = rng.uniform(-1.0, 1.0, int(labels.max()) + 1).astype(np.float32)
    tilt = rng.normal(0.0, 0.004, (int(labels.max()) + 1, 2)).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    plane = levels[labels] + tilt[labels, 0] * xx + tilt[labels, 1] * yy
    plane = plane + 0.15 * rng.standard_normal((height, width))
    return _standardise(textures.f32(plane)), float(rng.uniform(0, 180))


def twill(rng: np.random.Generator, height: int, width: int) -> tuple[Plane, float]:
    """HELD OUT. Carbon-fibre 2/2 twill: tows that step diagonally, each glossy along its fibres."""
    period = float(rng.uniform(6.0, 14.0))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    cu, cv = np.floor(xs / period), np.floor(ys / period)
    horizontal = ((cu + cv) % 4) < 2
    fib_h = np.sin(2 * np.pi * ys / 2.3) * 0.3 + np.abs(np.sin(np.pi * ys / period))
    fib_v = np.sin(2 * np.pi * xs / 2.3) * 0.3 + np.abs(np.sin(np.pi * xs / period))
    plane = np.where(horizontal, fib_h + 0.4, fib_v - 0.4)
    plane = plane + 0.15 * rng.standard_normal((height, width))
    return _standardise(textures.f32(plane)), 45.0


def perforated(rng: np.random.Generator, height: int, width: int) -> tuple[Plane, float]:
    """HELD OUT. Perforated sheet: a hexagonal array of round holes (dark), on a fine-grained sheet."""
    pitch = float(rng.uniform(10.0, 22.0))
    radius = pitch * float(rng.uniform(0.2, 0.35))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    row = np.round(ys / (pitch * 0.866))
    cy = row * pitch * 0.866
    cx = np.round((xs - (row % 2) * pitch / 2) / pitch) * pitch + (row % 2) * pitch / 2
    holes = (np.hypot(xs - cx, ys - cy) < radius).astype(np.float32)
    plane = (
        -3.0 * textures.f32(cv2.GaussianBlur(holes, (0, 0), 0.8)) + textures.grain(rng, height, width) * 0.4
    )
    return _standardise(textures.f32(plane)), 0.0


TRAIN_FAMILIES: dict[str, Family] = {
    "brushed": classic("brushed"),
    "grain": classic("grain"),
    "cast": classic("cast"),
    "plastic": classic("plastic"),
    "sandblasted": sandblasted,
    "woven": woven,
    "wood": wood,
    "orange-peel": orange_peel,
    "machined": machined,
    "printed": printed,
    "speckled": speckled,
    "ground": hairline_brushed,
    "procedural": procedural,
}
"""The families training data may be drawn from (``--families train``); ``procedural`` is a new
random surface every time (:mod:`edgeinspect_cloud.data.procedural`)."""

HELDOUT_FAMILIES: dict[str, Family] = {
    "knurled": knurled,
    "spangle": spangle,
    "twill": twill,
    "perforated": perforated,
}
"""The held-out families (``--families heldout``): evaluation only, never training."""
