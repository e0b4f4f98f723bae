"""Topology metrics: connected components, holes (Betti numbers), clDice, skeleton recall.

Conventions (2-D binary masks, True = structure):

- Components are 8-connected foreground components (Betti-0, B0). By digital-topology
  duality, holes are then the 4-connected background components that do not touch the image
  border (Betti-1, B1).
- B1 comes from the Euler number E = B0 - B1, counted with Gray's bit-quads over the
  zero-padded image: E8 = (Q1 - Q3 - 2*QD) / 4 where Q1 / Q3 are the 2x2 windows holding one /
  three foreground pixels and QD the windows holding exactly a diagonal pair. Every 2x2 window
  is counted once, so the count is exactly additive over tiles (boundary windows are counted
  from the tiles' border rows and columns).
- Components of a huge mask are counted tile by tile: each tile is labelled alone
  (`scipy.ndimage.label`), and labels touching across tile borders (8-neighbour pairs of
  border pixels) are merged with a sparse-graph union-find; the count is exact.
- Skeletons are `skimage.morphology.skeletonize` (Zhang's thinning). Masks up to
  `tiles.IN_MEMORY_PIXELS` are skeletonised whole; larger ones tile by tile with a halo
  (default 32 px): thinning is local, so the skeleton in a tile's core equals the whole-image
  skeleton wherever structures are thinner than about twice the halo (an approximation for
  wider blobs, documented rather than hidden).

Usage::

    from distpaint.metrics.topology import betti_numbers, cldice
    b0, b1 = betti_numbers(mask)           # NumPy, Zarr or Dask
    score = cldice(pred, truth).cldice
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.morphology import skeletonize

from distpaint.metrics.tiles import Tile, map_tiles

__all__ = [
    "DEFAULT_HALO",
    "EIGHT",
    "ClDice",
    "TileComponents",
    "betti_errors",
    "betti_numbers",
    "cldice",
    "cldice_from_counts",
    "count_components",
    "euler_from_tiles",
    "euler_number",
    "n_components",
    "quad_counts",
    "skeleton_recall",
    "skeleton_window",
    "summarize_components",
]

DEFAULT_HALO = 32
"""Context pixels around each tile for skeleton-based metrics."""
EIGHT = np.ones((3, 3), dtype=bool)
"""8-connectivity structuring element."""


# ---- components and Euler number, tile by tile ---------------------------------------------
def quad_counts(a: np.ndarray) -> np.ndarray:
    """[Q1, Q3, QD]: the 2x2 windows of bool array `a` (all lying inside `a`) with exactly one,
    exactly three, and exactly two diagonal foreground pixels."""
    if a.shape[0] < 2 or a.shape[1] < 2:
        return np.zeros(3, dtype=np.int64)
    tl, tr, bl, br = a[:-1, :-1], a[:-1, 1:], a[1:, :-1], a[1:, 1:]
    s = tl.astype(np.uint8) + tr + bl + br
    diagonal = (s == 2) & (tl == br)
    return np.array([np.count_nonzero(s == 1), np.count_nonzero(s == 3),
                     np.count_nonzero(diagonal)], dtype=np.int64)


@dataclass
class TileComponents:
    """What the merge needs from one tile of one mask: its local label count, the local labels
    along its four borders (0 = background) and its interior bit-quad counts."""

    n: int
    """Number of 8-connected components inside the tile alone."""
    top: np.ndarray
    """Labels of the first core row."""
    bottom: np.ndarray
    """Labels of the last core row."""
    left: np.ndarray
    """Labels of the first core column."""
    right: np.ndarray
    """Labels of the last core column."""
    quads: np.ndarray
    """[Q1, Q3, QD] over the 2x2 windows inside the tile."""


def summarize_components(core: np.ndarray) -> TileComponents:
    """Label one tile's core (8-connectivity) and keep only what the merge needs."""
    if not core.any():  # common for sparse masks (branch points): skip the labelling pass
        zeros = np.zeros(core.shape, np.int32)
        return TileComponents(0, zeros[0], zeros[-1], zeros[:, 0], zeros[:, -1],
                              np.zeros(3, np.int64))
    labels, n = ndimage.label(core, structure=EIGHT)
    return TileComponents(
        n=int(n), top=labels[0].copy(), bottom=labels[-1].copy(),
        left=labels[:, 0].copy(), right=labels[:, -1].copy(), quads=quad_counts(core),
    )


