"""Root traits (paper Table IV): skeleton length, tips, branch points, convex hull area.

Definitions, all on `skimage.morphology.skeletonize` skeletons (see `topology` for tiling):

- length: length of the 8-neighbour path graph of the skeleton, a horizontal or vertical step
  counting 1 and a diagonal step sqrt(2); a diagonal step is skipped where an orthogonal
  two-step path joins the same two pixels, so corners are not counted twice.
- tips: skeleton pixels with exactly one 8-neighbour on the skeleton (end points).
- branches: branch points, counted as 8-connected clusters of skeleton pixels with three or
  more skeleton neighbours (one junction often thins to a small cluster of such pixels).
- hull_area: area in px^2 of the convex hull of the foreground, each pixel a unit square
  (a single pixel has area 1).

Every count is a sum over tiles (each skeleton link is owned by its upper / left pixel, branch
clusters are merged across tile borders, hulls of tiles are merged), so huge masks work in
bounded memory.

Usage::

    from distpaint.metrics.traits import traits
    t = traits(mask)        # Traits(length=..., tips=..., branches=..., hull_area=...)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.spatial import ConvexHull

from distpaint.metrics.tiles import Tile, map_tiles
from distpaint.metrics.topology import (
    DEFAULT_HALO,
    TileComponents,
    count_components,
    skeleton_window,
    summarize_components,
)

__all__ = [
    "TRAITS",
    "TileTraits",
    "Traits",
    "hull_area",
    "hull_points",
    "merge_traits",
    "neighbour_counts_at",
    "skeleton_length_at",
    "tile_traits",
    "traits",
]

TRAITS = ("length", "tips", "branches", "hull_area")
"""Trait names, in report order."""
_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class Traits:
    """Traits of one mask (see the module docstring for the definitions)."""

    length: float
    """Skeleton length in pixels."""
    tips: int
    """End points of the skeleton."""
    branches: int
    """Branch points of the skeleton (junction clusters)."""
    hull_area: float
    """Convex hull area of the foreground in px^2."""

    def as_dict(self) -> dict[str, float]:
        """{trait: value}."""
        return asdict(self)


_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def _at(s: np.ndarray, ys: np.ndarray, xs: np.ndarray, dy: int, dx: int) -> np.ndarray:
    return s[ys + dy, xs + dx]


def skeleton_length_at(skel: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> float:
    """Total length of the skeleton links owned by the skeleton pixels (ys, xs), which must
    not lie on the border of `skel` (a tile core inside its halo).

    A link is owned by its upper pixel (by its left pixel when horizontal), so summing over
    the skeleton pixels of every tile's core counts every link of the whole skeleton once.
    Skeletons are sparse: working on their pixel lists is much faster than on whole tiles."""
    s = skel
    right, down = _at(s, ys, xs, 0, 1), _at(s, ys, xs, 1, 0)
    # diagonal links, unless the two pixels are also joined through an orthogonal corner
    down_right = _at(s, ys, xs, 1, 1) & ~right & ~down
    down_left = _at(s, ys, xs, 1, -1) & ~_at(s, ys, xs, 0, -1) & ~down
    return float(np.count_nonzero(right) + np.count_nonzero(down)
                 + _SQRT2 * (np.count_nonzero(down_right) + np.count_nonzero(down_left)))


def neighbour_counts_at(skel: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Number of 8-neighbours on the skeleton of each pixel (ys, xs) (not on the border)."""
    counts = np.zeros(len(ys), np.uint8)
    for dy, dx in _NEIGHBOURS:
        counts += _at(skel, ys, xs, dy, dx)
    return counts


def hull_points(core: np.ndarray, y0: int = 0, x0: int = 0) -> np.ndarray:
    """(k, 2) corners (y, x) of the foreground pixel squares that can be on the convex hull:
    the first and last foreground pixel of each row, reduced to the tile's own hull."""
    rows = np.flatnonzero(core.any(axis=1))
    if len(rows) == 0:
        return np.empty((0, 2), np.float64)
    sub = core[rows]
    first = np.argmax(sub, axis=1)
    last = sub.shape[1] - 1 - np.argmax(sub[:, ::-1], axis=1)
    ys, x_first, x_last = rows + y0, first + x0, last + x0 + 1
    pts = np.concatenate([
        np.stack([ys, x_first], 1), np.stack([ys + 1, x_first], 1),
        np.stack([ys, x_last], 1), np.stack([ys + 1, x_last], 1),
    ]).astype(np.float64)
    return pts[ConvexHull(pts).vertices] if len(pts) >= 3 else pts


def hull_area(points: Sequence[np.ndarray]) -> float:
    """Area of the convex hull of the union of `points` arrays (0 when there are none)."""
    pts = np.concatenate([p for p in points if len(p)]) if any(len(p) for p in points) else None
    if pts is None:
        return 0.0
    return float(ConvexHull(pts).volume)  # 2-D "volume" is the area; pixel squares never degenerate


@dataclass
class TileTraits:
    """Per-tile, summable parts of the traits of one mask."""

    length: float
    """Length of the links owned by core pixels."""
    tips: int
    """End points in the core."""
    branches: TileComponents
    """Component summary of the branch-pixel mask, merged across tiles."""
    hull: np.ndarray
    """Candidate convex hull corners in image coordinates."""


def tile_traits(mask_window: np.ndarray, skel_window: np.ndarray, tile: Tile) -> TileTraits:
    """The traits' parts for one tile from the haloed mask and its skeleton (halo >= 1)."""
    h = tile.halo
    core_skel = tile.core(skel_window)
    cy, cx = np.nonzero(core_skel)
    ys, xs = cy + h, cx + h  # window coordinates, at least one pixel inside the border
    counts = neighbour_counts_at(skel_window, ys, xs)
    branch = np.zeros(core_skel.shape, bool)
    branch[cy[counts >= 3], cx[counts >= 3]] = True
    return TileTraits(
        length=skeleton_length_at(skel_window, ys, xs),
        tips=int(np.count_nonzero(counts == 1)),
        branches=summarize_components(branch),
        hull=hull_points(tile.core(mask_window), tile.y0, tile.x0),
    )


def merge_traits(grid: Sequence[Sequence[TileTraits]]) -> Traits:
    """Traits of the whole mask from its tiles."""
    flat = [t for row in grid for t in row]
    return Traits(
        length=float(sum(t.length for t in flat)),
        tips=int(sum(t.tips for t in flat)),
        branches=count_components([[t.branches for t in row] for row in grid]),
        hull_area=hull_area([t.hull for t in flat]),
    )


def _traits_kernel(windows: dict, tile: Tile) -> TileTraits:
    mask = windows["mask"]
    return tile_traits(mask, skeleton_window(mask), tile)


def traits(mask: Any, *, halo: int = DEFAULT_HALO, tile: int | None = None,
           workers: int | None = None) -> Traits:
    """Traits of a NumPy, Zarr or Dask mask (tiles with `halo` beyond `tiles.IN_MEMORY_PIXELS`)."""
    grid = map_tiles(_traits_kernel, {"mask": mask}, halo=max(1, halo), tile=tile,
                     workers=workers)
    return merge_traits(grid)
