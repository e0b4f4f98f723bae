"""Known background beside the strokes of a GAN-GL-M 'real' batch (an option, not the paper).

GAN-GL-M's real batches train G with the masked CE of eq. 11 on the artificial gap region
only, because a real mask's own (inherent) gaps are unknown: outside the region the target
may be wrong. But the region often erases part of a stroke's width, so inside it G learns to
widen the thin remnant it sees; outside it nothing tells G that a genuinely thin line must stay
thin. The shipped `general` does exactly that on line drawings: 70% of its false fill on the
sketch benchmark is a one-pixel layer painted beside 1-px lines.

Yet some background outside the region is known even in a real mask: a pixel right beside a
stroke that the stroke runs past. Inherent gaps break a structure along its length, so the
pixels they hide lie beyond a stroke's *end*; `side_band` therefore takes the background pixels
within `width` px of the input's strokes, outside the region, and leaves out every pixel near
an end of the input's centreline (within the local half-width plus `width` + 1 px), where an
inherent gap may continue the stroke. Off by default (`DataConfig.real_band: 0`, the paper).

`max_width` (`DataConfig.real_band_max_width`) keeps the band beside thin strokes only (at most
that many px wide): the thickening it targets is of thin lines, while beside a wide stroke a
partial (side) erasure looks like a true side, so a band there also teaches G not to fill it.

    loss_mask = region | side_band(x, y, region, width=1)
    loss_mask = region | side_band(x, y, region, width=1, max_width=2)   # thin strokes only
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

__all__ = ["side_band", "centreline_ends"]

_EIGHT = np.ones((3, 3), bool)


def centreline_ends(mask: np.ndarray) -> np.ndarray:
    """Bool image of the end pixels of `mask`'s centreline (skeleton pixels with exactly one
    8-neighbour on the skeleton; an isolated skeleton pixel counts as an end too)."""
    skel = skeletonize(mask)
    neighbours = ndi.convolve(skel.astype(np.uint8), _EIGHT.astype(np.uint8), mode="constant") - 1
    return skel & (neighbours <= 1)


def side_band(x: np.ndarray, y: np.ndarray, region: np.ndarray, width: int,
              max_width: int = 0) -> np.ndarray:
    """Background pixels of `y` within `width` px (8-adjacency steps) of `x`'s foreground,
    outside `region`, and away from the ends of `x`'s centreline; with `max_width` > 0, only
    beside the parts of `x` at most `max_width` px wide (none within `width` + 1 px of a part
    that a (max_width + 1)-px square fits in). All arrays 2-D bool of one shape (x = y minus
    the region); returns a new bool array (empty when `width` is 0)."""
    if width <= 0 or not x.any():
        return np.zeros_like(x, dtype=bool)
    near = ndi.binary_dilation(x, structure=_EIGHT, iterations=width)
    band = near & ~y & ~region
    if max_width > 0:
        wide = ndi.binary_opening(x, structure=np.ones((max_width + 1, max_width + 1), bool))
        if wide.any():
            band &= ~ndi.binary_dilation(wide, structure=_EIGHT, iterations=width + 1)
    ends = centreline_ends(x)
    if ends.any():
        # distance of every pixel to its nearest end, and that end's local half-width
        dist, (iy, ix) = ndi.distance_transform_edt(~ends, return_indices=True)
        half = ndi.distance_transform_edt(x)[iy, ix]
        band &= dist > half + width + 1
    return band
