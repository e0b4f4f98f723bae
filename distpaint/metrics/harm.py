"""Harm metrics: what a blind repair paints that it should not, and a per-mask no-harm verdict.

A blind inpainter closes gaps but, on real masks, also lengthens natural dead ends into spurs,
thickens thin lines along their length, paints islands and may even erase input pixels; the
repaired mask can then be worse than the damaged input. These metrics measure that harm. All
need the corrupted input (I) besides the repair (P) and the truth (T); the gap mask M is the
foreground the corruption removed (M = T & ~I). Notation: A = P & ~I (added pixels),
near(M) = pixels within `tolerance` px (Euclidean, default 3, the judge's false-fill
tolerance: `DEFAULT_HARM_TOLERANCE`) of a gap pixel, far = outside near(M), S(P) the skeleton
of P (`skimage.morphology.skeletonize`, as for clDice), adj(I) = pixels 8-adjacent to an
input pixel. An added *piece* is an 8-connected component of A.

- `cldice_input`: clDice of the input against the truth (what doing nothing scores).
- `cldice_gain` = cldice(P) - cldice_input: > 0 when the repair improved the centreline
  agreement, < 0 when it did harm (spurs and islands lower the precision half).
- `components_added` = components(P) - components(I) (8-connected): positive = pieces added,
  negative = the repair joined pieces (what closing gaps does).
- `input_removed` = |I & ~P|: input pixels the repair erased; must be 0.
- `islands`: added pieces touching no input pixel (no pixel of the piece is 8-adjacent to I);
  `island_pixels`: their pixels. Each island is a new component. Counted wherever it lies, in a
  gap or not (a piece floating in the middle of a gap joins nothing either).
- `spur_length`: centreline grown away from the gaps, in skeleton pixels (a diagonal run of n
  pixels counts n). Spur pixels are the pixels of S(P) & A & far that lie in added pieces
  touching the input and either are not in adj(I), or are in adj(I) with an 8-neighbour that
  is a spur pixel of the first kind (the base of a spur where it leaves the input).
  The adjacency rule keeps one-sided thickening out: when a 1-px line gets a 1-px band on
  one side, the skeleton of the 2-px line may run in the added band, but every pixel of it is
  in adj(I) with no neighbour farther out, so it is thickening, not spur (a band 3 px or more
  wide painted along one side has a centreline of its own >= 2 px from the input, and that
  centreline counts as spur: a parallel line). A spur drawn L px
  from a dead end (1 px wide) measures L; a wider one about L - 1 (its skeleton stops short of
  the rounded tip). A false bridge between two input lines away from the gaps counts too (it is
  centreline grown away from the gaps). Islands are not spurs (they are counted above).
  0 for a perfect fill, since every added pixel then lies in M.
- `thickening`: pixels of A & far & adj(I) that are not spur pixels: paint along existing input
  edges, away from the gaps (only the first 1-px layer; further layers count in false_fill).
  `thickening_share` = thickening / |A| (0 when nothing was added).
- `no_harm`: 1.0 when cldice(P) >= cldice_input - 1e-9, components(P) <= components(I) and
  input_removed == 0, else 0.0. Its mean over masks is the share of masks the repair did not
  harm (the aggregate tables report it as such).

Not measured: junction (corner) fill. The concave corner of a junction has no clean local
definition: the morphological closing of the input also fills the stair steps of every slanted
digital line, and a skeleton-junction neighbourhood needs an arbitrary width-dependent radius.
Corner fill away from the gaps shows up as thickening (its first layer touches the input) and
in false_fill.

How to use: read `no_harm` first (the share of masks without harm), then `cldice_gain` and
`components_added` for how much; `spur_length`, `thickening(_share)`, `islands` and
`input_removed` say which kind of harm a method does. `false_fill` (`pixel`) stays the share
of all added pixels away from the gaps, tolerance `EvalConfig.fill_tolerance`.

Every value is computed in `evaluate`'s single tiled pass and is exact across tiles: sums of
per-tile counts, neighbourhood tests on the tile's haloed window (halo >= tolerance + 1), and
the added pieces labelled per tile and merged across tile borders (per piece: touches the
input, pixels, spur pixels), as `topology.count_components` merges components. Memory per tile
is the window plus a few numbers per added piece on the tile's border.

Usage::

    from distpaint.metrics import evaluate
    m = evaluate(pred, truth, input=corrupted)
    m["no_harm"], m["spur_length"], m["thickening_share"], m["islands"]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.morphology import disk

from distpaint.metrics.tiles import Tile
from distpaint.metrics.topology import EIGHT, _globalize, _neighbour_pairs

__all__ = [
    "DEFAULT_HARM_TOLERANCE",
    "HARM_KEYS",
    "NO_HARM_EPS",
    "TileAdded",
    "harm_tile",
    "merge_added",
    "no_harm",
]

DEFAULT_HARM_TOLERANCE = 3
"""Px around the gaps where added pixels are repair, not harm (the judge's tolerance)."""
NO_HARM_EPS = 1e-9
"""clDice may not drop by more than this for `no_harm`."""
HARM_KEYS = ("cldice_input", "cldice_gain", "components_added", "input_removed", "islands",
             "island_pixels", "spur_length", "thickening", "thickening_share", "no_harm")
"""The harm metrics, in report order."""

_RING = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


@dataclass
class TileAdded:
    """The added pieces (8-connected components of pred & ~input) of one tile's core: pieces
    wholly inside the core are reduced here, pieces reaching the core's border are kept with
    compact ids 1..k for the merge across tiles."""

    interior: np.ndarray
    """[islands, island pixels, spur pixels of attached pieces] of the pieces inside the core."""
    top: np.ndarray
    """Compact piece ids of the first core row (0 = not added)."""
    bottom: np.ndarray
    """... of the last core row."""
    left: np.ndarray
    """... of the first core column."""
    right: np.ndarray
    """... of the last core column."""
    touch: np.ndarray
    """(k,) bool: the tile's part of piece i+1 touches the input (8-adjacency)."""
    pixels: np.ndarray
    """(k,) pixels of the tile's part of piece i+1."""
    spur: np.ndarray
    """(k,) spur pixels of the tile's part of piece i+1."""


def _empty(shape: tuple[int, int]) -> TileAdded:
    zeros = np.zeros(shape, np.int32)
    return TileAdded(np.zeros(3, np.int64), zeros[0], zeros[-1], zeros[:, 0], zeros[:, -1],
                     np.zeros(0, bool), np.zeros(0, np.int64), np.zeros(0, np.int64))


def _any_at(window: np.ndarray, ys: np.ndarray, xs: np.ndarray, offsets) -> np.ndarray:
    """Per pixel (ys, xs) of `window`: is any pixel at one of `offsets` set."""
    out = np.zeros(len(ys), bool)
    for dy, dx in offsets:
        out |= window[ys + dy, xs + dx]
    return out


def harm_tile(pred: np.ndarray, inp: np.ndarray, gaps: np.ndarray, skel_pred: np.ndarray,
              tile: Tile, tolerance: int) -> tuple[dict[str, int], TileAdded]:
    """({input_removed, thickening}, TileAdded) of one tile from the haloed windows of pred,
    input, gaps and skeleton(pred) (halo >= tolerance + 1, so every test is exact in the core).

    Added pixels are few, so the neighbourhood tests look the windows up at the added pixels'
    offsets instead of dilating whole windows (as `pixel.false_fill_counts` does)."""
    h = tile.halo
    if h < tolerance + 1:
        raise ValueError(f"harm metrics need halo >= tolerance + 1, got {h} and {tolerance}")
    pc, ic = tile.core(pred), tile.core(inp)
    counts = {"input_removed": int(np.count_nonzero(ic & ~pc)), "thickening": 0}
    added = pc & ~ic
    if not added.any():
        return counts, _empty(added.shape)
    near_offsets = np.argwhere(disk(tolerance)) - tolerance

    # spur candidates of the first kind, on the core plus a 1-px ring (for the base rule)
    skel_added = skel_pred & ~inp
    H, W = skel_added.shape
    ring = np.zeros_like(skel_added)
    ring[h - 1 : H - h + 1, h - 1 : W - h + 1] = skel_added[h - 1 : H - h + 1, h - 1 : W - h + 1]
    sy, sx = np.nonzero(ring)
    far_tip = np.zeros_like(skel_added)
    if len(sy):
        free = ~_any_at(gaps, sy, sx, near_offsets) & ~_any_at(inp, sy, sx, _RING)
        far_tip[sy[free], sx[free]] = True

    labels, n = ndimage.label(added, structure=EIGHT)
    ys, xs = np.nonzero(added)
    piece = labels[ys, xs]
    wy, wx = ys + h, xs + h
    adj = _any_at(inp, wy, wx, _RING)
    near = _any_at(gaps, wy, wx, near_offsets)
    spur = skel_pred[wy, wx] & ~near & (~adj | _any_at(far_tip, wy, wx, _RING))
    counts["thickening"] = int(np.count_nonzero(~near & adj & ~spur))

    touch = np.bincount(piece, weights=adj, minlength=n + 1) > 0
    pixels = np.bincount(piece, minlength=n + 1).astype(np.int64)
    spurs = np.bincount(piece, weights=spur, minlength=n + 1).astype(np.int64)
    on_border = np.zeros(n + 1, bool)
    for line in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        on_border[line] = True
    on_border[0] = False
    inner = ~on_border
    inner[0] = False
    interior = np.array([np.count_nonzero(inner & ~touch), pixels[inner & ~touch].sum(),
                         spurs[inner & touch].sum()], np.int64)
    ids = np.flatnonzero(on_border)
    compact = np.zeros(n + 1, np.int32)
    compact[ids] = np.arange(1, len(ids) + 1, dtype=np.int32)
    return counts, TileAdded(
        interior, compact[labels[0]], compact[labels[-1]], compact[labels[:, 0]],
        compact[labels[:, -1]], touch[ids], pixels[ids], spurs[ids])


def merge_added(grid: Sequence[Sequence[TileAdded]]) -> tuple[int, int, int]:
    """(islands, island pixels, spur length) of the whole mask from its tiles' summaries:
    pieces reaching tile borders are merged across the borders (8-adjacency), a merged piece
    touches the input if any of its parts does."""
    flat = [t for row in grid for t in row]
    interior = sum((t.interior for t in flat), np.zeros(3, np.int64))
    counts = np.array([[len(t.touch) for t in row] for row in grid], np.int64)
    offsets = (np.cumsum(counts.ravel()) - counts.ravel()).reshape(counts.shape)
    total = int(counts.sum())
    if total == 0:
        return int(interior[0]), int(interior[1]), int(interior[2])
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
    edges = np.concatenate(pairs) - 1 if pairs else np.empty((0, 2), np.int64)
    graph = coo_matrix((np.ones(len(edges), np.int8), (edges[:, 0], edges[:, 1])),
                       shape=(total, total))
    n_pieces, group = connected_components(graph, directed=False)
    touch = np.bincount(group, weights=np.concatenate([t.touch for t in flat]),
                        minlength=n_pieces) > 0
    pixels = np.bincount(group, weights=np.concatenate([t.pixels for t in flat]),
                         minlength=n_pieces)
    spur = np.bincount(group, weights=np.concatenate([t.spur for t in flat]), minlength=n_pieces)
    return (int(interior[0] + np.count_nonzero(~touch)),
            int(interior[1] + round(pixels[~touch].sum())),
            int(interior[2] + round(spur[touch].sum())))


def no_harm(cldice_pred: float, cldice_input: float, components_pred: int,
            components_input: int, input_removed: int) -> float:
    """1.0 when the repair did no harm (clDice not lower than the input's, no component added,
    no input pixel erased), else 0.0."""
    ok = (cldice_pred >= cldice_input - NO_HARM_EPS and components_pred <= components_input
          and input_removed == 0)
    return 1.0 if ok else 0.0
