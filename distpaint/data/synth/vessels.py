"""Synthetic vessel trees: recursive bifurcations with Murray's-law widths, retina-like.

Vessel systems sit on a jittered grid (one per ~1600 x 1600 px, like one fundus image's optic
disc), so big masks hold many at the scale of a small one. From each "disc" 3-5 trunks 9-12 px
wide leave in spread-out directions and curve gently (arcades). Each branch is a tortuous walk
whose length grows with its width; at its end it splits in two daughters whose radii follow
Murray's law (r0^3 = r1^3 + r2^3) with a random asymmetry, and whose angles are the optimal
bifurcation angles for those radii (the thin daughter turns away sharply, the thick one goes
almost straight). Branches stop below `vessel_min_width` or outside the image. Daughters
start at their parent's end, so each tree is one connected component.

Growth is breadth-first: all branches of one generation, across all trees, are walked at once.
"""

from __future__ import annotations

import numpy as np

from distpaint.data.synth.config import SynthConfig
from distpaint.data.synth.geometry import PathBuilder
from distpaint.data.synth.paths import walk, walk_batches

__all__ = ["build_vessels"]

DISC_SPACING = 1600.0  # px between vessel systems
STEP = 5.0  # px between vertices
MAX_GENERATIONS = 40
MARGIN = 64.0  # px outside the image where branches may still spawn daughters
TAPER = 0.9  # radius at a branch's end relative to its start


def build_vessels(builder: PathBuilder, shape: tuple[int, int], rng: np.random.Generator, cfg: SynthConfig) -> None:
    """Add the vessel trees of a (H, W) mask to `builder`."""
    x, y, heading, r, bend = _trunks(shape, rng, cfg)
    r_stop = 0.5 * cfg.vessel_min_width * cfg.width_scale
    for _ in range(MAX_GENERATIONS):
        if x.size == 0:
            break
        ends = _grow(builder, rng, cfg, x, y, heading, r, bend)
        x, y, heading, r, bend = _bifurcate(rng, *ends)
        keep = (r >= r_stop) & _inside(shape, x, y) & (rng.random(x.size) > 0.03)
        x, y, heading, r, bend = x[keep], y[keep], heading[keep], r[keep], bend[keep]


def _trunks(shape, rng, cfg):
    """Start points (disc centres), headings, radii and curvature of every trunk."""
    h, w = shape
    spacing = DISC_SPACING / np.sqrt(cfg.density)
    ny, nx = max(1, round(h / spacing)), max(1, round(w / spacing))
    iy, ix = np.divmod(np.arange(ny * nx), nx)
    cy = (iy + rng.uniform(0.3, 0.7, iy.size)) * (h / ny)
    cx = (ix + rng.uniform(0.3, 0.7, ix.size)) * (w / nx)
    n_trunks = rng.integers(3, 6, cy.size)
    disc = np.repeat(np.arange(cy.size), n_trunks)
    j = np.arange(disc.size) - np.repeat(np.cumsum(n_trunks) - n_trunks, n_trunks)
    base = rng.uniform(0, 2 * np.pi, cy.size)
    heading = base[disc] + 2 * np.pi * j / n_trunks[disc] + rng.normal(0, 0.25, disc.size)
    r = rng.uniform(4.5, 6.0, disc.size) * cfg.width_scale
    bend = rng.normal(0, 0.0015, disc.size) * STEP
    return cx[disc], cy[disc], heading, r, bend


def _grow(builder, rng, cfg, x, y, heading, r, bend):
    """Walk one branch per entry, draw it, return its end point, end heading, end radius, bend."""
    size = r / cfg.width_scale  # lengths follow the unscaled width
    length = rng.uniform(0.5, 1.5, x.size) * 70.0 * size**0.5
    n_steps = np.maximum(np.ceil(length / STEP), 2).astype(np.int64)
    ex, ey, eh = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    for part in walk_batches(n_steps):
        paths = walk(rng, x[part], y[part], heading[part], n_steps[part], STEP,
                     turn=0.012, smooth=6.0, curvature=bend[part])
        u = np.arange(paths.x.shape[1])[None, :] / (paths.n - 1)[:, None]
        radius = np.maximum(r[part, None] * (1.0 - (1.0 - TAPER) * np.minimum(u, 1.0)), 0.5)
        builder.add_paths(paths.x, paths.y, radius, paths.n)
        last = paths.n - 1
        rows = np.arange(last.size)
        ex[part], ey[part], eh[part] = paths.x[rows, last], paths.y[rows, last], paths.heading[rows, last]
    return ex, ey, eh, r * TAPER, bend


def _bifurcate(rng, x, y, heading, r, bend):
    """Two daughters per branch end: Murray radii, optimal angles (+ noise), opposite sides."""
    k = x.size
    # Radius ratio thin / thick daughter, mostly asymmetric: big vessels run on and shed side
    # branches, as retinal arcades do; now and then a near-symmetric fork.
    alpha = 0.15 + 0.85 * rng.beta(1.3, 2.2, k)
    r1 = r / np.cbrt(1.0 + alpha**3)
    r2 = alpha * r1
    th1 = _murray_angle(r, r1, r2) + rng.normal(0, 0.1, k)
    th2 = _murray_angle(r, r2, r1) + rng.normal(0, 0.15, k)
    side = rng.choice([-1.0, 1.0], k)
    child_bend = np.concatenate([0.5 * bend, -0.5 * bend]) + rng.normal(0, 0.0015, 2 * k) * STEP
    return (
        np.concatenate([x, x]),
        np.concatenate([y, y]),
        np.concatenate([heading + side * th1, heading - side * th2]),
        np.concatenate([r1, r2]),
        child_bend,
    )


def _murray_angle(r0, ra, rb):
    """Angle between parent (r0) and daughter ra minimising pumping work (Murray 1926)."""
    cos = (r0**4 + ra**4 - rb**4) / (2.0 * r0**2 * ra**2)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def _inside(shape, x, y):
    h, w = shape
    return (x > -MARGIN) & (x < w + MARGIN) & (y > -MARGIN) & (y < h + MARGIN)
