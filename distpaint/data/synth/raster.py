"""Exact, chunk-independent rasterisation of capsule geometry.

`rasterize(geometry, y0, y1, x0, x1)` returns the bool window rows [y0, y1), columns [x0, x1)
of the mask. Each pixel is decided by one test, `squared distance from its centre to a capsule's
segment <= radius^2`, computed in float64 from absolute coordinates with elementwise IEEE
operations only, so a pixel gets the same answer whichever window it is computed in: the
chunking of the mask never changes a pixel.

The work is vectorised over (capsule, pixel) pairs: every candidate capsule contributes the
pixels of its bounding box clipped to the window, and pairs are processed in batches of at
most `PAIR_BATCH` so memory stays bounded whatever the window size.
"""

from __future__ import annotations

import numpy as np

from distpaint.data.synth.geometry import Geometry

__all__ = ["rasterize", "PAIR_BATCH"]

PAIR_BATCH = 1 << 18
"""Most (capsule, pixel) pairs tested at once: ~25 MB of temporaries per thread."""


def rasterize(geometry: Geometry, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """Bool mask of the window rows [y0, y1) x columns [x0, x1) of `geometry`.

    The window may extend past the image; pixels outside it are simply whatever the capsules
    cover there (normally nothing, as capsules outside the image were dropped).
    """
    out = np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), dtype=bool)
    if out.size == 0 or len(geometry) == 0:
        return out
    ids = geometry.candidates(y0, y1, x0, x1)
    if ids.size == 0:
        return out
    boxes = _clipped_boxes(geometry, ids, y0, y1, x0, x1)
    ids, bx0, by0, bw, bh = boxes
    area = bw * bh
    for part in _batches(area, PAIR_BATCH):
        _fill(out, geometry, ids[part], bx0[part], by0[part], bw[part], area[part], y0, x0)
    return out


def _clipped_boxes(g: Geometry, ids, y0, y1, x0, x1):
    """Integer pixel boxes of the candidate capsules clipped to the window; empty ones dropped."""
    sx0, sy0, sx1, sy1, r = (a[ids].astype(np.float64) for a in (g.x0, g.y0, g.x1, g.y1, g.radius))
    bx0 = np.maximum(np.ceil(np.minimum(sx0, sx1) - r), x0).astype(np.int64)
    bx1 = np.minimum(np.floor(np.maximum(sx0, sx1) + r), x1 - 1).astype(np.int64)
    by0 = np.maximum(np.ceil(np.minimum(sy0, sy1) - r), y0).astype(np.int64)
    by1 = np.minimum(np.floor(np.maximum(sy0, sy1) + r), y1 - 1).astype(np.int64)
    bw, bh = bx1 - bx0 + 1, by1 - by0 + 1
    keep = (bw > 0) & (bh > 0)
    return ids[keep], bx0[keep], by0[keep], bw[keep], bh[keep]


def _batches(area: np.ndarray, limit: int):
    """Consecutive slices of capsules whose summed box area is about `limit` (at least one)."""
    ends = np.cumsum(area)
    start = 0
    while start < area.size:
        base = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, base + limit, side="right")), start + 1)
        yield slice(start, stop)
        start = stop


def _fill(out, g: Geometry, ids, bx0, by0, bw, area, y0, x0) -> None:
    """Set the pixels of `out` covered by the capsules `ids` (boxes already clipped)."""
    seg = np.repeat(np.arange(ids.size), area)  # (P,) which capsule each pair belongs to
    local = np.arange(seg.size) - np.repeat(np.cumsum(area) - area, area)
    row = local // bw[seg]
    px = bx0[seg] + (local - row * bw[seg])
    py = by0[seg] + row
    del local, row
    sid = ids[seg]
    # float64 from here on: the stored float32 values are exact in float64.
    sx, sy = g.x0[sid].astype(np.float64), g.y0[sid].astype(np.float64)
    dx, dy = g.x1[sid] - sx, g.y1[sid] - sy
    ax, ay = px - sx, py - sy
    len2 = dx * dx + dy * dy
    # t: projection of the pixel centre on the segment, clamped to its ends (0 for a disc).
    t = np.divide(ax * dx + ay * dy, len2, out=np.zeros_like(len2), where=len2 > 0)
    np.clip(t, 0.0, 1.0, out=t)
    ex, ey = ax - t * dx, ay - t * dy
    r = g.radius[sid].astype(np.float64)
    hit = ex * ex + ey * ey <= r * r
    out[py[hit] - y0, px[hit] - x0] = True
