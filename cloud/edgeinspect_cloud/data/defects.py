"""Synthetic defects: scratches, cracks, spots and dents, each a luminance change plus its true mask.

A defect is drawn as a soft footprint (``alpha`` in [0, 1]) and turned into a signed luminance change
(``effect``) whose amplitude is a multiple of the surface's own texture strength, drawn from a wide
range: some defects stand out, some barely rise above the texture, as on a real line. The annotated
mask is the footprint above one half, slightly dilated for thin defects (annotators draw generously,
as in KolektorSDD2).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edgeinspect_cloud.data.textures import Plane, smooth_noise

DEFECT_KINDS = ("scratch", "crack", "spot", "dent")
_KIND_WEIGHTS = (0.3, 0.2, 0.25, 0.25)


@dataclass(frozen=True)
class Defect:
    """One drawn defect: the signed luminance change, the 0/1 mask, and what kind it is."""

    kind: str
    effect: Plane
    mask: npt.NDArray[np.bool_]


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _contrast(rng: np.random.Generator, strength: float, low: float, high: float) -> float:
    """Defect amplitude as ``strength`` x a log-uniform ratio: many subtle defects, a few obvious ones."""
    return strength * _log_uniform(rng, low, high)


def _taper(points: npt.NDArray[np.int32], canvas: Plane, thickness: int) -> None:
    """Draw a polyline whose intensity fades at both ends, like a real scratch's entry and exit."""
    count = len(points) - 1
    for index in range(count):
        t = (index + 0.5) / count
        value = float(min(1.0, 4.0 * t, 4.0 * (1.0 - t)) ** 0.5)
        start = (int(points[index][0]), int(points[index][1]))
        end = (int(points[index + 1][0]), int(points[index + 1][1]))
        cv2.line(canvas, start, end, value, thickness, cv2.LINE_AA)


def _path(
    rng: np.random.Generator, start: tuple[float, float], angle: float, steps: int, step: float, wobble: float
) -> npt.NDArray[np.int32]:
    """A random-walk path: ``wobble`` is the std of the turn (radians) at each step."""
    turns = np.cumsum(rng.normal(0.0, wobble, steps))
    angles = angle + turns
    lengths = step * rng.uniform(0.6, 1.4, steps)
    xs = start[0] + np.concatenate([[0.0], np.cumsum(np.cos(angles) * lengths)])
    ys = start[1] + np.concatenate([[0.0], np.cumsum(np.sin(angles) * lengths)])
    return np.stack([xs, ys], axis=1).round().astype(np.int32)


