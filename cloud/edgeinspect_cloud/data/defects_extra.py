"""Defects that look like the surface's own features, distractors that look like defects, and held-out rules.

Training scenes add to the classic kinds (:mod:`edgeinspect_cloud.data.defects`) a *grain crack*: a
long, thin, low-contrast crack that runs along the surface's own lines (the escapes a line sees
most), and *irregular* flaws of random shape, fill and edge (no one drawing rule). Good parts carry
dust, fibres, smudges and benign straight marks along the texture lines, so a model must learn
what makes a line a defect (it starts and ends on the part, wanders, tapers), not that every line
is one.

Held-out scenes use defect-drawing rules no training scene uses: hairlines along smooth Bezier
curves (1 px), chipped coating (sharp polygons), pit clusters, scuffed patches, and the blister kind.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeinspect_cloud.data import defects
from edgeinspect_cloud.data.defects import Defect
from edgeinspect_cloud.data.textures import Plane, f32

TRAIN_KINDS = ("scratch", "crack", "spot", "dent", "grain-crack", "irregular")
_TRAIN_WEIGHTS = (0.18, 0.12, 0.15, 0.15, 0.22, 0.18)
HELDOUT_KINDS = ("hairline", "chip", "pits", "scuff", "blister")


def _direction(angle: float, rng: np.random.Generator, spread: float) -> float:
    """``angle`` (degrees) as radians, either way along the line, plus a little wander."""
    return float(np.deg2rad(angle) + rng.choice([0.0, np.pi]) + rng.normal(0.0, spread))


def grain_crack(rng: np.random.Generator, height: int, width: int, strength: float, angle: float) -> Defect:
    """A long, thin, faint crack running ALONG the texture's lines, wandering slightly, fading at its ends."""
    alpha = np.zeros((height, width), np.float32)
    length = float(rng.uniform(0.25, 0.9) * max(height, width))
    steps = max(6, int(length / 6))
    start = defects._start(rng, height, width, 16)
    path = defects._path(rng, start, _direction(angle, rng, 0.05), steps, length / steps, 0.06)
    defects._taper(path, alpha, int(rng.choice([1, 2, 2])))
    amplitude = -defects._contrast(rng, strength, 4.0, 12.0)
    effect = amplitude * cv2.GaussianBlur(alpha, (0, 0), 0.5)
    return Defect("grain-crack", f32(effect), defects._mask(alpha, dilate=2))


