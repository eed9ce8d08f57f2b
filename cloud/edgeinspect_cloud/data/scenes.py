"""Broad domain randomisation around a surface: lighting, distractors, colour and camera.

:func:`edgeinspect_cloud.data.synth.render_sample` draws the classic line; :func:`render_scene` draws
a part of a named *family set*: ``train`` (twelve surface families, randomised lighting, colour and
camera, defects that look like the surface's own lines, and good parts with defect-like distractors)
or ``heldout`` (four other surfaces, other lights, other camera faults and defects drawn by other
rules; see :mod:`edgeinspect_cloud.data.surfaces` and :mod:`edgeinspect_cloud.data.defects_extra`).
Every draw comes from the ``rng`` it is given, so an image is a function of ``(seed, index)``.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from edgeinspect_cloud.data import defects_extra, surfaces, textures
from edgeinspect_cloud.data.textures import Plane, f32

FamilySet = Literal["classic", "train", "heldout"]
FAMILY_SETS: tuple[FamilySet, ...] = ("classic", "train", "heldout")


PROCEDURAL_SHARE = 0.4
"""Share of ``train`` parts drawn on a procedural surface (a new random texture each); the rest are
spread evenly over the named training families."""


def _draw_family(rng: np.random.Generator, heldout: bool) -> str:
    """The surface family of one part: held out, procedural (:data:`PROCEDURAL_SHARE`) or a named one."""
    if heldout:
        return str(rng.choice(list(surfaces.HELDOUT_FAMILIES)))
    if rng.random() < PROCEDURAL_SHARE:
        return "procedural"
    return str(rng.choice([name for name in surfaces.TRAIN_FAMILIES if name != "procedural"]))


def family_names(family_set: FamilySet) -> tuple[str, ...]:
    """The surface families a set draws from (``classic``: the original four)."""
    if family_set == "heldout":
        return tuple(surfaces.HELDOUT_FAMILIES)
    if family_set == "train":
        return tuple(surfaces.TRAIN_FAMILIES)
    return textures.SURFACES


def _grid(height: int, width: int) -> tuple[Plane, Plane]:
    ys = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    return ys, xs


def train_lighting(rng: np.random.Generator, height: int, width: int) -> Plane:
    """Gradients, vignetting, a specular band or hot spots, and uneven exposure (training scenes)."""
    light = textures.lighting(rng, height, width)
    light = light * float(np.exp(rng.normal(0.0, 0.25)))  # exposure
    ys, xs = _grid(height, width)
    for _ in range(int(rng.poisson(0.8))):  # specular hot spots
        cy, cx = rng.uniform(-1, 1, 2)
        sy, sx = rng.uniform(0.05, 0.4, 2)
        light = light + rng.uniform(0.05, 0.35) * np.exp(-(((ys - cy) / sy) ** 2) - ((xs - cx) / sx) ** 2)
    for _ in range(int(rng.poisson(0.7))):  # reflections of a long light: a band, narrow or wide
        theta = rng.uniform(0.0, np.pi)
        across = ys * np.cos(theta) - xs * np.sin(theta) - rng.uniform(-1.0, 1.0)
        light = light + rng.uniform(0.05, 0.25) * np.exp(-((across / rng.uniform(0.02, 0.3)) ** 2))
    return f32(np.clip(light, 0.05, 0.95))


def heldout_lighting(rng: np.random.Generator, height: int, width: int) -> Plane:
    """HELD OUT lights: a ring light's bright annulus, or parallel reflections of fluorescent tubes."""
    ys, xs = _grid(height, width)
    base = rng.uniform(0.25, 0.6)
    if rng.random() < 0.5:
        scale = width / height
        r = np.sqrt((ys * rng.uniform(0.8, 1.2)) ** 2 + (xs * scale) ** 2)
        ring = rng.uniform(0.15, 0.3) * np.exp(-(((r - rng.uniform(0.2, 0.7)) / 0.12) ** 2))
        light = base + ring - 0.1 * r
    else:
        light = base + np.zeros_like(ys * xs)
        axis = ys if rng.random() < 0.5 else xs
        for centre in rng.uniform(-0.9, 0.9, int(rng.integers(2, 4))):
            light = light + rng.uniform(0.08, 0.2) * np.exp(-(((axis - centre) / 0.04) ** 2))
    return f32(np.clip(np.broadcast_to(light, (height, width)), 0.05, 0.95))


def distractors(rng: np.random.Generator, height: int, width: int, angle: float, strength: float) -> Plane:
    """Harmless marks a GOOD part may carry: dust, fibres, smudges, stains, specks, marks along the lines."""
    plane = textures.stains(rng, height, width, amount=float(rng.uniform(0.0, 2.5)))
    plane += textures.specks(rng, height, width, count=int(rng.poisson(rng.uniform(0.0, 10.0))))
    plane += textures.machining_marks(rng, height, width, angle)
    plane += defects_extra.dust(rng, height, width, strength)
    plane += defects_extra.smudge(rng, height, width, strength)
    plane += defects_extra.texture_line(rng, height, width, angle, strength)
    return plane


