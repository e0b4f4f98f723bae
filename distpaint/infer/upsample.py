"""Repairing thin lines at a finer grid (`distpaint infer --upsample auto|1|2|3|4`).

The models learnt lines 2 to 40 px wide; on masks whose lines are 1 or 2 px wide they close
only the shortest gaps (on the real validation rivers drawn 1.5 px wide, `general` restored
10-22% of the missing centreline, against 40-54% on the same rivers drawn 3 px wide). Running
the model on the mask up-sampled by nearest neighbour, so a 1.5-px line becomes 3 px wide, and
max-pooling the probabilities back to the mask's grid gives the model lines of the width it
knows. Measured on the real validation split (`python bench/quality.py --real runs/real
--real-levels val ... --models general general:upsample=1`; docs/REAL_MASKS.md): on the masks
of median line width 2 px it roughly doubles the restored centreline and lifts the clDice
gain; on lines 4 px wide it is mixed and on 6-px lines worse, hence `auto`: factor 2 where the
mask's mean line width is under `THIN_LINE_PX`, else 1.

`UpsampledPredictor` wraps any predictor and is itself one, so the tiled engine, the Ray
actors and the refinements (`distpaint.infer.refine`, applied on top) use it unchanged.
Tiled inference stays exactly equal to whole-image inference: an output pixel depends on the
up-sampled pixels within the model's receptive radius R of its f x f block, which are the
mask's pixels within ceil(R / f) + 1, the halo it asks for; windows keep the base model's
alignment, so the up-sampled windows sit on the model's stride grid. Cost: f^2 times the
pixels per forward pass.

`choose_upsample` reads the line width from at most `WIDTH_SAMPLE_WINDOWS` windows of the
mask (the chunks with foreground, evenly spread), never the whole of a giant mask. The width is
the foreground's area over its centreline's length (skeleton pixels): a damaged mask's
fragments of a wide road have short skeletons of their own, full of thin branch tips, which
fooled the median of twice the distance to the background on the skeleton (a 14-px road cut to
fragments measured 2.8 px that way, 3.9 px this way); on every validation mask both measures
make the same choice.

    predictor = UpsampledPredictor(resolve_model("general"), 2)
    factor = choose_upsample(lazy_mask)   # 1 or 2
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from skimage.morphology import skeletonize

from distpaint.errors import ConfigError
from distpaint.infer.predictor import Predictor
from distpaint.infer.tiling import round_up

__all__ = ["UPSAMPLE_FACTORS", "THIN_LINE_PX", "WIDTH_SAMPLE_WINDOWS", "UpsampledPredictor",
           "check_upsample", "parse_upsample", "line_width", "choose_upsample", "upsampled"]

UPSAMPLE_FACTORS = (1, 2, 3, 4)
"""Allowed factors."""
THIN_LINE_PX = 3.0
"""`auto` up-samples by 2 masks whose mean line width is below this (px): between the
validation masks it helps (1.7-2.2 px: lines drawn 1.5 px wide) and those where it does not
(3.5 px and wider)."""
WIDTH_SAMPLE_WINDOWS = 16
"""Windows of at most `_WINDOW` px a side the line width of a large mask is read from."""
_WINDOW = 1024


def parse_upsample(value: Any) -> int | None:
    """`--upsample`, the card's `inference.upsample` or a quality spec's `upsample=`: None for
    `auto`, else the factor (an int or its digits), checked."""
    if value == "auto":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return check_upsample(value)


def check_upsample(factor: Any) -> int:
    """`factor` if it is one of UPSAMPLE_FACTORS, else a ConfigError naming them."""
    if isinstance(factor, bool) or factor not in UPSAMPLE_FACTORS:
        raise ConfigError(f"--upsample must be auto or one of {', '.join(map(str, UPSAMPLE_FACTORS))}, "
                          f"got {factor!r}")
    return int(factor)


class UpsampledPredictor:
    """`base` run on the window up-sampled `factor` times (nearest neighbour), its
    probabilities max-pooled back to the window's grid."""

    def __init__(self, base: Predictor, factor: int) -> None:
        self.base = base
        self.factor = check_upsample(factor)
        self.align = int(base.align)
        radius = math.ceil(int(base.receptive_halo) / self.factor) + 1
        self.receptive_halo = round_up(radius, self.align)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        f = self.factor
        b, c, h, w = x.shape
        up = np.repeat(np.repeat(np.asarray(x, np.float32), f, axis=2), f, axis=3)
        probs = np.asarray(self.base(up), np.float32)
        return probs.reshape(b, probs.shape[1], h, f, w, f).max(axis=(3, 5))


def upsampled(base: Predictor, factor: int) -> Predictor:
    """`base` itself for factor 1, else an `UpsampledPredictor`."""
    return base if check_upsample(factor) == 1 else UpsampledPredictor(base, factor)


def _area_and_length(mask: np.ndarray) -> tuple[int, int]:
    """(foreground pixels, centreline pixels) of a 2-D bool mask."""
    return int(np.count_nonzero(mask)), int(np.count_nonzero(skeletonize(mask)))


def line_width(mask: np.ndarray) -> float:
    """Mean line width of a 2-D bool mask: its area over its centreline's length (px; a 1-px
    line measures 1, a 3-px line about 3); 0 for an empty mask."""
    area, length = _area_and_length(mask)
    return area / length if length else 0.0


def _windows(shape: tuple[int, int], chunks: tuple[int, int] | None) -> list[tuple[slice, slice]]:
    step = chunks or (_WINDOW, _WINDOW)
    step = (min(step[0], _WINDOW), min(step[1], _WINDOW))
    return [(slice(y, min(y + step[0], shape[0])), slice(x, min(x + step[1], shape[1])))
            for y in range(0, shape[0], step[0]) for x in range(0, shape[1], step[1])]


def choose_upsample(mask: Any) -> int:
    """`auto`'s factor for `mask` (a NumPy, Zarr or Dask 2-D bool array): 2 where the mean
    line width (`line_width`, pooled over up to WIDTH_SAMPLE_WINDOWS windows) is under
    THIN_LINE_PX, else 1. Windows are taken evenly from the whole grid, the empty ones skipped
    at the cost of reading them; a mask of one window is read whole."""
    shape = tuple(int(n) for n in mask.shape)
    chunks = getattr(mask, "chunks", None)
    if chunks is not None and not isinstance(chunks[0], int):  # dask: per-dimension tuples
        chunks = (int(chunks[0][0]), int(chunks[1][0]))
    windows = _windows(shape, chunks)
    stride = max(1, len(windows) // (4 * WIDTH_SAMPLE_WINDOWS))
    area = length = used = 0
    for window in windows[::stride]:
        block = np.asarray(mask[window], dtype=bool)
        if not block.any():
            continue
        block_area, block_length = _area_and_length(block)
        area, length, used = area + block_area, length + block_length, used + 1
        if used == WIDTH_SAMPLE_WINDOWS:
            break
    width = area / length if length else 0.0
    return 2 if 0 < width < THIN_LINE_PX else 1