def _neighbour_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(k, 2) label pairs of 8-adjacent foreground pixels between two facing border lines."""
    pairs = []
    for d in (-1, 0, 1):
        left, right = (a[: len(a) - d], b[d:]) if d >= 0 else (a[-d:], b[: len(b) + d])
        hit = (left > 0) & (right > 0)
        pairs.append(np.stack([left[hit], right[hit]], axis=1))
    return np.concatenate(pairs)


def _offsets(grid: Sequence[Sequence[TileComponents]]) -> np.ndarray:
    counts = np.array([[t.n for t in row] for row in grid], dtype=np.int64)
    return (np.cumsum(counts.ravel()) - counts.ravel()).reshape(counts.shape)


def _globalize(labels: np.ndarray, offset: int) -> np.ndarray:
    return np.where(labels > 0, labels.astype(np.int64) + offset, 0)


def count_components(grid: Sequence[Sequence[TileComponents]]) -> int:
    """Exact number of 8-connected components of the mask the tile summaries were made from."""
    offsets = _offsets(grid)
    total = int(sum(t.n for row in grid for t in row))
    pairs = []
    for i, row in enumerate(grid):
        for j in range(len(row) - 1):  # vertical borders inside a tile row
            pairs.append(_neighbour_pairs(_globalize(row[j].right, offsets[i, j]),
                                          _globalize(row[j + 1].left, offsets[i, j + 1])))
        if i + 1 < len(grid):  # horizontal border: full-width rows also catch tile corners
            bottom = np.concatenate([_globalize(t.bottom, offsets[i, j]) for j, t in enumerate(row)])
            top = np.concatenate([_globalize(t.top, offsets[i + 1, j])
                                  for j, t in enumerate(grid[i + 1])])
            pairs.append(_neighbour_pairs(bottom, top))
    pairs = np.concatenate(pairs) if pairs else np.empty((0, 2), np.int64)
    if len(pairs) == 0:
        return total
    nodes, inverse = np.unique(pairs, return_inverse=True)
    inverse = inverse.reshape(pairs.shape)
    graph = coo_matrix((np.ones(len(pairs), np.int8), (inverse[:, 0], inverse[:, 1])),
                       shape=(len(nodes), len(nodes)))
    n_merged_groups, _ = connected_components(graph, directed=False)
    return total - (len(nodes) - n_merged_groups)


def euler_from_tiles(grid: Sequence[Sequence[TileComponents]]) -> int:
    """Exact 8-connectivity Euler number (B0 - B1) from tile summaries.

    Each 2x2 window of the zero-padded image is counted once: inside a tile (from the tile),
    across a horizontal tile border or the top/bottom image edge (from full-width border rows),
    or across a vertical border / left-right edge within one tile row (from border columns).
    """
    quads = sum((t.quads for row in grid for t in row), np.zeros(3, np.int64))
    rows = [np.concatenate([t.top > 0 for t in row]) for row in grid]
    bottoms = [np.concatenate([t.bottom > 0 for t in row]) for row in grid]
    zero_row = np.zeros_like(rows[0])
    for above, below in zip([zero_row, *bottoms], [*rows, zero_row], strict=True):
        quads += quad_counts(np.pad(np.stack([above, below]), ((0, 0), (1, 1))))
    for row in grid:
        zero_col = np.zeros_like(row[0].left > 0)
        lefts = [zero_col, *[t.right > 0 for t in row]]
        rights = [*[t.left > 0 for t in row], zero_col]
        for a, b in zip(lefts, rights, strict=True):
            quads += quad_counts(np.stack([a, b], axis=1))
    q1, q3, qd = (int(q) for q in quads)
    return (q1 - q3 - 2 * qd) // 4


def _components_kernel(windows: dict, tile: Tile) -> TileComponents:
    return summarize_components(windows["mask"])


def _component_grid(mask: Any, tile: int | None, workers: int | None):
    return map_tiles(_components_kernel, {"mask": mask}, halo=0, tile=tile, workers=workers)


def n_components(mask: Any, *, tile: int | None = None, workers: int | None = None) -> int:
    """Number of 8-connected foreground components (B0), exact for any size."""
    return count_components(_component_grid(mask, tile, workers))


def euler_number(mask: Any, *, tile: int | None = None, workers: int | None = None) -> int:
    """8-connectivity Euler number B0 - B1 (equals `skimage.measure.euler_number(mask, 2)`)."""
    return euler_from_tiles(_component_grid(mask, tile, workers))


def betti_numbers(mask: Any, *, tile: int | None = None,
                  workers: int | None = None) -> tuple[int, int]:
    """(B0, B1): 8-connected components and holes (4-connected background components not
    touching the border), exact for any size, in one pass."""
    grid = _component_grid(mask, tile, workers)
    b0 = count_components(grid)
    return b0, b0 - euler_from_tiles(grid)


def betti_errors(pred: Any, truth: Any, **kwargs: Any) -> tuple[int, int]:
    """(|B0(pred) - B0(truth)|, |B1(pred) - B1(truth)|)."""
    p, t = betti_numbers(pred, **kwargs), betti_numbers(truth, **kwargs)
    return abs(p[0] - t[0]), abs(p[1] - t[1])


# ---- skeleton metrics ----------------------------------------------------------------------
def skeleton_window(window: np.ndarray) -> np.ndarray:
    """Skeleton of a (haloed) window; empty windows skip the thinning."""
    if not window.any():
        return np.zeros_like(window, dtype=bool)
    return skeletonize(window)


@dataclass(frozen=True)
class ClDice:
    """clDice (Shit et al., CVPR 2021) with its two halves."""

    precision: float
    """Tprec = |S(pred) & truth| / |S(pred)|: share of the predicted centreline on true structure
    (1.0 when the prediction has no skeleton: it claims nothing false)."""
    sensitivity: float
    """Tsens = |S(truth) & pred| / |S(truth)|: share of the true centreline covered
    (1.0 when the truth has no skeleton: nothing to cover)."""
    cldice: float
    """2 Tprec Tsens / (Tprec + Tsens); 0 when both are 0."""


def cldice_from_counts(s_pred: float, s_pred_in_truth: float,
                       s_truth: float, s_truth_in_pred: float) -> ClDice:
    """clDice from the four skeleton pixel counts (summable over tiles)."""
    precision = s_pred_in_truth / s_pred if s_pred else 1.0
    sensitivity = s_truth_in_pred / s_truth if s_truth else 1.0
    total = precision + sensitivity
    return ClDice(float(precision), float(sensitivity),
                  float(2 * precision * sensitivity / total) if total else 0.0)


def _cldice_kernel(windows: dict, tile: Tile) -> np.ndarray:
    pred, truth = windows["pred"], windows["truth"]
    sp, st = tile.core(skeleton_window(pred)), tile.core(skeleton_window(truth))
    p, t = tile.core(pred), tile.core(truth)
    return np.array([sp.sum(), (sp & t).sum(), st.sum(), (st & p).sum()], dtype=np.int64)


def cldice(pred: Any, truth: Any, *, halo: int = DEFAULT_HALO, tile: int | None = None,
           workers: int | None = None) -> ClDice:
    """clDice of `pred` against `truth` (skeletons per tile with `halo`; see module docstring)."""
    grid = map_tiles(_cldice_kernel, {"pred": pred, "truth": truth}, halo=halo, tile=tile,
                     workers=workers)
    return cldice_from_counts(*sum(c for row in grid for c in row))


def _recall_kernel(windows: dict, tile: Tile) -> np.ndarray:
    st = tile.core(skeleton_window(windows["truth"])) & tile.core(windows["gaps"])
    return np.array([st.sum(), (st & tile.core(windows["pred"])).sum()], dtype=np.int64)


def skeleton_recall(pred: Any, truth: Any, gaps: Any, *, halo: int = DEFAULT_HALO,
                    tile: int | None = None, workers: int | None = None) -> float:
    """Skeleton recall inside the gaps (after Kirchhoff et al., ECCV 2024): the share of the
    true centreline inside the gap mask M that `pred` covers, |S(truth) & M & pred| /
    |S(truth) & M|. S(truth) lies inside truth and M = truth minus the corrupted input, so no
    dilation of M is needed. NaN when no true centreline pixel lies in M (nothing to restore).
    """
    grid = map_tiles(_recall_kernel, {"pred": pred, "truth": truth, "gaps": gaps}, halo=halo,
                     tile=tile, workers=workers)
    inside, covered = sum(c for row in grid for c in row)
    return float(covered / inside) if inside else float("nan")