def heldout_distractors(rng: np.random.Generator, height: int, width: int, strength: float) -> Plane:
    """HELD OUT harmless marks: dried water spots (faint rings) and a few specks."""
    plane = defects_extra.water_spots(rng, height, width, strength)
    plane += textures.specks(rng, height, width, count=int(rng.poisson(3.0)))
    return plane


def colour(rng: np.random.Generator, heldout: bool) -> npt.NDArray[np.float32]:
    """RGB gains: grey, a near-grey tint, or a coloured finish (painted, anodised) of random hue."""
    if heldout:  # anodised gold, deep blue, or a red coat: strong colours
        palettes = np.array([[1.25, 1.05, 0.55], [0.6, 0.85, 1.35], [1.35, 0.7, 0.65]], np.float32)
        return f32(palettes[int(rng.integers(0, 3))] + rng.normal(0, 0.03, 3))
    draw = rng.random()
    if draw < 0.35:
        return np.ones(3, np.float32)
    if draw < 0.7:
        return textures.tint(rng)
    direction = rng.standard_normal(3)
    direction -= direction.mean()
    direction /= max(1e-6, float(np.linalg.norm(direction)))
    return f32(np.clip(1.0 + rng.uniform(0.1, 0.5) * direction * np.sqrt(3), 0.3, 1.8))


def camera(rng: np.random.Generator, rgb: Plane, heldout: bool) -> Plane:
    """Optics and sensor: blur, gamma, noise; held out: a little motion blur and row banding."""
    height, width = rgb.shape[:2]
    if heldout:
        length = int(rng.integers(2, 5))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rgb = f32(cv2.filter2D(rgb, -1, kernel))
        rgb = rgb + rng.normal(0.0, 2.0, (height, 1, 1)).astype(np.float32)  # row banding
    else:
        blur = float(rng.uniform(0.0, 1.5))
        if blur > 0.3:
            rgb = f32(cv2.GaussianBlur(rgb, (0, 0), blur))
        if rng.random() < 0.25:  # the part moved during exposure: a short smear in any direction
            length = int(rng.integers(2, 6))
            rgb = f32(cv2.filter2D(rgb, -1, textures._motion_kernel(length, float(rng.uniform(0, 180)))))
        if rng.random() < 0.25:  # sensor read-out: a fixed offset per row or per column
            axis = (height, 1, 1) if rng.random() < 0.5 else (1, width, 1)
            rgb = rgb + rng.normal(0.0, rng.uniform(0.5, 3.0), axis).astype(np.float32)
    gamma = float(np.exp(rng.normal(0.0, 0.15)))
    rgb = f32(255.0 * (np.clip(rgb, 0, 255) / 255.0) ** gamma)
    level = np.float32(rng.uniform(1.0, 8.0))
    shared = rng.standard_normal((height, width, 1), dtype=np.float32) * (0.7 * level)
    return f32(rgb + shared + rng.standard_normal((height, width, 3), dtype=np.float32) * (0.3 * level))


def render_scene(
    rng: np.random.Generator,
    height: int,
    width: int,
    defective: bool,
    family_set: FamilySet,
    *,
    surface: str | None = None,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], str]:
    """One ``HxWx3`` RGB image, its 0/255 mask and the surface family drawn, for ``train``/``heldout``;
    ``surface`` (one of the set's families) draws every part on that one surface."""
    heldout = family_set == "heldout"
    families = surfaces.HELDOUT_FAMILIES if heldout else surfaces.TRAIN_FAMILIES
    drawn = _draw_family(rng, heldout)  # drawn even for a one-surface line: every later random number
    name = drawn if surface is None else surface  # (lights, defects, camera) is the mixed set's
    plane, angle = families[name](rng, height, width)
    strength = float(rng.uniform(0.02, 0.06))
    light = heldout_lighting(rng, height, width) if heldout else train_lighting(rng, height, width)
    lum = light + strength * plane
    lum += (
        heldout_distractors(rng, height, width, strength)
        if heldout
        else distractors(rng, height, width, angle, strength)
    )
    mask = np.zeros((height, width), bool)
    if defective:
        for _ in range(int(rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1]))):
            defect = defects_extra.scene_defect(rng, height, width, strength, angle, heldout)
            lum += defect.effect
            mask |= defect.mask
    rgb = lum[:, :, None] * colour(rng, heldout)[None, None, :] * 255.0
    if not heldout and rng.random() < 0.3:  # a grey camera, or a colour one on a grey part
        rgb = np.repeat(rgb.mean(axis=2, keepdims=True), 3, axis=2)
    rgb = camera(rng, f32(rgb), heldout)
    image = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return image, (mask.astype(np.uint8) * 255), name
