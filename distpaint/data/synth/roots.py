"""Synthetic plant root systems: a primary root with laterals, tapering, tortuous, with hairs.

Plants stand in rows (one row per ~2200 px of height, like the ~2500 x 1000 px chickpea root
images) and columns (one plant per ~900 px of width), so a 40k mask holds many plants at the
scale of a 2k one. Each primary root grows downwards as a random walk pulled back to vertical
(gravitropism) and tapers from 6-8 px to ~3 px; laterals emerge every ~30 px at 40-85 degrees,
are longer near the top (older), bend slowly downwards and taper to 2 px; long laterals carry
third-order roots. Every child starts on its parent's centreline, so a plant is one connected
component. Optional 1-px root hairs stick out roughly perpendicular to the roots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from distpaint.data.synth.config import SynthConfig
from distpaint.data.synth.geometry import PathBuilder
from distpaint.data.synth.paths import Walks, taper, walk, walk_batches

__all__ = ["build_roots"]

ROW_HEIGHT = 2200.0  # px of image height per row of plants
PLANT_SPACING = 900.0  # px of image width per plant
STEP = 5.0  # px between root vertices
DOWN = np.pi / 2  # heading of "down" (y grows downwards)
LATERAL_GAP = 22.0  # px, mean distance between laterals along a primary root
SUBLATERAL_GAP = 55.0  # px, mean distance between third-order roots along a lateral


def build_roots(builder: PathBuilder, shape: tuple[int, int], rng: np.random.Generator, cfg: SynthConfig) -> None:
    """Add the root systems of a (H, W) mask to `builder`."""
    h, w = shape
    n_rows = max(1, round(h / ROW_HEIGHT))
    n_cols = max(1, round(w * cfg.density / PLANT_SPACING))
    row_h = h / n_rows
    rows, cols = np.divmod(np.arange(n_rows * n_cols), n_cols)
    k = rows.size
    x0 = (cols + 0.5 + rng.uniform(-0.3, 0.3, k)) * (w / n_cols)
    y0 = (rows + rng.uniform(0.01, 0.06, k)) * row_h
    length = rng.uniform(0.6, 0.92, k) * row_h
    primary = walk(rng, x0, y0, DOWN + rng.normal(0, 0.1, k), np.ceil(length / STEP), STEP,
                   turn=rng.uniform(0.01, 0.025, k), smooth=6.0, target=DOWN, pull=0.02)
    r_base = rng.uniform(2.8, 4.0, k) * cfg.width_scale
    r_tip = np.full(k, 1.4 * cfg.width_scale)
    r_primary = _radius(primary, r_base, r_tip, 0.8)
    _add(builder, primary, r_primary, cfg, rng)
    if cfg.lateral_order >= 2:
        orders = [LATERALS, SUBLATERALS][: cfg.lateral_order - 1]
        _branches(builder, rng, cfg, primary, r_primary, orders, row_h)


def _radius(paths: Walks, start: np.ndarray, end: np.ndarray, power: float) -> np.ndarray:
    """(k, m) radii tapering from `start` at the base to `end` at each path's own tip."""
    u = np.arange(paths.x.shape[1])[None, :] / np.maximum(paths.n - 1, 1)[:, None]
    return np.maximum(taper(u, start, end, power), 0.5)


@dataclass(frozen=True)
class _Order:
    """How one branching order of roots emerges from its parents."""

    gap: float  # mean distance (px) between branch points along a parent
    max_length: Callable[[np.ndarray, float], np.ndarray]  # (position on parent 0..1, row height) -> px
    angles: tuple[float, float]  # emergence angle range (degrees) from the parent's heading
    tip_radius: float  # half-width (px, before width_scale) at the tip
    min_parent: float  # parents shorter than this (px) carry no branches


LATERALS = _Order(LATERAL_GAP, lambda u, row_h: (0.08 + 0.3 * (1 - u) ** 1.2) * row_h, (50.0, 88.0), 1.0, 0.0)
SUBLATERALS = _Order(SUBLATERAL_GAP, lambda u, row_h: np.full_like(u, 90.0), (50.0, 90.0), 0.75, 250.0)


