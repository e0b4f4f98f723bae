"""Synthetic line drawings: figures made of pen strokes, arcs, straight lines and hatching.

Figures (one per ~550 x 550 px on average, 120-380 px across) are scattered over the sheet.
Each holds a few long sweeping contour strokes (random walks with a steady bend), some open
or closed elliptic arcs with a wobble, a few straight lines and groups of short parallel
hatching lines. Stroke widths run 1-6 px, mostly thin; contours and arcs swell in the middle
and thin out at their ends like a pen under varying pressure.
"""

from __future__ import annotations

import numpy as np

from distpaint.data.synth.config import SynthConfig
from distpaint.data.synth.geometry import PathBuilder
from distpaint.data.synth.paths import smooth_noise, walk, walk_batches

__all__ = ["build_sketch"]

FIGURE_AREA = 550.0**2  # px^2 of sheet per figure, on average
STEP = 5.0  # px between stroke vertices


def build_sketch(builder: PathBuilder, shape: tuple[int, int], rng: np.random.Generator, cfg: SynthConfig) -> None:
    """Add the strokes of a (H, W) drawing to `builder`."""
    h, w = shape
    n = max(1, int(rng.poisson(h * w * cfg.density / FIGURE_AREA)))
    centre = np.stack([rng.uniform(0, w, n), rng.uniform(0, h, n)], axis=1)
    size = rng.uniform(120.0, 380.0, n)
    _contours(builder, rng, cfg, *_members(rng, centre, size, 4, 12, 0.45))
    _arcs(builder, rng, cfg, *_members(rng, centre, size, 0, 3, 0.4))
    _lines(builder, rng, cfg, *_members(rng, centre, size, 0, 4, 0.5))
    _hatching(builder, rng, cfg, *_members(rng, centre, size, 0, 3, 0.5))


def _members(rng, centre, size, lo, hi, spread):
    """Positions and figure sizes of lo..hi-1 strokes of one type per figure, scattered about it."""
    count = rng.integers(lo, hi, len(size))
    fig = np.repeat(np.arange(len(size)), count)
    pos = centre[fig] + rng.normal(0, spread, (fig.size, 2)) * size[fig, None]
    return pos, size[fig]


def _pen_radius(rng, k, cfg):
    """(k,) stroke half-widths: 0.5-3 px (1-6 px wide), thin ones far more common."""
    return np.clip(0.5 + rng.gamma(1.3, 0.45, k), 0.5, 3.0) * cfg.width_scale


def _pressure(u, r_max):
    """Half-width along a stroke: thick in the middle, ~35 % at the ends, never below 0.5 px."""
    profile = 0.35 + 0.65 * np.sin(np.pi * np.clip(u, 0, 1)) ** 0.6
    return np.maximum(r_max[:, None] * profile, 0.5)


def _contours(builder, rng, cfg, pos, size):
    k = len(size)
    if k == 0:
        return
    n_steps = np.ceil(rng.uniform(0.5, 2.0, k) * size / STEP).astype(np.int64)
    heading, turn = rng.uniform(0, 2 * np.pi, k), rng.uniform(0.008, 0.025, k)
    bend, pen = rng.normal(0, 0.02, k), _pen_radius(rng, k, cfg)
    for p in walk_batches(n_steps):
        paths = walk(rng, pos[p, 0], pos[p, 1], heading[p], n_steps[p], STEP, turn=turn[p], smooth=6.0, curvature=bend[p])
        u = np.arange(paths.x.shape[1])[None, :] / (paths.n - 1)[:, None]
        radius = _pressure(u, pen[p])
        builder.add_paths(paths.x, paths.y, radius, paths.n)
        _retrace(builder, rng, paths.x, paths.y, radius, paths.n)


def _retrace(builder, rng, x, y, radius, n):
    """Sketchy re-drawn strokes: about half the contours get a near copy, shifted 1-4 px and
    gently deformed, the way an artist goes over a line again."""
    again = np.nonzero(rng.random(len(n)) < 0.5)[0]
    if again.size == 0:
        return
    k, m = again.size, x.shape[1]
    shift = rng.normal(0, 2.0, (k, 2))
    wobble = 1.2 * smooth_noise(rng, (k, m), 15.0), 1.2 * smooth_noise(rng, (k, m), 15.0)
    cut = np.maximum((n[again] * rng.uniform(0.5, 1.0, k)).astype(np.int64), 2)
    builder.add_paths(x[again] + shift[:, :1] + wobble[0], y[again] + shift[:, 1:] + wobble[1],
                      np.maximum(0.8 * radius[again], 0.5), cut)


def _arcs(builder, rng, cfg, pos, size):
    k = len(size)
    if k == 0:
        return
    a = size * rng.uniform(0.15, 0.5, k)
    b = a * rng.uniform(0.4, 1.0, k)
    span = rng.uniform(np.pi, 2.15 * np.pi, k)
    n = np.maximum(np.ceil(span * a / STEP).astype(np.int64) + 1, 3)
    m = int(n.max())
    u = np.minimum(np.arange(m)[None, :] / (n - 1)[:, None], 1.0)
    theta = rng.uniform(0, 2 * np.pi, k)[:, None] + span[:, None] * u
    wobble = 1.0 + 0.04 * smooth_noise(rng, (k, m), 10.0)
    ex, ey = a[:, None] * np.cos(theta) * wobble, b[:, None] * np.sin(theta) * wobble
    phi = rng.uniform(0, np.pi, k)[:, None]
    x = pos[:, 0, None] + ex * np.cos(phi) - ey * np.sin(phi)
    y = pos[:, 1, None] + ex * np.sin(phi) + ey * np.cos(phi)
    builder.add_paths(x, y, _pressure(u, _pen_radius(rng, k, cfg)), n)


def _lines(builder, rng, cfg, pos, size):
    k = len(size)
    direction = rng.uniform(0, np.pi, k)
    half = 0.5 * rng.uniform(0.3, 1.2, k) * size
    dx, dy = half * np.cos(direction), half * np.sin(direction)
    builder.add_segments(pos[:, 0] - dx, pos[:, 1] - dy, pos[:, 0] + dx, pos[:, 1] + dy, _pen_radius(rng, k, cfg))


def _hatching(builder, rng, cfg, pos, size):
    """Groups of 4-13 short parallel strokes, 4-10 px apart, sharing one pen width."""
    groups = len(size)
    count = rng.integers(4, 14, groups)
    g = np.repeat(np.arange(groups), count)
    i = np.arange(g.size) - np.repeat(np.cumsum(count) - count, count)
    direction = rng.uniform(0, np.pi, groups)[g] + rng.normal(0, 0.04, g.size)
    gap = rng.uniform(4.0, 10.0, groups)[g]
    offset = (i - 0.5 * (count[g] - 1)) * gap + rng.normal(0, 0.8, g.size)
    shift = rng.normal(0, 3.0, g.size)
    half = 0.5 * rng.uniform(15.0, 60.0, groups)[g] * rng.uniform(0.8, 1.2, g.size)
    c, s = np.cos(direction), np.sin(direction)
    mx = pos[g, 0] + shift * c - offset * s
    my = pos[g, 1] + shift * s + offset * c
    radius = np.minimum(_pen_radius(rng, groups, cfg), 1.5 * cfg.width_scale)[g]
    builder.add_segments(mx - half * c, my - half * s, mx + half * c, my + half * s, np.maximum(radius, 0.5))
