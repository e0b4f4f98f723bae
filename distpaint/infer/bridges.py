"""Bridges only: of what later passes add, keep the pieces that join the first pass's output.

`--passes P` runs the model again on its own output, which closes long gaps a single pass
narrows but cannot close; it also lengthens dead ends into spurs and paints beside roads, so
its centreline precision falls (`research/cldice_parts.py`). With `--bridges-only`, a pixel that
only a later pass adds is kept when its 8-connected piece of added pixels touches the first
pass's output (input included) at two or more separate places: it bridges a gap or closes a
loop. Pieces that touch it once (extensions, thickening) or never (islands) are dropped.
Not in the paper: off by default, measured in docs/HISTORY.md
(`bench/quality.py --models roads:passes=2,bridges_only=1`).

Tiled inference decides each window on its own: a piece that reaches the window's edge may
continue beyond it, so it is kept (it cannot be judged there). Pieces that fit inside the
window's halo are therefore judged exactly, whatever the tiling.

    kept = bridges_only(first, later, open_edges=(True, True, True, True))
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from distpaint.infer.islands import keep_open_edges

__all__ = ["bridges_only"]

_EIGHT = np.ones((3, 3), bool)


def bridges_only(first: np.ndarray, later: np.ndarray,
                 open_edges: tuple[bool, bool, bool, bool] = (False, False, False, False)) -> np.ndarray:
    """`first` OR the pieces of `later & ~first` that touch `first` at two or more separate
    places, or reach an open edge of the window (top, bottom, left, right: True where the
    image continues). Both are 2-D bool arrays of one shape; returns a new bool array."""
    added = later & ~first
    labels, n = ndi.label(added, structure=_EIGHT)
    if n == 0:
        return first.copy()
    keep = np.zeros(n + 1, bool)
    # a loop over the pieces, each in its bounding box: as fast as a vectorised count of
    # contact runs on real outputs (few pieces, small boxes) and exact where pieces crowd
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
        ring = ndi.binary_dilation(labels[box] == i, structure=_EIGHT) & first[box]
        keep[i] = ndi.label(ring, structure=_EIGHT)[1] >= 2
    keep_open_edges(keep, labels, open_edges)
    return first | keep[labels]
