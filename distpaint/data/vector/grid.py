"""The raster grid vector data is burnt into: shape plus an affine transform (rasterio.Affine).

Pixel (row, col) covers the cell whose top-left corner is `transform @ (col, row)`; its centre
is `transform @ (col + 0.5, row + 0.5)`. Georeferenced (and other y-up) data gets a north-up
grid, rows going down as y goes up (`e < 0`); drawings whose y already points down (SVG) are not
flipped (`e > 0`). Grid edges are snapped outwards to whole multiples of the pixel size, so
rasters of neighbouring extents at one resolution line up pixel for pixel.

Usage::

    from distpaint.data.vector.grid import RasterGrid
    grid = RasterGrid.covering((0, 0, 100, 50), pixel_size=0.5)   # 100 x 200 pixels
    grid.transform, grid.shape, grid.pixel_centre(0, 0)           # (0.25, 49.75)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rasterio import Affine

from distpaint.errors import ConfigError

__all__ = ["RasterGrid", "MAX_PIXELS"]

MAX_PIXELS = 10**11
"""Largest raster (H x W) a grid may have: anything bigger is a wrong resolution, not a job."""


def _snap(value: float, step: float, up: bool) -> float:
    # The tolerance keeps an edge already on the lattice from moving a whole pixel because of
    # rounding in value / step.
    q = value / step
    r = round(q)
    if abs(q - r) < 1e-9:
        return r * step
    return (math.ceil(q) if up else math.floor(q)) * step


@dataclass(frozen=True)
class RasterGrid:
    """A raster's shape and transform (module docstring)."""

    transform: Affine
    """Maps (col, row) pixel corners to coordinates (rasterio convention)."""
    shape: tuple[int, int]
    """(rows, cols)."""

    @classmethod
    def covering(cls, bounds: tuple[float, float, float, float], pixel_size: float, *,
                 y_down: bool = False) -> RasterGrid:
        """The smallest grid of `pixel_size` cells, snapped to multiples of it, covering
        `bounds` = (minx, miny, maxx, maxy). `y_down`: row 0 at miny (drawings)."""
        if not (math.isfinite(pixel_size) and pixel_size > 0):
            raise ConfigError(f"pixel size must be a positive number, got {pixel_size!r}")
        minx, miny, maxx, maxy = (float(v) for v in bounds)
        if not all(map(math.isfinite, (minx, miny, maxx, maxy))) or maxx < minx or maxy < miny:
            raise ConfigError(f"invalid bounds {bounds!r}")
        x0, x1 = _snap(minx, pixel_size, False), _snap(maxx, pixel_size, True)
        y0, y1 = _snap(miny, pixel_size, False), _snap(maxy, pixel_size, True)
        cols = max(1, round((x1 - x0) / pixel_size))
        rows = max(1, round((y1 - y0) / pixel_size))
        if rows * cols > MAX_PIXELS:
            raise ConfigError(
                f"the raster would be {rows} x {cols} pixels (extent {x1 - x0:.6g} x "
                f"{y1 - y0:.6g} at {pixel_size:.6g} per pixel); choose a coarser resolution"
            )
        if y_down:
            transform = Affine(pixel_size, 0.0, x0, 0.0, pixel_size, y0)
        else:
            transform = Affine(pixel_size, 0.0, x0, 0.0, -pixel_size, y0 + rows * pixel_size)
        return cls(transform, (int(rows), int(cols)))

    @property
    def pixel_size(self) -> float:
        """Side of one pixel in coordinate units."""
        return abs(self.transform.a)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) of the whole grid."""
        x0, y0 = self.transform @ (0, 0)
        x1, y1 = self.transform @ (self.shape[1], self.shape[0])
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)

    def pixel_centre(self, row: float, col: float) -> tuple[float, float]:
        """Coordinates of the centre of pixel (row, col)."""
        return self.transform @ (col + 0.5, row + 0.5)
