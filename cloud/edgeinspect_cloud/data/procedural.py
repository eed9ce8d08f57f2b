"""Procedural surfaces: a new random texture family for every part, from generic building blocks.

The named training families (:mod:`edgeinspect_cloud.data.surfaces`) are each one kind of surface;
a model trained on twelve of them still learns "the twelve surfaces I know" and calls the edges of a
thirteenth a defect. :func:`procedural` draws a surface that is itself random: one to three layers
of generic texture primitives, each with random scale, orientation and weight, so that across a
training set no two parts share a texture and the network has to learn what a defect is *relative
to the part's own texture* rather than what any one surface looks like.

The primitives cover the broad classes of industrial surfaces without copying any one of them:

- ``cells``: a random tessellation (Voronoi cells from 5 to 400 seeds) with flat or tilted shading
  and optionally dark or bright cell borders: crystalline, cast, sintered, mottled finishes;
- ``lattice``: a motif (dot, ring, square, bar) repeated on a random two-vector lattice: perforated,
  embossed, knurled, textile and printed patterns of any geometry;
- ``spectral``: noise band-passed around a random frequency and orientation: brushed, ground,
  lapped, peened and sand-blasted finishes;
- ``blobs``: smooth noise cut by a threshold into sharp-edged patches: painted, coated, oxidised.

Every draw comes from ``rng``; the result follows the family signature (a zero-mean, unit-std plane
and the dominant line direction in degrees).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from edgeinspect_cloud.data import textures
from edgeinspect_cloud.data.textures import Plane, f32, smooth_noise

Primitive = Callable[[np.random.Generator, int, int, float], Plane]


def _standardise(plane: Plane) -> Plane:
    std = float(plane.std())
    return f32((plane - plane.mean()) / (std if std > 1e-6 else 1.0))


def cells(rng: np.random.Generator, height: int, width: int, angle: float) -> Plane:
    """Voronoi cells of random count, each a flat (or gently tilted) level, borders sometimes drawn."""
    seeds = np.ones((height, width), np.uint8)
    count = int(np.exp(rng.uniform(np.log(5), np.log(400))))
    seeds[rng.integers(0, height, count), rng.integers(0, width, count)] = 0
    distance, labels = cv2.distanceTransformWithLabels(seeds, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    n = int(labels.max()) + 1
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    tilt = rng.normal(0.0, float(rng.uniform(0.0, 0.01)), (n, 2)).astype(np.float32)
    plane = rng.uniform(-1.0, 1.0, n).astype(np.float32)[labels] + tilt[labels, 0] * xx + tilt[labels, 1] * yy
    if rng.random() < 0.4:  # cell borders: where a pixel's cell differs from a neighbour's
        border = (np.abs(np.diff(labels, axis=0, prepend=labels[:1])) > 0) | (
            np.abs(np.diff(labels, axis=1, prepend=labels[:, :1])) > 0
        )
        plane = plane + float(rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 2.0)) * border.astype(np.float32)
    if rng.random() < 0.3:  # domed cells: shading that grows towards each cell's seed
        plane = plane - float(rng.uniform(0.005, 0.05)) * f32(distance)
    return f32(plane)


def _motif(kind: int, du: Plane, dv: Plane, size: float) -> Plane:
    """One lattice motif on the cell-local offsets ``du, dv`` (in lattice-period units, -0.5..0.5)."""
    radius = np.hypot(du, dv)
    if kind == 0:  # dot
        return f32(radius < size)
    if kind == 1:  # ring
        return f32(np.abs(radius - size) < 0.08)
    if kind == 2:  # square
        return f32(np.maximum(np.abs(du), np.abs(dv)) < size)
    return f32(np.abs(dv) < size * 0.4)  # bar


def lattice(rng: np.random.Generator, height: int, width: int, angle: float) -> Plane:
    """A random motif repeated on a random lattice (two basis vectors of random length and angle)."""
    period = float(rng.uniform(4.0, 28.0))
    skew = float(rng.uniform(45.0, 135.0))
    ratio = float(rng.uniform(0.6, 1.6))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    a1, a2 = np.deg2rad(angle), np.deg2rad(angle + skew)
    basis = np.array([[np.cos(a1), np.cos(a2) * ratio], [np.sin(a1), np.sin(a2) * ratio]]) * period
    inverse = np.linalg.inv(basis)
    u = inverse[0, 0] * xs + inverse[0, 1] * ys
    v = inverse[1, 0] * xs + inverse[1, 1] * ys
    du, dv = f32(u - np.round(u)), f32(v - np.round(v))
    plane = _motif(int(rng.integers(0, 4)), du, dv, float(rng.uniform(0.12, 0.4)))
    plane = plane * float(rng.choice([-1.0, 1.0]))
    return f32(cv2.GaussianBlur(plane, (0, 0), float(rng.uniform(0.4, 1.2))))


def spectral(rng: np.random.Generator, height: int, width: int, angle: float) -> Plane:
    """White noise band-passed around a random frequency, stretched along ``angle`` (anisotropy)."""
    fy = np.fft.fftfreq(height)[:, None].astype(np.float32)
    fx = np.fft.rfftfreq(width)[None, :].astype(np.float32)
    theta = np.deg2rad(angle)
    along = fx * np.cos(theta) + fy * np.sin(theta)
    across = -fx * np.sin(theta) + fy * np.cos(theta)
    stretch = float(np.exp(rng.uniform(0.0, np.log(30.0))))
    radius = np.sqrt((along * stretch) ** 2 + across**2)
    centre = float(np.exp(rng.uniform(np.log(0.01), np.log(0.3))))
    band = np.exp(-(((radius - centre) / (centre * rng.uniform(0.3, 1.0) + 1e-3)) ** 2))
    spectrum = np.fft.rfft2(rng.standard_normal((height, width)).astype(np.float32)) * band
    return f32(np.fft.irfft2(spectrum, s=(height, width)))


def blobs(rng: np.random.Generator, height: int, width: int, angle: float) -> Plane:
    """Smooth noise cut at a random level into sharp-edged patches (a coat, an oxide, a stain pattern)."""
    noise = smooth_noise(rng, height, width, int(rng.integers(8, 80)))
    level = float(rng.uniform(-0.8, 0.8))
    patches = f32(noise > level) * float(rng.choice([-1.0, 1.0]))
    return f32(cv2.GaussianBlur(patches, (0, 0), float(rng.uniform(0.3, 1.5))))


PRIMITIVES: dict[str, Primitive] = {"cells": cells, "lattice": lattice, "spectral": spectral, "blobs": blobs}


def procedural(rng: np.random.Generator, height: int, width: int) -> tuple[Plane, float]:
    """One to three random primitives, weighted and summed, plus fine grain: a never-seen surface."""
    angle = (
        float(rng.choice([0.0, 90.0]) + rng.normal(0.0, 3.0)) if rng.random() < 0.6 else rng.uniform(0, 180)
    )
    names = list(PRIMITIVES)
    plane = np.zeros((height, width), np.float32)
    for index in range(int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))):
        layer = _standardise(PRIMITIVES[names[int(rng.integers(0, len(names)))]](rng, height, width, angle))
        plane += layer * (1.0 if index == 0 else float(rng.uniform(0.2, 0.8)))
    plane += float(rng.uniform(0.05, 0.4)) * textures.grain(rng, height, width)
    return _standardise(plane), angle
