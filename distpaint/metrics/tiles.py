"""Tiled evaluation: run a per-tile function over masks far larger than memory.

Every metric in `distpaint.metrics` is computed by a *tile kernel* that sees one tile of each
input mask plus a halo of `halo` pixels on every side (zero outside the image), and returns a
small summary (counts, border labels, hull points). The summaries are merged exactly
afterwards, so memory stays at a few tiles per worker whatever the mask size.

Inputs may be NumPy arrays, Zarr arrays or Dask arrays (e.g. `MaskStore.dask(name, layer)`);
they are wrapped in Dask and each tile is read as one slice, all in one `dask.compute`, so a
chunk shared by several haloed tiles is read (or generated) once.

Usage::

    from distpaint.metrics.tiles import map_tiles
    grid = map_tiles(lambda win, tile: int(tile.core(win["a"]).sum()), {"a": mask}, halo=0)
    total = sum(sum(row) for row in grid)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import dask
import dask.array as da
import numpy as np

from distpaint.errors import ConfigError, InputError

__all__ = [
    "IN_MEMORY_PIXELS",
    "DEFAULT_TILE",
    "Tile",
    "as_lazy",
    "choose_tile",
    "common_shape",
    "map_tiles",
    "tile_edges",
]

IN_MEMORY_PIXELS = 8192 * 8192
"""Masks up to this many pixels are evaluated as one tile (exact skeletons, no halo effects)."""
DEFAULT_TILE = 2048
"""Tile side for larger masks, rounded to a multiple of the input's Dask chunk side."""

T = TypeVar("T")


@dataclass(frozen=True)
class Tile:
    """One tile: the core rows `y0:y1` and columns `x0:x1`, seen with `halo` pixels around."""

    y0: int
    """First core row (image coordinates)."""
    y1: int
    """One past the last core row."""
    x0: int
    """First core column."""
    x1: int
    """One past the last core column."""
    halo: int
    """Pixels of context on every side of the core in the windows a kernel receives."""
    i: int = 0
    """Tile row index in the grid."""
    j: int = 0
    """Tile column index in the grid."""

    @property
    def shape(self) -> tuple[int, int]:
        """(h, w) of the core."""
        return self.y1 - self.y0, self.x1 - self.x0

    def core(self, window: np.ndarray) -> np.ndarray:
        """The core of a haloed window (a view)."""
        h = self.halo
        return window[h : window.shape[0] - h, h : window.shape[1] - h]


def tile_edges(n: int, tile: int) -> list[tuple[int, int]]:
    """[(start, stop)] covering 0..n in steps of `tile` (the last one may be shorter)."""
    return [(s, min(s + tile, n)) for s in range(0, n, tile)]


def as_lazy(array: Any, chunks: int | None = None) -> da.Array:
    """A Dask view of a NumPy, Zarr or Dask 2-D array (NumPy is wrapped without hashing it)."""
    if isinstance(array, da.Array):
        return array
    if getattr(array, "ndim", None) != 2:
        shape = getattr(array, "shape", None)
        raise InputError(f"masks must be 2-D arrays, got shape {shape}")
    if isinstance(array, np.ndarray):
        return da.from_array(array, chunks=chunks or DEFAULT_TILE, name=False)
    return da.from_array(array, chunks=getattr(array, "chunks", None) or chunks, name=False)


def common_shape(arrays: Mapping[str, Any]) -> tuple[int, int]:
    """The shared (H, W) of `arrays` (None values skipped); InputError naming them otherwise."""
    shapes = {k: tuple(int(n) for n in a.shape) for k, a in arrays.items() if a is not None}
    if not shapes:
        raise InputError("no masks given")
    for key, shape in shapes.items():
        if len(shape) != 2 or min(shape) == 0:
            raise InputError(f"{key}: masks must be non-empty 2-D arrays, got shape {shape}")
    if len(set(shapes.values())) > 1:
        detail = ", ".join(f"{k} {s[0]}x{s[1]}" for k, s in shapes.items())
        raise InputError(f"masks differ in shape: {detail}")
    return next(iter(shapes.values()))  # type: ignore[return-value]


def choose_tile(shape: tuple[int, int], arrays: Mapping[str, Any], tile: int | None) -> int:
    """The tile side: `tile` if given; the whole mask when it has at most `IN_MEMORY_PIXELS`;
    else `DEFAULT_TILE` rounded to a multiple of the first Dask/Zarr input's chunk side, so a
    tile reads whole chunks."""
    if tile is not None:
        if tile < 1:
            raise ConfigError(f"tile must be positive, got {tile}")
        return int(tile)
    if shape[0] * shape[1] <= IN_MEMORY_PIXELS:
        return max(shape)
    for array in arrays.values():
        chunks = getattr(array, "chunksize", None) or getattr(array, "chunks", None)
        if isinstance(chunks, tuple) and chunks and isinstance(chunks[0], int | np.integer):
            side = int(max(chunks))
            return max(side, DEFAULT_TILE // side * side)
    return DEFAULT_TILE


def _run_tile(fn: Callable[[dict, Tile], T], tile: Tile, windows: dict, pads: dict) -> T:
    # Zero padding where the halo leaves the image: outside is background, as for the
    # whole-image computation.
    padded = {
        key: np.pad(np.asarray(w, dtype=bool), pads[key]) if any(p for pp in pads[key] for p in pp)
        else np.asarray(w, dtype=bool)
        for key, w in windows.items()
    }
    return fn(padded, tile)


def map_tiles(
    fn: Callable[[dict[str, np.ndarray], Tile], T],
    arrays: Mapping[str, Any],
    *,
    halo: int,
    tile: int | None = None,
    workers: int | None = None,
) -> list[list[T]]:
    """Apply `fn(windows, tile)` to every tile and return the results as a grid [i][j].

    Args:
        fn: tile kernel; `windows[key]` is a bool array of shape (h + 2*halo, w + 2*halo)
            around the core `tile` (zero beyond the image). Must not keep references.
        arrays: {key: 2-D array} of one shape; None values are left out.
        halo: context pixels on each side (>= 0).
        tile: tile side; default from `choose_tile`.
        workers: threads (default: Dask's default, the number of cores).
    """
    if halo < 0:
        raise ConfigError(f"halo must be >= 0, got {halo}")
    arrays = {k: a for k, a in arrays.items() if a is not None}
    shape = common_shape(arrays)
    side = choose_tile(shape, arrays, tile)
    lazy = {k: as_lazy(a, side) for k, a in arrays.items()}
    tasks = []
    rows, cols = tile_edges(shape[0], side), tile_edges(shape[1], side)
    for i, (y0, y1) in enumerate(rows):
        for j, (x0, x1) in enumerate(cols):
            t = Tile(y0, y1, x0, x1, halo, i, j)
            ya, yb = max(0, y0 - halo), min(shape[0], y1 + halo)
            xa, xb = max(0, x0 - halo), min(shape[1], x1 + halo)
            pad = ((ya - (y0 - halo), y1 + halo - yb), (xa - (x0 - halo), x1 + halo - xb))
            windows = {k: a[ya:yb, xa:xb] for k, a in lazy.items()}
            tasks.append(dask.delayed(_run_tile)(fn, t, windows, dict.fromkeys(lazy, pad)))
    results = dask.compute(*tasks, scheduler="threads", num_workers=workers)
    return [list(results[i * len(cols) : (i + 1) * len(cols)]) for i in range(len(rows))]
