"""Vector geometry of a synthetic mask: capsule segments plus a spatial bucket index.

Every synthetic structure (a root, a vessel tree, a road network, a sketch) is reduced to a flat
list of *capsules*: a segment (x0, y0)-(x1, y1) thickened by a radius. A pixel (row i, column j)
has its centre at the point (x=j, y=i) and is foreground when that centre lies within `radius`
of the segment; radii may be fractional (a 1-px hair has radius ~0.5) and a zero-length capsule
is a disc. The generators in this package build paths with `PathBuilder` and call `build()`,
which buckets them on a regular grid (capsules are split so their bounding boxes stay tight
and those outside the image dropped as they are added) so that rasterising a window touches
only nearby capsules.

Nothing here draws pixels: see `raster.py`. Run the package's tests with
`.venv/bin/python -m pytest tests/test_synth.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Geometry", "PathBuilder", "INDEX_CELL", "COORD_DTYPE"]

INDEX_CELL = 256
"""Side in pixels of the square buckets of the spatial index."""

_MIN_PIECE = 6.0  # px: long capsules are split into pieces of at most max(2 r, _MIN_PIECE)
COORD_DTYPE = np.float32
"""Storage type of capsule coordinates and radii: halves memory at 1/256 px resolution at 40k.
The stored float32 values *are* the geometry; all pixel tests use float64 arithmetic on them."""


@dataclass(frozen=True, eq=False)
class Geometry:
    """Capsule segments of one synthetic mask, sorted by index bucket.

    Arrays are `COORD_DTYPE` of shape (n,), one entry per capsule, in pixel coordinates
    (x = column, y = row, pixel centres at integers). Each capsule belongs to the bucket
    holding its first end point; `cell_start` (n_cells + 1,) gives the first capsule of each
    bucket `cy * n_cx + cx`, so a bucket's capsules are one contiguous slice. `reach` bounds
    how far (px) any capsule extends from its first end point, so a window only needs the
    buckets within `reach` of it.
    """

    shape: tuple[int, int]
    x0: np.ndarray
    y0: np.ndarray
    x1: np.ndarray
    y1: np.ndarray
    radius: np.ndarray
    cell: int
    cell_start: np.ndarray
    reach: float

    def __len__(self) -> int:
        return int(self.x0.size)

    @property
    def nbytes(self) -> int:
        """Memory held by the geometry's arrays."""
        return sum(a.nbytes for a in (self.x0, self.y0, self.x1, self.y1, self.radius, self.cell_start))

    @property
    def n_cells(self) -> tuple[int, int]:
        """Number of index buckets along (rows, columns)."""
        return (-(-self.shape[0] // self.cell), -(-self.shape[1] // self.cell))

    def candidates(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Ids of the capsules that may touch the window rows [y0, y1) x columns [x0, x1).

        A superset (every capsule of the buckets within `reach`); the rasteriser clips each.
        """
        ncy, ncx = self.n_cells
        m = int(np.ceil(self.reach))
        cy0, cy1 = max((y0 - m) // self.cell, 0), min((y1 - 1 + m) // self.cell, ncy - 1)
        cx0, cx1 = max((x0 - m) // self.cell, 0), min((x1 - 1 + m) // self.cell, ncx - 1)
        if cy0 > cy1 or cx0 > cx1:
            return np.zeros(0, dtype=np.int64)
        rows = np.arange(cy0, cy1 + 1) * ncx
        # The buckets of one row of cells are consecutive, so each row is one slice.
        return _ranges(self.cell_start[rows + cx0], self.cell_start[rows + cx1 + 1])


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Concatenation of arange(start, stop) over pairs, vectorised: (sum(stops - starts),)."""
    lengths = np.maximum(stops - starts, 0)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return np.arange(total, dtype=np.int64) + offsets


class PathBuilder:
    """Collects polylines and capsules for a (H, W) mask, then `build()`s an indexed `Geometry`.

    Capsules are split, clipped to the image and stored compactly as they are added, so the
    builder never holds much more than the final geometry.
    """

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self._parts: list[tuple[np.ndarray, ...]] = []

    def add_segments(self, x0, y0, x1, y1, radius, *, split: bool = True) -> None:
        """Add capsules; arguments broadcast to a common 1-D shape.

        `split=False` keeps long thin capsules whole: for many short 1-px strokes (root hairs)
        splitting saves little rasterising work and costs memory.
        """
        arrays = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64).ravel() for a in (x0, y0, x1, y1, radius)))
        x0, y0, x1, y1, r = *arrays[:4], np.maximum(arrays[4], 0.0)
        if split:
            x0, y0, x1, y1, r = _split_long(x0, y0, x1, y1, r)
        kept = _inside(self.shape, x0, y0, x1, y1, r)
        if kept[0].size:
            self._parts.append(tuple(a.astype(COORD_DTYPE) for a in kept))

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

    def build(self, cell: int = INDEX_CELL) -> Geometry:
        """Concatenate everything added and sort it by index bucket."""
        columns = [np.concatenate(col) for col in zip(*self._parts)] if self._parts else [np.zeros(0, COORD_DTYPE)] * 5
        self._parts = []
        x0, y0, x1, y1, r = columns
        ncy, ncx = -(-self.shape[0] // cell), -(-self.shape[1] // cell)
        cy = np.clip(np.floor(y0 / cell), 0, ncy - 1).astype(np.int64)
        cx = np.clip(np.floor(x0 / cell), 0, ncx - 1).astype(np.int64)
        bucket = cy * ncx + cx
        order = np.argsort(bucket, kind="stable")
        bucket = bucket[order]
        cell_start = np.searchsorted(bucket, np.arange(ncy * ncx + 1)).astype(np.int64)
        del bucket
        x0, y0, x1, y1, r = (a[order] for a in columns)
        del columns, order
        # Farthest any capsule point lies from its first end point, plus how far that end
        # point may sit outside the image (clipped into a border bucket), plus rounding slack.
        length = np.hypot(x1.astype(np.float64) - x0, y1.astype(np.float64) - y0)
        outside = np.maximum.reduce([-x0, -y0, x0 - (self.shape[1] - 1), y0 - (self.shape[0] - 1), np.zeros_like(x0)])
        reach = float(np.max(length + r + outside, initial=0.0)) + 1.0
        return Geometry(self.shape, x0, y0, x1, y1, r, cell, cell_start, reach)


def _split_long(x0, y0, x1, y1, r):
    """Split each capsule into pieces of length <= max(2 r, _MIN_PIECE) px.

    A capsule costs the rasteriser its bounding-box area (L + 2r)^2, which per unit length is
    smallest near L = 2r: long diagonal pieces would waste most of their box; very short
    pieces of thin strokes would cost memory for little gain.
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
