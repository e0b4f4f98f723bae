"""Pixel metrics of the paper (section V-A) and the false-fill rate, blind.

Every metric compares the whole predicted mask with the truth; predictions are never pasted
into the known gap locations (the authors' code did, which hides false positives).

Definitions (pred, truth, input = corrupted mask, M = gap mask, all 2-D bool):

- `mse`: mean of (pred - truth)^2 over all pixels (for binary masks the share of differing
  pixels).
- `mse_in_gaps`: the same mean over the pixels of M only (NaN when M is empty).
- `pixel_difference`: number of pixels where pred != truth.
- `false_fill`: of the pixels the method added (pred & ~input), the share lying farther than
  `tolerance` pixels (Euclidean) from every gap pixel: |pred & ~input & ~dilate(M, r)| /
  |pred & ~input|; 0 when nothing was added. A model that paints everything scores near 1.
- `relative_improvement(m, m_after)` = (m - m_after) / m, signed: m is the metric of the input
  against the truth, m_after the metric of the prediction. The identity scores 0, a perfect
  repair 1, a repair that makes things worse is negative. NaN when m == 0 (the input had no
  error of that kind, so there is nothing to improve; aggregates skip NaN).
- `paper_relative_improvement` = |m - m_after| / m, the paper's formula. Its absolute value
  also rewards getting worse (doubling the error scores 1, like a perfect repair), so the
  signed form is the headline and this one is kept only for comparison with Tables I-IV.

All functions take NumPy, Zarr or Dask arrays; Dask ones are reduced chunk by chunk.

Usage::

    from distpaint.metrics.pixel import pixel_difference, relative_improvement
    ri = relative_improvement(pixel_difference(inp, truth), pixel_difference(pred, truth))
"""

from __future__ import annotations

import math
from typing import Any

import dask.array as da
import numpy as np
from skimage.morphology import disk

from distpaint.metrics.tiles import Tile, common_shape, map_tiles

__all__ = [
    "DEFAULT_FILL_TOLERANCE",
    "false_fill",
    "false_fill_counts",
    "mse",
    "mse_in_gaps",
    "paper_relative_improvement",
    "pixel_difference",
    "relative_improvement",
]

DEFAULT_FILL_TOLERANCE = 2
"""Pixels around the gap mask where added pixels still count as filling the gap."""


def _lazy(array: Any) -> Any:
    """NumPy and Dask arrays as they are; anything else (Zarr) as Dask."""
    if isinstance(array, np.ndarray | da.Array):
        return array
    return da.from_array(array, chunks=getattr(array, "chunks", None), name=False)


def _value(x: Any) -> float:
    return float(x.compute() if hasattr(x, "compute") else x)


def pixel_difference(pred: Any, truth: Any) -> int:
    """Number of pixels where pred != truth."""
    common_shape({"pred": pred, "truth": truth})
    return int(_value((_lazy(pred) != _lazy(truth)).sum()))


def mse(pred: Any, truth: Any) -> float:
    """Mean of (pred - truth)^2 over the whole mask (binary: share of differing pixels)."""
    h, w = common_shape({"pred": pred, "truth": truth})
    return pixel_difference(pred, truth) / (h * w)


def mse_in_gaps(pred: Any, truth: Any, gaps: Any) -> float:
    """Mean of (pred - truth)^2 over the gap pixels M; NaN when M is empty."""
    common_shape({"pred": pred, "truth": truth, "gaps": gaps})
    g = _lazy(gaps).astype(bool)
    n = _value(g.sum())
    if n == 0:
        return float("nan")
    return _value(((_lazy(pred) != _lazy(truth)) & g).sum()) / n


def false_fill_counts(pred: np.ndarray, inp: np.ndarray, gaps_window: np.ndarray,
                      tile: Tile, tolerance: int) -> tuple[int, int]:
    """(added, added outside the dilated gaps) for one tile: `pred` and `inp` are cores,
    `gaps_window` has the tile's halo (>= tolerance) so the test is exact at the core edge.

    Added pixels are few, so instead of dilating the whole gap window each added pixel looks
    up the gap mask at the offsets of a disk of radius `tolerance`."""
    ys, xs = np.nonzero(pred & ~inp)
    if len(ys) == 0:
        return 0, 0
    ys, xs = ys + tile.halo, xs + tile.halo
    near = np.zeros(len(ys), bool)
    for dy, dx in np.argwhere(disk(tolerance)) - tolerance:
        near |= gaps_window[ys + dy, xs + dx]
    return len(ys), int(np.count_nonzero(~near))


def false_fill(pred: Any, inp: Any, gaps: Any, *, tolerance: int = DEFAULT_FILL_TOLERANCE,
               tile: int | None = None, workers: int | None = None) -> float:
    """Share of the added pixels (pred & ~input) lying farther than `tolerance` px from any gap
    pixel; 0.0 when nothing was added. See the module docstring."""

    def kernel(windows: dict, t: Tile) -> np.ndarray:
        return np.array(false_fill_counts(t.core(windows["pred"]), t.core(windows["input"]),
                                          windows["gaps"], t, tolerance))

    grid = map_tiles(kernel, {"pred": pred, "input": inp, "gaps": gaps}, halo=tolerance,
                     tile=tile, workers=workers)
    added, outside = sum(c for row in grid for c in row)
    return float(outside / added) if added else 0.0


def relative_improvement(before: float, after: float) -> float:
    """(before - after) / before: 0 for no change, 1 for a perfect repair, negative when the
    metric got worse; NaN when before == 0 (nothing to improve)."""
    if before == 0 or math.isnan(before) or math.isnan(after):
        return float("nan")
    return float((before - after) / before)


def paper_relative_improvement(before: float, after: float) -> float:
    """|before - after| / before as printed in the paper (section V-A); NaN when before == 0.
    Rewards getting worse as much as getting better: prefer `relative_improvement`."""
    if before == 0 or math.isnan(before) or math.isnan(after):
        return float("nan")
    return float(abs(before - after) / before)