def _start(rng: np.random.Generator, height: int, width: int, margin: int) -> tuple[float, float]:
    """A random (x, y) at least ``margin`` from the border (less on images too small for it)."""
    mx, my = min(margin, width // 2 - 1), min(margin, height // 2 - 1)
    return (float(rng.uniform(mx, width - mx)), float(rng.uniform(my, height - my)))


def scratch(rng: np.random.Generator, height: int, width: int, strength: float) -> Defect:
    """A long thin line, straight or gently curved, darker or brighter, fading at its ends."""
    alpha = np.zeros((height, width), np.float32)
    length = _log_uniform(rng, 25.0, min(300.0, 1.2 * height))
    steps = max(4, int(length / 8))
    path = _path(rng, _start(rng, height, width, 20), rng.uniform(0, 2 * np.pi), steps, length / steps, 0.04)
    thickness = int(rng.choice([2, 2, 3]))
    _taper(path, alpha, thickness)
    amplitude = _contrast(rng, strength, 6.0, 14.0) * float(rng.choice([-1.0, 1.0], p=[0.65, 0.35]))
    effect = amplitude * cv2.GaussianBlur(alpha, (0, 0), 0.6)
    if rng.random() < 0.4:  # a ploughed scratch: a bright rim beside the dark groove
        rim = cv2.GaussianBlur(alpha, (0, 0), 2.0) - cv2.GaussianBlur(alpha, (0, 0), 0.7)
        effect = effect - 0.8 * amplitude * rim
    return Defect("scratch", effect, _mask(alpha, dilate=2))


def crack(rng: np.random.Generator, height: int, width: int, strength: float) -> Defect:
    """A jagged dark line that changes direction often, sometimes with a branch."""
    alpha = np.zeros((height, width), np.float32)
    start = _start(rng, height, width, 20)
    angle = rng.uniform(0, 2 * np.pi)
    path = _path(rng, start, angle, int(rng.integers(8, 30)), float(rng.uniform(3, 7)), 0.45)
    thickness = int(rng.choice([2, 2, 3]))
    _taper(path, alpha, thickness)
    if rng.random() < 0.5:
        fork = path[int(rng.integers(1, len(path) - 1))]
        branch = _path(rng, (float(fork[0]), float(fork[1])), angle + rng.choice([-1.0, 1.0]), 8, 4.0, 0.5)
        _taper(branch, alpha, 1)
    amplitude = -_contrast(rng, strength, 6.0, 14.0)
    return Defect("crack", amplitude * cv2.GaussianBlur(alpha, (0, 0), 0.5), _mask(alpha, dilate=2))


def spot(rng: np.random.Generator, height: int, width: int, strength: float) -> Defect:
    """A small round or oval pit, inclusion or splash (3-14 px), with a soft edge."""
    alpha = np.zeros((height, width), np.float32)
    centre = _start(rng, height, width, 16)
    radius = _log_uniform(rng, 4.0, 14.0)
    axes = (max(2, round(radius * rng.uniform(0.6, 1.0))), max(2, round(radius * rng.uniform(0.8, 1.6))))
    cv2.ellipse(alpha, (round(centre[0]), round(centre[1])), axes, rng.uniform(0, 180), 0, 360, 1.0, -1)
    soft = cv2.GaussianBlur(alpha, (0, 0), max(0.6, radius / 5))
    low = 3.0 if radius > 6 else 5.0  # a tiny spot needs more contrast to be visible at all
    amplitude = _contrast(rng, strength, low, 10.0) * float(rng.choice([-1.0, 1.0], p=[0.7, 0.3]))
    return Defect("spot", amplitude * soft, _mask(alpha, dilate=1))


def dent(rng: np.random.Generator, height: int, width: int, strength: float) -> Defect:
    """A large irregular dent or bump: mostly relief shading (one side lit, one shadowed), low contrast."""
    radius = _log_uniform(rng, 10.0, 40.0)
    size = int(4 * radius) | 1
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - size // 2
    wobble = 1.0 + 0.3 * smooth_noise(rng, size, size, max(2, int(radius / 2)))
    stretch = rng.uniform(0.6, 1.5)
    inside = (np.hypot(xx * stretch, yy / stretch) / (radius * wobble)) < 1.0
    patch = inside.astype(np.float32)
    alpha = np.zeros((height, width), np.float32)
    _paste(alpha, patch, _start(rng, height, width, int(radius)))
    relief = cv2.GaussianBlur(alpha, (0, 0), max(1.5, radius / 6))
    light = rng.uniform(0, 2 * np.pi)
    gy, gx = np.gradient(relief)
    shading = (np.cos(light) * gx + np.sin(light) * gy) * radius
    amplitude = _contrast(rng, strength, 4.0, 8.0)
    body = float(rng.choice([-1.0, 1.0], p=[0.7, 0.3])) * 0.5 * relief
    effect = amplitude * (shading / max(1e-6, float(np.abs(shading).max())) + body)
    return Defect("dent", effect.astype(np.float32), _mask(alpha, dilate=0))


def _paste(canvas: Plane, patch: Plane, centre: tuple[float, float]) -> None:
    """Add ``patch`` centred at ``centre`` (x, y), clipped to the canvas."""
    height, width = canvas.shape
    half = patch.shape[0] // 2
    x0, y0 = round(centre[0]) - half, round(centre[1]) - half
    cx0, cy0 = max(0, x0), max(0, y0)
    cx1, cy1 = min(width, x0 + patch.shape[1]), min(height, y0 + patch.shape[0])
    if cx1 <= cx0 or cy1 <= cy0:
        return
    canvas[cy0:cy1, cx0:cx1] += patch[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]


def _mask(alpha: Plane, dilate: int) -> npt.NDArray[np.bool_]:
    mask = alpha > 0.5
    if dilate:
        kernel = np.ones((2 * dilate + 1, 2 * dilate + 1), np.uint8)
        mask = np.asarray(cv2.dilate(mask.astype(np.uint8), kernel)) > 0
    return mask


def blister(rng: np.random.Generator, height: int, width: int, strength: float) -> Defect:
    """A cluster of 5-14 small raised bubbles (coating blisters): bright domes with a dark rim.

    Not among :data:`DEFECT_KINDS`: the default line never makes it. It is the "new defect kind" a
    drift or retraining scenario introduces (``write_dataset(defect_kinds=("blister",))``).
    """
    alpha = np.zeros((height, width), np.float32)
    centre = _start(rng, height, width, 20)
    spread = float(rng.uniform(6.0, 16.0))
    for _ in range(int(rng.integers(5, 15))):
        x = centre[0] + rng.normal(0.0, spread)
        y = centre[1] + rng.normal(0.0, spread)
        radius = int(rng.integers(2, 5))
        cv2.circle(alpha, (round(x), round(y)), radius, 1.0, -1)
    dome = cv2.GaussianBlur(alpha, (0, 0), 1.0)
    rim = cv2.GaussianBlur(alpha, (0, 0), 2.5) - dome
    amplitude = _contrast(rng, strength, 5.0, 10.0)
    return Defect("blister", (amplitude * (dome - 0.6 * rim)).astype(np.float32), _mask(alpha, dilate=1))


EXTRA_KINDS = ("blister",)
"""Kinds only drawn when asked for by name (a shifted line's new defects), never by default."""

_DRAW = {"scratch": scratch, "crack": crack, "spot": spot, "dent": dent, "blister": blister}


def random_defect(
    rng: np.random.Generator,
    height: int,
    width: int,
    strength: float,
    kinds: tuple[str, ...] | None = None,
) -> Defect:
    """One defect of a random kind; redrawn (at most a few times) if it landed with an empty mask.

    ``kinds`` restricts the draw to those kinds, equally likely (``None``: the default mix).
    """
    if kinds is None:
        kind = str(rng.choice(DEFECT_KINDS, p=_KIND_WEIGHTS))
    else:
        kind = str(rng.choice(check_kinds(kinds)))
    defect = _DRAW[kind](rng, height, width, strength)
    for _ in range(5):
        if defect.mask.sum() >= 4:
            break
        defect = _DRAW[kind](rng, height, width, strength)
    return defect


def check_kinds(kinds: tuple[str, ...]) -> tuple[str, ...]:
    """``kinds`` if every one is known, else ``ValueError`` naming the known ones."""
    unknown = sorted(set(kinds) - set(_DRAW))
    if not kinds or unknown:
        raise ValueError(f"unknown defect kind(s) {unknown or '(none given)'}; known: {sorted(_DRAW)}")
    return kinds