def _branches(builder, rng, cfg, parent: Walks, parent_r, orders: list[_Order], row_h: float) -> None:
    """Grow the roots of `orders[0]` along every parent path, then recurse into the next order.

    Children are walked in batches and each batch's own children are grown before the next
    batch, so only one batch per order is ever held in memory.
    """
    order, rest = orders[0], orders[1:]
    carrying = parent.n * STEP > order.min_parent
    pid, vid = _emergence(rng, np.where(carrying, parent.n, 1), order.gap)
    if pid.size == 0:
        return
    u = vid / np.maximum(parent.n[pid] - 1, 1)
    side = rng.choice([-1.0, 1.0], pid.size)
    heading0 = parent.heading[pid, vid] + side * np.radians(rng.uniform(*order.angles, pid.size))
    length = rng.uniform(0.35, 1.0, pid.size) * order.max_length(u, row_h)
    n_steps = np.maximum(np.ceil(length / STEP), 2).astype(np.int64)
    tip = order.tip_radius * cfg.width_scale
    r0 = np.clip(parent_r[pid, vid] * rng.uniform(0.45, 0.65, pid.size), tip, 2.2 * cfg.width_scale)
    for part in walk_batches(n_steps):
        child = walk(rng, parent.x[pid[part], vid[part]], parent.y[pid[part], vid[part]], heading0[part],
                     n_steps[part], STEP, turn=0.014, smooth=5.0, target=DOWN, pull=0.01)
        child_r = _radius(child, r0[part], np.full(child.n.size, tip), 1.0)
        _add(builder, child, child_r, cfg, rng)
        if rest:
            _branches(builder, rng, cfg, child, child_r, rest, row_h)


def _emergence(rng, n_vertices: np.ndarray, gap: float):
    """(parent id, vertex index) of branch points: gamma-spaced along each parent, 3-92 % of it."""
    length = (n_vertices - 1) * STEP
    n_max = int(np.ceil(length.max(initial=0) / gap * 1.2)) + 2
    gaps = rng.gamma(3.0, gap / 3.0, (n_vertices.size, n_max))
    s = length[:, None] * rng.uniform(0.02, 0.06, (n_vertices.size, 1)) + np.cumsum(gaps, axis=1)
    ok = s < 0.92 * length[:, None]
    pid = np.nonzero(ok)[0]
    vid = np.round(s[ok] / STEP).astype(np.int64)
    return pid, vid


def _add(builder: PathBuilder, paths: Walks, radius: np.ndarray, cfg: SynthConfig, rng) -> None:
    builder.add_paths(paths.x, paths.y, radius, paths.n)
    if cfg.root_hairs:
        _hairs(builder, paths, radius, cfg, rng)


def _hairs(builder: PathBuilder, paths: Walks, radius: np.ndarray, cfg: SynthConfig, rng) -> None:
    """1-px hairs from the centreline, roughly perpendicular, absent near the growing tip."""
    j = np.arange(paths.x.shape[1])[None, :]
    zone = j < 0.9 * (paths.n[:, None] - 1)
    count = rng.poisson(cfg.hair_density * STEP, zone.shape) * zone
    pi, pj = np.nonzero(count)
    reps = count[pi, pj]
    pi, pj = np.repeat(pi, reps), np.repeat(pj, reps)
    side = rng.choice([-1.0, 1.0], pi.size)
    angle = paths.heading[pi, pj] + side * np.radians(rng.uniform(55, 125, pi.size))
    along = rng.uniform(-0.5, 0.5, pi.size) * STEP  # spread hairs between vertices
    bx = paths.x[pi, pj] + along * np.cos(paths.heading[pi, pj])
    by = paths.y[pi, pj] + along * np.sin(paths.heading[pi, pj])
    reach = radius[pi, pj] + rng.gamma(2.0, 4.0, pi.size) + 2.0
    builder.add_segments(bx, by, bx + reach * np.cos(angle), by + reach * np.sin(angle), 0.5, split=False)
