"""Vector geometry of a synthetic mask: capsule segments plus a spatial bucket index.

Every synthetic structure (a root, a vessel tree, a road network, a sketch) is reduced to a flat
list of *capsules*: a segment (x0, y0)-(x1, y1) thickened by a radius. A pixel (row i, column j)
has its centre at the point (x=j, y=i) and is foreground when that centre lies within `radius`
of the segment; radii may be fractional (a 1-px hair has radius ~0.5) and a zero-length capsule
is a disc. The generators in this package build paths with `PathBuilder` and call `build()`,
which splits long capsules (so their bounding boxes stay tight), drops those outside the image
and buckets them on a regular grid so that rasterising a window touches only nearby capsules.

Nothing here draws pixels: see `raster.py`. Run the package's tests with
`.venv/bin/python -m pytest tests/test_synth.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Geometry", "PathBuilder", "INDEX_CELL"]

INDEX_CELL = 256
"""Side in pixels of the square buckets of the spatial index."""

_MIN_PIECE = 3.0  # px: shortest length a long capsule is split down to (see _split_long)


@dataclass(frozen=True, eq=False)
class Geometry:
    """Capsule segments of one synthetic mask and a bucket index over them.

    Arrays are float64 of shape (n,), one entry per capsule, in pixel coordinates (x = column,
    y = row, pixel centres at integers). `cell_start` (n_cells + 1,) and `cell_ids` form a CSR
    map from bucket `cy * n_cx + cx` to the ids of the capsules whose bounding box meets it.
    """

    shape: tuple[int, int]
    x0: np.ndarray
    y0: np.ndarray
    x1: np.ndarray
    y1: np.ndarray
    radius: np.ndarray
    cell: int
    cell_start: np.ndarray
    cell_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.x0.size)

    @property
    def n_cells(self) -> tuple[int, int]:
        """Number of index buckets along (rows, columns)."""
        return (-(-self.shape[0] // self.cell), -(-self.shape[1] // self.cell))

    def candidates(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Sorted ids of the capsules whose bucket meets the window rows [y0, y1), cols [x0, x1).

        A superset of the capsules that touch the window: the rasteriser clips each one anyway.
        """
        ncy, ncx = self.n_cells
        cy = np.arange(max(y0 // self.cell, 0), min((y1 - 1) // self.cell, ncy - 1) + 1)
        cx = np.arange(max(x0 // self.cell, 0), min((x1 - 1) // self.cell, ncx - 1) + 1)
        cells = (cy[:, None] * ncx + cx[None, :]).ravel()
        starts, stops = self.cell_start[cells], self.cell_start[cells + 1]
        return np.unique(self.cell_ids[_ranges(starts, stops)])

    def bounds(self) -> np.ndarray:
        """(n, 4) float64 bounding boxes (xmin, ymin, xmax, ymax) including the radius."""
        return np.stack(
            [
                np.minimum(self.x0, self.x1) - self.radius,
                np.minimum(self.y0, self.y1) - self.radius,
                np.maximum(self.x0, self.x1) + self.radius,
                np.maximum(self.y0, self.y1) + self.radius,
            ],
            axis=1,
        )


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Concatenation of arange(start, stop) over pairs, vectorised: (sum(stops - starts),)."""
    lengths = np.maximum(stops - starts, 0)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return np.arange(total, dtype=np.int64) + offsets


class PathBuilder:
    """Collects polylines and capsules, then `build()`s an indexed `Geometry`."""

    def __init__(self) -> None:
        self._parts: list[tuple[np.ndarray, ...]] = []

    def add_segments(self, x0, y0, x1, y1, radius) -> None:
        """Add capsules; arguments broadcast to a common 1-D shape."""
        arrays = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64).ravel() for a in (x0, y0, x1, y1, radius)))
        self._parts.append(tuple(np.array(a) for a in arrays))

    def add_discs(self, x, y, radius) -> None:
        """Add filled discs (zero-length capsules)."""
        self.add_segments(x, y, x, y, radius)

    def add_paths(self, x, y, radius, n_valid=None) -> None:
        """Add polylines with a radius per vertex.

        x, y, radius: (k, m) vertices of k paths padded to m (or (m,) for one path);
        n_valid: (k,) number of leading valid vertices per path (default all m). Consecutive
        valid vertices become one capsule whose radius is the mean of the two vertex radii.
        """
        x, y, radius = (np.atleast_2d(np.asarray(a, dtype=np.float64)) for a in (x, y, radius))
        x, y, radius = np.broadcast_arrays(x, y, radius)
        k, m = x.shape
        if m < 2:
            return
        n = np.full(k, m) if n_valid is None else np.asarray(n_valid).reshape(k)
        keep = np.arange(1, m)[None, :] < n[:, None]  # (k, m-1): segment j joins j and j+1
        r_mid = 0.5 * (radius[:, :-1] + radius[:, 1:])
        self.add_segments(x[:, :-1][keep], y[:, :-1][keep], x[:, 1:][keep], y[:, 1:][keep], r_mid[keep])

    def build(self, shape: tuple[int, int], cell: int = INDEX_CELL) -> Geometry:
        """Split long capsules, drop those outside the image, index the rest."""
        if self._parts:
            x0, y0, x1, y1, r = (np.concatenate(col) for col in zip(*self._parts))
        else:
            x0 = y0 = x1 = y1 = r = np.zeros(0)
        r = np.maximum(r, 0.0)
        x0, y0, x1, y1, r = _split_long(x0, y0, x1, y1, r)
        x0, y0, x1, y1, r = _inside(shape, x0, y0, x1, y1, r)
        cell_start, cell_ids = _bucket(shape, cell, x0, y0, x1, y1, r)
        return Geometry((int(shape[0]), int(shape[1])), x0, y0, x1, y1, r, cell, cell_start, cell_ids)


def _split_long(x0, y0, x1, y1, r):
    """Split each capsule into pieces of length <= max(2 r, 3) px.

    A capsule costs the rasteriser its bounding-box area (L + 2r)^2, which per unit length is
    smallest near L = 2r: long diagonal pieces would waste most of their box.
    """
    length = np.hypot(x1 - x0, y1 - y0)
    pieces = np.maximum(np.ceil(length / np.maximum(2.0 * r, _MIN_PIECE)), 1).astype(np.int64)
    if pieces.max(initial=1) == 1:
        return x0, y0, x1, y1, r
    seg = np.repeat(np.arange(x0.size), pieces)
    k = np.arange(seg.size) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    t0 = k / pieces[seg]
    t1 = (k + 1) / pieces[seg]
    dx, dy = (x1 - x0)[seg], (y1 - y0)[seg]
    return x0[seg] + t0 * dx, y0[seg] + t0 * dy, x0[seg] + t1 * dx, y0[seg] + t1 * dy, r[seg]


def _inside(shape, x0, y0, x1, y1, r):
    """Keep capsules whose bounding box meets the pixel centres [0, W-1] x [0, H-1]."""
    h, w = shape
    keep = (
        (np.maximum(x0, x1) + r >= 0)
        & (np.minimum(x0, x1) - r <= w - 1)
        & (np.maximum(y0, y1) + r >= 0)
        & (np.minimum(y0, y1) - r <= h - 1)
    )
    return x0[keep], y0[keep], x1[keep], y1[keep], r[keep]


def _bucket(shape, cell, x0, y0, x1, y1, r):
    """CSR (cell_start, cell_ids): capsule ids grouped by the buckets their box meets."""
    ncy, ncx = -(-shape[0] // cell), -(-shape[1] // cell)

    def cell_range(lo, hi, n):
        a = np.clip(np.floor(lo / cell), 0, n - 1).astype(np.int64)
        b = np.clip(np.floor(hi / cell), 0, n - 1).astype(np.int64)
        return a, b

    cx0, cx1 = cell_range(np.minimum(x0, x1) - r, np.maximum(x0, x1) + r, ncx)
    cy0, cy1 = cell_range(np.minimum(y0, y1) - r, np.maximum(y0, y1) + r, ncy)
    nx, ny = cx1 - cx0 + 1, cy1 - cy0 + 1
    count = nx * ny
    seg = np.repeat(np.arange(x0.size, dtype=np.int64), count)
    k = np.arange(seg.size) - np.repeat(np.cumsum(count) - count, count)
    cells = (cy0[seg] + k // nx[seg]) * ncx + cx0[seg] + k % nx[seg]
    order = np.argsort(cells, kind="stable")
    cell_start = np.searchsorted(cells[order], np.arange(ncy * ncx + 1))
    return cell_start.astype(np.int64), seg[order]
