"""Which added pieces a repair keeps (`distpaint infer --keep`): do no harm by default.

A blind inpainter paints more than the gaps: on real masks it lengthens natural dead ends into
spurs, thickens thin lines along their length, fills the corners of junctions and paints
islands. None of these joins anything, and each lowers clDice or adds pieces. The policy
decides, per 8-connected piece of added pixels (output & ~input), whether to keep it:

- `all`: every piece (the model's raw output, as the paper does it);
- `attached`: pieces touching the input (islands dropped; `distpaint.infer.islands`);
- `bridges`: pieces that join the input at two or more separate places (a closed gap, a closed
  loop) next to a dead end of the input, or that fill most of a small hole of the input (a cut
  inside a wide line). Spurs, thickening and islands touch the input at most once, and corner
  fill and false bridges between neighbouring lines touch their sides, not a dead end: all are
  dropped, so the repair never adds a component and only paints where it reconnects.
- `ends`: the bridges that also close dead ends without leaving any: with the piece the input's
  skeleton has fewer end points near it (within 2 px) than without, and none on the piece. A
  bridge that overshoots into a spur, or a blob much wider than the line it joins (its skeleton
  branches), is dropped. Hole fills as with `bridges`. `general`'s default, at a lower
  threshold than `bridges` needs (chosen on the real validation masks: docs/REAL_MASKS.md).

With a confidence floor (`distpaint infer --min-confidence F`), a piece the policy keeps is
dropped when the model's mean probability over its pixels is under F: on 1-2 px lines a bridge
helps clDice only where its centreline lies on the true line, and the unsure ones (a straight
guess across a cut in a meander) lie beside it more often (docs/REAL_MASKS.md). F = 1
(NO_REPAIR) keeps no piece; `--min-confidence auto` chooses F per mask
(`distpaint.infer.self_check`).

"Separate places" are the 8-connected pieces of the input pixels next to the added piece: a
bridge across a cut touches the two cut ends, a spur only the dead end it grows from. A dead
end is an end point of the input's skeleton (`skimage.morphology.skeletonize`, computed around
the piece); the piece is next to it when it comes within the line's half width (the input's
distance to background there) plus `DEAD_END_REACH` px: a cut across a line leaves a dead end on
each side, a cut at a junction one on the branch's side. A hole is
a 4-connected background component of the input that does not reach the window's edge; a piece
fills it when it lies inside it and covers at least `HOLE_FILL_SHARE` of it (a filled cut
covers all of its hole; a spur into a city block covers a sliver of it).

Tiled inference decides each tile from its window: a piece that reaches an open edge of the
window (one inside the image) may continue beyond it and is kept, since it cannot be judged
there. Pieces that fit in the halo are judged exactly, whatever the tiling.

    kept = keep_added(output, given, "bridges", open_edges=(top, bottom, left, right))
    kept = keep_added(output, given, "ends", probs=probs, min_confidence=0.55)
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from distpaint.errors import ConfigError
from distpaint.infer.islands import drop_islands, keep_open_edges

__all__ = ["KEEP_POLICIES", "HOLE_FILL_SHARE", "NO_REPAIR", "check_keep", "check_min_confidence",
           "keep_added", "bridging_pieces", "confident_pieces"]

KEEP_POLICIES = ("ends", "bridges", "attached", "all")
"""The policies, safest first."""
HOLE_FILL_SHARE = 0.5
"""A piece inside a hole of the input is kept when it covers at least this share of the hole."""
NO_REPAIR = 1.0
"""The floor that keeps no added piece at all (what `--min-confidence auto` chooses for a mask
on which the model shows no gain: `distpaint.infer.self_check`)."""
DEAD_END_REACH = 2.0
"""A bridge must come within a line's half width plus this many px of a dead end."""
_CONTEXT = 48
"""Pixels of input around a piece its dead ends are found in: a line cut by the edge of that
context ends there, farther from the piece than any dead end that counts."""

_EIGHT = np.ones((3, 3), bool)
_FOUR = ndi.generate_binary_structure(2, 1)


def check_keep(keep: str) -> str:
    """`keep` if it is one of KEEP_POLICIES, else a ConfigError naming the choices."""
    if keep not in KEEP_POLICIES:
        raise ConfigError(f"--keep must be one of {', '.join(KEEP_POLICIES)}, got {keep!r}")
    return keep