def irregular(rng: np.random.Generator, height: int, width: int, strength: float) -> Defect:
    """A local flaw of random shape: no single drawing rule, so the network learns "unlike the rest".

    A random polygon or ellipse (2-18 px across), filled, hollow (only its rim) or streaked, lighter
    or darker than the surface, with a sharp or a soft edge: the many flaw shapes a line meets that
    none of the named kinds (scratch, crack, spot, dent) draws.
    """
    alpha = np.zeros((height, width), np.float32)
    cx, cy = defects._start(rng, height, width, 20)
    radius = defects._log_uniform(rng, 2.0, 18.0)
    if rng.random() < 0.5:
        corners = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
        radii = radius * rng.uniform(0.4, 1.3, corners)
        points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(alpha, [points.round().astype(np.int32)], 1.0)
    else:
        axes = (max(1, round(radius)), max(1, round(radius * rng.uniform(0.3, 1.0))))
        cv2.ellipse(alpha, (round(cx), round(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    style = rng.random()
    if style < 0.25 and radius > 4:  # hollow: only the rim differs (a ring mark, an edge of a chip)
        shape = f32(cv2.morphologyEx(alpha, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)))
    elif style < 0.45:  # streaked inside: abrasion
        streaks = np.abs(rng.standard_normal((height, width)).astype(np.float32))
        shape = alpha * f32(cv2.GaussianBlur(streaks, (0, 0), 0.7)) * 1.5
    else:
        shape = alpha
    sharpness = float(rng.uniform(0.3, 1.5))
    amplitude = float(rng.choice([-1.0, 1.0])) * defects._contrast(rng, strength, 4.0, 12.0)
    effect = amplitude * cv2.GaussianBlur(f32(shape), (0, 0), sharpness)
    return Defect("irregular", f32(effect), defects._mask(alpha, dilate=1))


def hairline(rng: np.random.Generator, height: int, width: int, strength: float, angle: float) -> Defect:
    """HELD OUT. A 1-px hairline crack along a smooth cubic Bezier that roughly follows the lines."""
    alpha = np.zeros((height, width), np.float32)
    length = float(rng.uniform(0.3, 0.8) * max(height, width))
    theta = _direction(angle, rng, 0.15)
    x0, y0 = defects._start(rng, height, width, 10)
    ends = np.array([[x0, y0], [x0 + length * np.cos(theta), y0 + length * np.sin(theta)]])
    controls = (
        ends[0] + (ends[1] - ends[0]) * np.array([[1 / 3], [2 / 3]]) + rng.normal(0, length / 8, (2, 2))
    )
    t = np.linspace(0.0, 1.0, 64)[:, None]
    curve = (
        (1 - t) ** 3 * ends[0] + 3 * (1 - t) ** 2 * t * controls[0] + 3 * (1 - t) * t**2 * controls[1]
        + t**3 * ends[1]
    )  # fmt: skip
    points = curve.round().astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(alpha, [points], False, 1.0, 1, cv2.LINE_AA)
    amplitude = -defects._contrast(rng, strength, 6.0, 14.0)
    return Defect("hairline", f32(amplitude * alpha), defects._mask(alpha, dilate=2))


def chip(rng: np.random.Generator, height: int, width: int, strength: float) -> Defect:
    """HELD OUT. Chipped coating: a sharp-edged polygon of bare (brighter) metal with a dark edge."""
    alpha = np.zeros((height, width), np.float32)
    cx, cy = defects._start(rng, height, width, 20)
    radius = defects._log_uniform(rng, 4.0, 16.0)
    corners = int(rng.integers(4, 8))
    angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
    radii = radius * rng.uniform(0.5, 1.2, corners)
    points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
    cv2.fillPoly(alpha, [points.round().astype(np.int32)], 1.0)
    edge = f32(cv2.morphologyEx(alpha, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)))
    amplitude = defects._contrast(rng, strength, 4.0, 10.0)
    return Defect("chip", f32(amplitude * (alpha - 1.2 * edge)), defects._mask(alpha, dilate=1))


def pits(rng: np.random.Generator, height: int, width: int, strength: float) -> Defect:
    """HELD OUT. A cluster of 4-12 tiny dark pits (corrosion), 1-3 px each."""
    alpha = np.zeros((height, width), np.float32)
    cx, cy = defects._start(rng, height, width, 20)
    spread = float(rng.uniform(4.0, 12.0))
    for _ in range(int(rng.integers(4, 13))):
        centre = (round(cx + rng.normal(0, spread)), round(cy + rng.normal(0, spread)))
        cv2.circle(alpha, centre, int(rng.integers(1, 4)), 1.0, -1)
    amplitude = -defects._contrast(rng, strength, 5.0, 12.0)
    return Defect(
        "pits", f32(amplitude * cv2.GaussianBlur(alpha, (0, 0), 0.6)), defects._mask(alpha, dilate=1)
    )


def scuff(rng: np.random.Generator, height: int, width: int, strength: float) -> Defect:
    """HELD OUT. A scuffed patch: many short parallel abrasion streaks inside an ellipse."""
    region = np.zeros((height, width), np.float32)
    cx, cy = defects._start(rng, height, width, 24)
    axes = (int(rng.integers(8, 24)), int(rng.integers(5, 16)))
    direction = float(rng.uniform(0, 180))
    cv2.ellipse(region, (round(cx), round(cy)), axes, direction, 0, 360, 1.0, -1)
    streaks = rng.standard_normal((height, width)).astype(np.float32)
    streaks = f32(cv2.filter2D(streaks, -1, _line_kernel(9, direction)))
    body = f32(cv2.GaussianBlur(region, (0, 0), 1.5))
    amplitude = defects._contrast(rng, strength, 3.0, 8.0)
    effect = amplitude * body * (0.6 + 0.8 * np.abs(streaks) / max(1e-6, float(np.abs(streaks).std())))
    return Defect("scuff", f32(effect), region > 0.5)


def _line_kernel(length: int, angle_deg: float) -> Plane:
    kernel = np.zeros((length, length), np.float32)
    centre = length // 2
    dx, dy = np.cos(np.deg2rad(angle_deg)) * centre, np.sin(np.deg2rad(angle_deg)) * centre
    cv2.line(
        kernel, (round(centre - dx), round(centre - dy)), (round(centre + dx), round(centre + dy)), 1.0, 1
    )
    return kernel / max(1.0, float(kernel.sum()))


def scene_defect(
    rng: np.random.Generator, height: int, width: int, strength: float, angle: float, heldout: bool
) -> Defect:
    """One defect for a training or a held-out scene; redrawn a few times if its mask came out empty."""
    for _ in range(6):
        if heldout:
            kind = str(rng.choice(HELDOUT_KINDS))
            if kind == "hairline":
                defect = hairline(rng, height, width, strength, angle)
            elif kind == "blister":
                defect = defects.blister(rng, height, width, strength)
            else:
                defect = {"chip": chip, "pits": pits, "scuff": scuff}[kind](rng, height, width, strength)
        else:
            kind = str(rng.choice(TRAIN_KINDS, p=_TRAIN_WEIGHTS))
            if kind == "grain-crack":
                defect = grain_crack(rng, height, width, strength, angle)
            elif kind == "irregular":
                defect = irregular(rng, height, width, strength)
            else:
                defect = defects.random_defect(rng, height, width, strength, (kind,))
        if defect.mask.sum() >= 4:
            break
    return defect


# --- distractors: harmless, on good and defective parts alike -------------------------------------


def dust(rng: np.random.Generator, height: int, width: int, strength: float) -> Plane:
    """Dust grains (soft 1-3 px blobs) and fibres (short, faint, curly threads) lying on the part."""
    plane = np.zeros((height, width), np.float32)
    for _ in range(int(rng.poisson(rng.uniform(0.0, 4.0)))):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(plane, centre, int(rng.integers(1, 3)), float(rng.choice([-1.0, 1.0])), -1)
    for _ in range(int(rng.poisson(rng.uniform(0.0, 1.5)))):
        path = defects._path(
            rng, (float(rng.uniform(0, width)), float(rng.uniform(0, height))), rng.uniform(0, 2 * np.pi),
            int(rng.integers(3, 7)), float(rng.uniform(2, 5)), 0.8,
        )  # fmt: skip
        cv2.polylines(plane, [path.reshape(-1, 1, 2)], False, float(rng.choice([-0.6, 0.6])), 1, cv2.LINE_AA)
    return f32(cv2.GaussianBlur(plane, (0, 0), 0.8) * strength * float(rng.uniform(2.0, 6.0)))


def smudge(rng: np.random.Generator, height: int, width: int, strength: float) -> Plane:
    """A fingerprint or oil smudge: a soft oval of faint, fine ridges (benign)."""
    plane = np.zeros((height, width), np.float32)
    if rng.random() > 0.35:
        return plane
    region = np.zeros((height, width), np.float32)
    centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
    axes = (int(rng.integers(8, 20)), int(rng.integers(10, 28)))
    cv2.ellipse(region, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ridges = np.sin(np.hypot(xs - centre[0], ys - centre[1]) * float(rng.uniform(1.0, 1.8)))
    soft = f32(cv2.GaussianBlur(region, (0, 0), 4.0))
    return f32(
        soft * (0.5 + 0.5 * ridges) * strength * float(rng.uniform(1.0, 3.0)) * rng.choice([-1.0, 1.0])
    )


def texture_line(rng: np.random.Generator, height: int, width: int, angle: float, strength: float) -> Plane:
    """Benign marks ALONG the texture lines: straight, even, running edge to edge (never a defect)."""
    plane = np.zeros((height, width), np.float32)
    theta = np.deg2rad(angle)
    reach = 2 * max(height, width)
    for _ in range(int(rng.integers(0, 4))):
        cx, cy = float(rng.uniform(0, width)), float(rng.uniform(0, height))
        start = (round(cx - reach * np.cos(theta)), round(cy - reach * np.sin(theta)))
        end = (round(cx + reach * np.cos(theta)), round(cy + reach * np.sin(theta)))
        value = float(rng.choice([-1.0, 1.0]) * strength * rng.uniform(2.0, 6.0))
        cv2.line(plane, start, end, value, 1, cv2.LINE_AA)
    return plane


def water_spots(rng: np.random.Generator, height: int, width: int, strength: float) -> Plane:
    """HELD OUT distractor: dried water spots, faint rings 6-20 px across (benign)."""
    plane = np.zeros((height, width), np.float32)
    for _ in range(int(rng.poisson(1.5))):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.circle(plane, centre, int(rng.integers(3, 10)), float(rng.choice([-1.0, 1.0])), 1, cv2.LINE_AA)
    return f32(cv2.GaussianBlur(plane, (0, 0), 0.7) * strength * float(rng.uniform(1.5, 3.0)))
