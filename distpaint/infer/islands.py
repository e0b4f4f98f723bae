"""Drop islands: added components that touch no input pixel (an inference option, off by default).

A blind inpainter sometimes paints a blob inside a wide gap or next to nothing at all: a new
connected component that bridges nothing. It adds a component (it lowers the relative
component difference) and is, on the synthetic benchmark sets, almost always short of the
truth. `drop_islands` removes the added 8-connected components that do not touch (8-adjacency)
the input; fills that touch the input (bridges, partial fills from one side, thickening) stay.
Not in the paper: off by default, measured in docs/HISTORY.md
(`distpaint infer --drop-islands`, `bench/quality.py --models general:drop_islands=1`).

Tiled inference decides each tile from its window (tile plus halo): a component that reaches
a window edge inside the image may continue beyond it, so it is kept (it cannot be judged
there). Islands that fit in the halo are therefore dropped exactly, whatever the tiling; a
larger one can be dropped by one tile and kept by its neighbour, which leaves a smaller island
(never removes a pixel that touches the input).

    keep = drop_islands(output, given, open_edges=(top, bottom, left, right))
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["drop_islands", "keep_open_edges"]

_EIGHT = np.ones((3, 3), bool)


def drop_islands(output: np.ndarray, given: np.ndarray,
                 open_edges: tuple[bool, bool, bool, bool] = (False, False, False, False)) -> np.ndarray:
    """`output` without the added components (output & ~given) that touch neither `given` nor
    an open edge of the window (top, bottom, left, right: True where the image continues).
    Both are 2-D bool arrays of one shape; returns a new bool array."""
    added = output & ~given
    labels, n = ndi.label(added, structure=_EIGHT)
    if n == 0:
        return output.copy()
    keep = np.zeros(n + 1, bool)
    # components with a pixel next to the input (the dilated input covers its 8-neighbours)
    keep[np.unique(labels[ndi.binary_dilation(given, structure=_EIGHT) & added])] = True
    keep_open_edges(keep, labels, open_edges)
    return given & output | keep[labels]


def keep_open_edges(keep: np.ndarray, labels: np.ndarray,
                    open_edges: tuple[bool, bool, bool, bool]) -> None:
    """Mark in `keep` (one flag per label, index 0 the background) every component of `labels`
    that reaches an open edge (top, bottom, left, right): it may continue beyond the window, so
    the window cannot judge it. Leaves the background unmarked."""
    edges = (labels[0], labels[-1], labels[:, 0], labels[:, -1])
    for is_open, edge in zip(open_edges, edges, strict=True):
        if is_open:
            keep[np.unique(edge)] = True
    keep[0] = False
