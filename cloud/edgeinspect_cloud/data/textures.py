"""Defect-free surfaces for the synthetic dataset: textures, lighting and harmless distractors.

Everything here works on float32 luminance planes in [0, 1] (``HxW``) and is vectorised with numpy and
OpenCV, so a 640x232 surface costs a few milliseconds. The distractors matter as much as the defects:
bright specks, dark stains and machining marks appear on GOOD parts too, so "the darkest pixel" or
"the global contrast" cannot tell a good part from a bad one; only shape and context can.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

Plane = npt.NDArray[np.float32]

SURFACES = ("brushed", "grain", "cast", "plastic")
"""Surface families: brushed metal, fine-grained metal, cast (pitted) metal, moulded plastic."""


def smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> Plane:
    """Zero-mean, unit-std noise that varies over about ``cell`` pixels (cubic-upsampled lattice)."""
    rows, cols = max(2, height // cell + 2), max(2, width // cell + 2)
    lattice = rng.standard_normal((rows, cols)).astype(np.float32)
    plane = cv2.resize(lattice, (width, height), interpolation=cv2.INTER_CUBIC)
    return _standardise(plane)


def f32(array: npt.ArrayLike) -> Plane:
    """``array`` as a float32 plane (OpenCV's results are loosely typed; this pins them down)."""
    return np.asarray(array, dtype=np.float32)


def _standardise(plane: npt.ArrayLike) -> Plane:
    plane = f32(plane)
    std = float(plane.std())
    return f32((plane - plane.mean()) / (std if std > 1e-6 else 1.0))


def _motion_kernel(length: int, angle_deg: float) -> Plane:
    """A normalised line kernel: filtering noise with it draws streaks along ``angle_deg``."""
    size = length | 1
    kernel = np.zeros((size, size), np.float32)
    centre = size // 2
    dx, dy = np.cos(np.deg2rad(angle_deg)) * centre, np.sin(np.deg2rad(angle_deg)) * centre
    start = (round(centre - dx), round(centre - dy))
    end = (round(centre + dx), round(centre + dy))
    cv2.line(kernel, start, end, 1.0, 1, cv2.LINE_AA)
    total = float(kernel.sum())
    return kernel / total if total > 0 else kernel


def brushed(rng: np.random.Generator, height: int, width: int) -> tuple[Plane, float]:
    """Brushed metal: fine noise smeared into long streaks along one direction (returned, degrees)."""
    angle = float(rng.choice([0.0, 90.0]) + rng.normal(0.0, 4.0))
    fine = rng.standard_normal((height, width)).astype(np.float32)
    streaks = cv2.filter2D(fine, -1, _motion_kernel(int(rng.integers(21, 61)), angle))
    plane = _standardise(streaks) + 0.35 * smooth_noise(rng, height, width, int(rng.integers(20, 60)))
    return _standardise(plane), angle


def grain(rng: np.random.Generator, height: int, width: int) -> Plane:
    """Fine-grained metal: isotropic noise over several octaves, finest octave strongest."""
    octaves = [(2, 1.0), (4, 0.6), (12, 0.35), (40, 0.25)]
    plane = sum((w * smooth_noise(rng, height, width, c) for c, w in octaves), np.zeros((height, width)))
    return _standardise(plane.astype(np.float32))


def cast(rng: np.random.Generator, height: int, width: int) -> Plane:
    """Cast metal: grain plus many tiny pits and bumps (1-2 px), harmless but defect-like to a threshold."""
    plane = grain(rng, height, width)
    count = int(rng.integers(40, 200))
    ys, xs = rng.integers(0, height, count), rng.integers(0, width, count)
    plane[ys, xs] += rng.choice([-1.0, 1.0], count).astype(np.float32) * rng.uniform(1.5, 4.0, count).astype(
        np.float32
    )
    return _standardise(cv2.GaussianBlur(plane, (3, 3), 0.6))


def plastic(rng: np.random.Generator, height: int, width: int) -> Plane:
    """Moulded plastic: smooth, low-frequency waviness with a faint fine grain."""
    plane = smooth_noise(rng, height, width, int(rng.integers(30, 90))) + 0.25 * smooth_noise(
        rng, height, width, 2
    )
    return _standardise(plane)


def surface(rng: np.random.Generator, height: int, width: int) -> tuple[Plane, float, str]:
    """A random surface texture (zero mean), its dominant streak angle (degrees) and its family name."""
    kind = str(rng.choice(SURFACES))
    angle = float(rng.choice([0.0, 90.0]))
    if kind == "brushed":
        plane, angle = brushed(rng, height, width)
    elif kind == "grain":
        plane = grain(rng, height, width)
    elif kind == "cast":
        plane = cast(rng, height, width)
    else:
        plane = plastic(rng, height, width)
    return plane, angle, kind


def lighting(rng: np.random.Generator, height: int, width: int) -> Plane:
    """Uneven illumination: a base level, a linear gradient, a vignette and sometimes a specular band."""
    ys = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    base = rng.uniform(0.3, 0.65)
    gy, gx = rng.uniform(-0.12, 0.12, 2)
    light = base + gy * ys + gx * xs - rng.uniform(0.0, 0.12) * (ys**2 + xs**2)
    if rng.random() < 0.6:  # a bright band where the curved part reflects the lamp
        centre, spread = rng.uniform(-0.8, 0.8), rng.uniform(0.08, 0.4)
        vertical = rng.random() < 0.5
        axis = ys if vertical else xs
        light = light + rng.uniform(0.05, 0.25) * np.exp(-(((axis - centre) / spread) ** 2))
    return np.broadcast_to(light, (height, width)).astype(np.float32)


def stains(rng: np.random.Generator, height: int, width: int, amount: float) -> Plane:
    """Large, soft, low-contrast blotches (oil, discolouration): harmless, but they move global contrast."""
    plane = np.zeros((height, width), np.float32)
    for _ in range(int(rng.poisson(amount))):
        blob = np.zeros((height, width), np.float32)
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(10, 50)), int(rng.integers(10, 70)))
        cv2.ellipse(blob, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        sigma = float(rng.uniform(6, 20))
        blob = f32(cv2.GaussianBlur(blob, (0, 0), sigma))
        plane += float(rng.choice([-1.0, 1.0]) * rng.uniform(0.04, 0.12)) * blob
    return plane


def specks(rng: np.random.Generator, height: int, width: int, count: int) -> Plane:
    """Isolated 1-2 px glints and dust grains of HIGH contrast: they defeat a max/min-pixel threshold."""
    plane = np.zeros((height, width), np.float32)
    if count == 0:
        return plane
    ys, xs = rng.integers(0, height, count), rng.integers(0, width, count)
    values = rng.choice([-1.0, 1.0], count) * rng.uniform(0.25, 0.6, count)
    plane[ys, xs] = values.astype(np.float32)
    return cv2.GaussianBlur(plane, (3, 3), 0.5) * 2.0


def machining_marks(rng: np.random.Generator, height: int, width: int, angle: float) -> Plane:
    """Faint straight marks running the whole part along the streak direction (never a defect)."""
    plane = np.zeros((height, width), np.float32)
    vertical = abs(np.cos(np.deg2rad(angle))) < 0.5
    for _ in range(int(rng.integers(0, 4))):
        value = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.03, 0.1))
        if vertical:
            x = int(rng.integers(0, width))
            cv2.line(plane, (x, 0), (x + int(rng.integers(-8, 9)), height - 1), value, 1, cv2.LINE_AA)
        else:
            y = int(rng.integers(0, height))
            cv2.line(plane, (0, y), (width - 1, y + int(rng.integers(-8, 9))), value, 1, cv2.LINE_AA)
    return plane


def tint(rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """A per-part colour cast (RGB gains near 1): greyish steel, bronze, greenish or bluish finishes."""
    palettes = np.array(
        [[1.0, 1.0, 1.0], [1.08, 1.0, 0.88], [0.95, 1.05, 0.95], [0.92, 0.98, 1.08], [1.05, 0.97, 0.9]],
        dtype=np.float32,
    )
    gains = palettes[int(rng.integers(0, len(palettes)))] + rng.normal(0, 0.03, 3).astype(np.float32)
    return f32(gains)
