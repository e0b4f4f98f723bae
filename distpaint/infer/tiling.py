"""Exact tiling of a fully convolutional model over a huge mask: tile grid, halo, stitching.

"Whole-image inference" of a model with down-sampling factor `align` is defined as: pad the
(H, W) image with zeros at the bottom and right to (Hp, Wp), the next multiples of `align`, run
the model once on the padded image, crop the output back to (H, W). `whole_apply` does exactly
that. The tiled path reproduces it pixel for pixel because every tile's input window

- starts on a multiple of `align` (so each stride-2 grid of the network coincides with the
  whole image's grid: the tile is a true sub-image at every resolution),
- extends `halo` >= the receptive-field radius beyond the tile on each side (so the network's
  own padding at the window border never reaches the tile's pixels), and
- is clipped to [0, Hp) x [0, Wp) instead of being padded beyond the image: at the image
  border the window border *is* the image border, where the network pads exactly as in
  whole-image inference (its internal zero or reflect padding of deep features is not the
  same as zero input pixels, so a zero halo outside the image would not be exact).

Windows therefore have up to 9 shapes (interior, edges, corners); the engine batches tiles of
equal shape. `tiled_apply` is the in-memory reference used by the tests; the streaming engine
(`distpaint.infer.engine`) uses the same `TileGrid`.

    grid = TileGrid((3000, 2000), tile=1024, halo=96, align=16)
    out = tiled_apply(image, fn, grid)     # == whole_apply(image, fn, 16) for fn with RF <= 96
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distpaint.errors import ConfigError

__all__ = [
    "Tile",
    "TileGrid",
    "round_up",
    "auto_tile",
    "read_window",
    "whole_apply",
    "tiled_apply",
]

Window = tuple[int, int, int, int]
"""(y0, y1, x0, x1), half-open."""


def round_up(n: int, multiple: int) -> int:
    """The smallest multiple of `multiple` that is >= `n`."""
    return -(-int(n) // int(multiple)) * int(multiple)


AUTO_TILES = (1024, 1536)
"""Tile sides `auto_tile` chooses from. 1536 caps the memory: with the shipped roads model's
288-px halo, whole-mask inference peaks at 1.64 GB RSS with 1536-px tiles and at 2.15 GB with
2048 (`bench/infer.py --sections rss`, batch 1), over the 2 GB the pipeline is held to."""
AUTO_OVERHEAD = 1.75
"""Largest window-to-core pixel ratio `auto_tile` accepts below the cap ((1024 + 2*160)^2 /
1024^2 = 1.72 for a 160-px halo)."""


def auto_tile(halo: int, align: int = 1) -> int:
    """The default tile side for a model whose windows need `halo` px of context per side: the
    smallest of `AUTO_TILES` whose window (tile + 2 halo)^2 holds at most `AUTO_OVERHEAD` times
    the core's pixels, else the largest. A fixed 1024 would spend 2.44x the core's work on the
    windows of a 288-px halo; 1536 brings that to 1.89x (whole-mask speed measured by
    `bench/auto_tile.py`, in the README's Performance section)."""
    if halo < 0 or align < 1:
        raise ConfigError(f"auto tile: halo must be >= 0 and align >= 1, got {halo}, {align}")
    sides = [round_up(side, align) for side in AUTO_TILES]
    return next((t for t in sides if ((t + 2 * halo) / t) ** 2 <= AUTO_OVERHEAD), sides[-1])


@dataclass(frozen=True)
class Tile:
    """One tile: the pixels it writes (`core`) and the input window the model sees."""

    row: int
    """Tile row in the grid."""
    col: int
    """Tile column in the grid."""
    core: Window
    """Output pixels of this tile, clipped to the image (y0, y1, x0, x1)."""
    window: Window
    """Input window, clipped to the zero-padded image [0, Hp) x [0, Wp); starts and sizes are
    multiples of the grid's `align`."""

    @property
    def window_shape(self) -> tuple[int, int]:
        """(h, w) of the input window."""
        return self.window[1] - self.window[0], self.window[3] - self.window[2]

    @property
    def core_in_window(self) -> tuple[slice, slice]:
        """Slices of the window's output that are this tile's core."""
        (y0, y1, x0, x1), (wy0, _, wx0, _) = self.core, self.window
        return slice(y0 - wy0, y1 - wy0), slice(x0 - wx0, x1 - wx0)

    @property
    def core_slices(self) -> tuple[slice, slice]:
        """Slices of the image that are this tile's core."""
        y0, y1, x0, x1 = self.core
        return slice(y0, y1), slice(x0, x1)


@dataclass(frozen=True)
class TileGrid:
    """The tiles covering an (H, W) image for a model with down-sampling factor `align`."""

    shape: tuple[int, int]
    """(H, W) of the image."""
    tile: int = 1024
    """Side of a tile's core (output pixels per tile); a multiple of `align`."""
    halo: int = 0
    """Context on each side of a tile; must be >= the model's receptive-field radius and a
    multiple of `align` (use `round_up`)."""
    align: int = 1
    """Down-sampling factor of the model (16 for 4 stride-2 levels): window origins and sizes
    are multiples of it."""
    padded: tuple[int, int] = field(init=False)
    """(Hp, Wp): the image shape rounded up to multiples of `align` (whole-image inference's
    zero padding)."""

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.shape)
        if len(shape) != 2 or min(shape) < 1:
            raise ConfigError(f"tile grid: image shape must be 2 positive ints, got {self.shape}")
        if self.align < 1:
            raise ConfigError(f"tile grid: align must be >= 1, got {self.align}")
        if self.tile < 1 or self.tile % self.align:
            raise ConfigError(
                f"--tile {self.tile} must be a positive multiple of the model's down-sampling "
                f"factor {self.align} (e.g. {max(self.align, round_up(self.tile, self.align))})"
            )
        if self.halo < 0 or self.halo % self.align:
            raise ConfigError(
                f"--halo {self.halo} must be a non-negative multiple of the model's "
                f"down-sampling factor {self.align} (e.g. {round_up(max(self.halo, 0), self.align)})"
            )
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "padded", tuple(round_up(n, self.align) for n in shape))

    @property
    def grid_shape(self) -> tuple[int, int]:
        """(rows, cols) of tiles."""
        return math.ceil(self.shape[0] / self.tile), math.ceil(self.shape[1] / self.tile)

    def __len__(self) -> int:
        rows, cols = self.grid_shape
        return rows * cols

    def tile_at(self, row: int, col: int) -> Tile:
        """The tile in grid position (row, col)."""
        (h, w), (hp, wp), t, m = self.shape, self.padded, self.tile, self.halo
        y0, x0 = row * t, col * t
        core = (y0, min(y0 + t, h), x0, min(x0 + t, w))
        window = (max(0, y0 - m), min(hp, y0 + t + m), max(0, x0 - m), min(wp, x0 + t + m))
        return Tile(row, col, core, window)

    def tiles(self, rows: range | None = None, cols: range | None = None) -> Iterator[Tile]:
        """Tiles row by row (optionally only those of grid `rows` x `cols`)."""
        nr, nc = self.grid_shape
        for row in rows if rows is not None else range(nr):
            for col in cols if cols is not None else range(nc):
                yield self.tile_at(row, col)

    def tiles_in(self, y0: int, y1: int, x0: int, x1: int) -> Iterator[Tile]:
        """Tiles whose cores lie in the image region [y0, y1) x [x0, x1); the region's edges
        must fall on tile boundaries or on the image border (a shard of an aligned store)."""
        t = self.tile
        for name, lo, hi, n in (("row", y0, y1, self.shape[0]), ("column", x0, x1, self.shape[1])):
            if lo % t or (hi % t and hi < n):
                raise ConfigError(
                    f"region {name}s [{lo}, {hi}) do not fall on tile boundaries (tile {t})"
                )
        nr, nc = self.grid_shape
        yield from self.tiles(
            range(y0 // t, min(nr, math.ceil(y1 / t))), range(x0 // t, min(nc, math.ceil(x1 / t)))
        )


def read_window(source: Any, tile: Tile, shape: tuple[int, int]) -> np.ndarray:
    """Tile's input window of the (H, W) `source` (anything sliceable to NumPy) as a bool array,
    zeros beyond the image (the part of the window in the alignment padding)."""
    wy0, wy1, wx0, wx1 = tile.window
    h, w = shape
    part = np.asarray(source[wy0 : min(wy1, h), wx0 : min(wx1, w)])
    if part.shape == tile.window_shape:
        return part if part.dtype == bool else part != 0
    out = np.zeros(tile.window_shape, dtype=bool)
    out[: part.shape[0], : part.shape[1]] = part
    return out


def whole_apply(image: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], align: int) -> np.ndarray:
    """Whole-image inference: `fn` on `image` zero-padded (bottom, right) to multiples of
    `align`, cropped back to the image's shape. `fn` maps (h, w) float32 to (h, w)."""
    h, w = image.shape
    padded = np.zeros((round_up(h, align), round_up(w, align)), np.float32)
    padded[:h, :w] = image
    return np.asarray(fn(padded))[:h, :w]


def tiled_apply(
    image: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], grid: TileGrid
) -> np.ndarray:
    """`fn` applied tile by tile over `grid` and stitched: the in-memory reference of the
    streaming engine; equals `whole_apply(image, fn, grid.align)` when the halo covers fn's
    receptive field."""
    if tuple(image.shape) != grid.shape:
        raise ConfigError(f"image shape {image.shape} is not the grid's {grid.shape}")
    out: np.ndarray | None = None
    for tile in grid.tiles():
        result = np.asarray(fn(read_window(image, tile, grid.shape).astype(np.float32)))
        if out is None:
            out = np.zeros(grid.shape, result.dtype)
        out[tile.core_slices] = result[tile.core_in_window]
    assert out is not None  # a grid always has at least one tile
    return out