def check_min_confidence(value: float) -> float:
    """`value` if it is a probability floor in [0, 1] (1: NO_REPAIR), else a ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= NO_REPAIR:
        raise ConfigError(f"--min-confidence must be auto or in [0, 1], got {value!r}")
    return float(value)


def keep_added(output: np.ndarray, given: np.ndarray, keep: str,
               open_edges: tuple[bool, bool, bool, bool] = (False, False, False, False),
               probs: np.ndarray | None = None, min_confidence: float = 0.0) -> np.ndarray:
    """`output` with only the added pieces (output & ~given) that policy `keep` keeps, OR the
    given pixels it covers; with `min_confidence` > 0, also without the kept pieces whose mean
    of `probs` (the model's probabilities, same shape) is under it. `open_edges` (top, bottom,
    left, right) are the window's edges inside the image. Arrays are 2-D of one shape, `output`
    and `given` bool; returns a new bool array."""
    check_keep(keep)
    if keep == "all":
        kept = output.copy()
    elif keep == "attached":
        kept = drop_islands(output, given, open_edges)
    else:
        kept = given & output | bridging_pieces(output & ~given, given, open_edges, ends=keep == "ends")
    if check_min_confidence(min_confidence) > 0:
        if probs is None:
            raise ConfigError("a confidence floor needs the model's probabilities")
        kept = given & kept | confident_pieces(kept & ~given, probs, min_confidence, open_edges)
    return kept


def confident_pieces(added: np.ndarray, probs: np.ndarray, min_confidence: float,
                     open_edges: tuple[bool, bool, bool, bool] = (False, False, False, False)) -> np.ndarray:
    """The 8-connected pieces of `added` whose mean probability is at least `min_confidence`,
    and those reaching an open edge of the window (their mean is not known there); none at
    all with NO_REPAIR."""
    labels, n = ndi.label(added, structure=_EIGHT)
    if n == 0 or min_confidence >= NO_REPAIR:
        return np.zeros_like(added, dtype=bool)
    keep = np.zeros(n + 1, bool)
    keep[1:] = ndi.mean(probs, labels, np.arange(1, n + 1)) >= min_confidence
    keep_open_edges(keep, labels, open_edges)
    return keep[labels]


def bridging_pieces(added: np.ndarray, given: np.ndarray,
                    open_edges: tuple[bool, bool, bool, bool] = (False, False, False, False),
                    ends: bool = False) -> np.ndarray:
    """The pixels of the 8-connected pieces of `added` (disjoint from `given`) that touch
    `given` at two or more separate places next to a dead end (with `ends`: and close dead ends
    leaving none, policy `ends`), fill at least `HOLE_FILL_SHARE` of a hole of `given`, or reach
    an open edge of the window."""
    labels, n = ndi.label(added, structure=_EIGHT)
    if n == 0:
        return np.zeros_like(added, dtype=bool)
    keep = np.zeros(n + 1, bool)
    holes, hole_area = _holes(given)
    # a loop over the pieces, each in its bounding box plus one pixel: pieces are few and small
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
        piece = labels[box] == i
        ring = ndi.binary_dilation(piece, structure=_EIGHT) & given[box]
        if ndi.label(ring, structure=_EIGHT)[1] >= 2:
            local, inside = _context(piece, given, box)
            dead_ends = _skeleton_ends(local)  # the input's, read once for both tests
            keep[i] = _near_dead_end(local, inside, dead_ends) and \
                (not ends or _closes_ends(local, inside, dead_ends))
            if keep[i]:
                continue
        keep[i] = _filled_hole(piece, holes[box], hole_area) > 0
    keep_open_edges(keep, labels, open_edges)
    return keep[labels]


def _filled_hole(piece: np.ndarray, holes: np.ndarray, hole_area: np.ndarray) -> int:
    """The label of the hole of the input (`holes`, `_holes`' labels in the piece's box) that
    `piece` lies inside and covers at least HOLE_FILL_SHARE of, else 0."""
    inside = np.unique(holes[piece])
    if inside.size == 1 and inside[0] > 0 and np.count_nonzero(piece) >= HOLE_FILL_SHARE * hole_area[inside[0]]:
        return int(inside[0])
    return 0


def _context(piece: np.ndarray, given: np.ndarray, box: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
    """(the input within _CONTEXT px of the piece's `box`, the piece placed in that window)."""
    y0, x0 = box[0].start, box[1].start
    h, w = given.shape
    ctx = (slice(max(y0 - _CONTEXT, 0), min(box[0].stop + _CONTEXT, h)),
           slice(max(x0 - _CONTEXT, 0), min(box[1].stop + _CONTEXT, w)))
    local = given[ctx]
    inside = np.zeros(local.shape, bool)
    inside[y0 - ctx[0].start: y0 - ctx[0].start + piece.shape[0],
           x0 - ctx[1].start: x0 - ctx[1].start + piece.shape[1]] = piece
    return local, inside


def _skeleton_ends(mask: np.ndarray) -> np.ndarray:
    """End points of `mask`'s skeleton: skeleton pixels with exactly one skeleton neighbour."""
    skeleton = skeletonize(mask)
    neighbours = ndi.convolve(skeleton.astype(np.uint8), _EIGHT.astype(np.uint8), mode="constant")
    return skeleton & (neighbours == 2)  # itself and one neighbour


def _closes_ends(local: np.ndarray, inside: np.ndarray, before: np.ndarray) -> bool:
    """Policy `ends`: whether the skeleton of input `local` has fewer end points within 2 px of
    the piece `inside` with the piece than without (`before`: its end points without), and none
    on the piece (module docstring)."""
    border = np.ones(local.shape, bool)
    border[2:-2, 2:-2] = False  # lines cut by the window's edge end there: not counted
    near = ndi.binary_dilation(inside, _EIGHT, iterations=2) & ~border
    after = _skeleton_ends(local | inside)
    return int((after & near).sum()) < int((before & near).sum()) and not (after & inside).any()


def _near_dead_end(local: np.ndarray, inside: np.ndarray, ends: np.ndarray) -> bool:
    """Whether the piece `inside` comes within a line's half width plus DEAD_END_REACH px of an
    end point (`ends`) of the skeleton of input `local` (module docstring)."""
    if not ends.any():
        return False
    to_piece = ndi.distance_transform_edt(~inside)
    half_width = ndi.distance_transform_edt(local)
    return bool(np.any(to_piece[ends] <= half_width[ends] + DEAD_END_REACH))


def _holes(given: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels, areas): the 4-connected background components of `given` that do not reach the
    window's edge (its holes, dual to 8-connected foreground), labelled 1..k, 0 elsewhere, and
    the area of each label (index 0 unused)."""
    labels, n = ndi.label(~given, structure=_FOUR)
    if n == 0:
        return labels, np.zeros(1, np.int64)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    outside = np.zeros(n + 1, bool)
    outside[edge] = True
    outside[0] = True
    labels = np.where(outside[labels], 0, labels)
    return labels, np.bincount(labels.ravel(), minlength=n + 1)
