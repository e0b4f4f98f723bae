"""Burn vector features into a lazy binary raster, block by block.

Lines are buffered with shapely (`buffer(width / 2)`, round caps and joins unless the width
rule asks for flat / square / mitre / bevel), polygons are burnt filled, and the footprints are
rasterised with `rasterio.features.rasterize` (GDAL; a pixel is foreground when its centre lies
inside a footprint). Nothing is drawn by hand.

Large extents are streamed: `burn` returns a `dask.array` whose blocks (default 1024 x 1024)
each query a `shapely.STRtree` of the footprints for the block's bounds and rasterise only
those, so a 50k x 50k raster never sits in memory; `MaskStore.write` then writes it shard by
shard. Footprints are moved to pixel coordinates once, so every block sees exactly the same
edges and any chunking gives the same pixels as one big block.

Usage::

    from distpaint.data.vector.burner import rasterize_lines
    burnt = rasterize_lines(lines, pixel_size=0.5, rule=WidthRule(exclude=("footway",)))
    burnt.mask            # lazy bool dask array, burnt.grid.shape
    burnt.grid.transform  # rasterio.Affine of the raster
"""

from __future__ import annotations

import uuid
import warnings
from dataclasses import dataclass

import dask.array as da
import numpy as np
import shapely
from rasterio import Affine
from rasterio.features import rasterize

from distpaint.data.vector.grid import RasterGrid
from distpaint.data.vector.lines import VectorLines
from distpaint.data.vector.widths import WidthRule, resolve_widths, select
from distpaint.errors import ConfigError, InputError

# rasterio silences this warning around its in-memory dataset with `warnings.catch_warnings`,
# which is not thread-safe: with blocks burnt on dask's threads, one thread's restore lets
# another's warning through, though every transform is set (pixels are identical to a
# single-threaded run). Ignored narrowly: this message from rasterio.features only.
warnings.filterwarnings("ignore", message="Dataset has no geotransform",
                        module=r"rasterio\.features")

__all__ = ["Burnt", "footprints", "burn", "burn_block", "rasterize_lines"]

_LINES = (1, 2, 5)  # LineString, LinearRing, MultiLineString
_POLYGONS = (3, 6)  # Polygon, MultiPolygon
_CLIP_ABOVE = 256
"""Footprints with more vertices than this are clipped to the block before rasterising: a road
crossing a hundred blocks must not cost GDAL its whole outline in every one of them."""


@dataclass
class Burnt:
    """A lazily rasterised set of features."""

    mask: da.Array
    """Lazy bool raster, `grid.shape`."""
    grid: RasterGrid
    """Shape and transform of `mask`."""
    features: int
    """Number of features burnt (after the class filters)."""
    widths: np.ndarray
    """Width of each burnt feature in CRS units, before the minimum pixel width."""


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """Only the polygonal parts of `geoms` (make_valid and clipping may add lines/points)."""
    types = shapely.get_type_id(geoms)
    if np.isin(types, _POLYGONS).all():
        return geoms
    parts = shapely.get_parts(geoms[types == 7]) if (types == 7).any() else np.empty(0, object)
    keep = np.concatenate([geoms[np.isin(types, _POLYGONS)], parts])
    return keep[np.isin(shapely.get_type_id(keep), _POLYGONS)] if len(keep) else keep


def footprints(geometries: np.ndarray, widths: np.ndarray, *, cap: str = "round",
               join: str = "round") -> np.ndarray:
    """The area each feature covers: lines buffered by width / 2, polygons as they are
    (repaired when invalid, e.g. self-touching junction shapes; a polygon narrower than a pixel
    may cover no pixel centre). Empty footprints dropped."""
    geometries = np.asarray(geometries, dtype=object)
    out = np.empty(len(geometries), dtype=object)
    types = shapely.get_type_id(geometries)
    lines = np.isin(types, _LINES)
    if lines.any():
        out[lines] = shapely.buffer(geometries[lines], np.asarray(widths)[lines] / 2.0,
                                    quad_segs=16, cap_style=cap, join_style=join)
    polys = ~lines
    if polys.any():
        shapes = geometries[polys]
        bad = ~shapely.is_valid(shapes)
        if bad.any():
            shapes = shapes.copy()
            shapes[bad] = shapely.make_valid(shapes[bad])
        out[polys] = shapes
    out = _polygonal(out)
    return out[~shapely.is_empty(out)]


def burn_block(tree: shapely.STRtree, shapes: np.ndarray, y0: int, y1: int, x0: int, x1: int
               ) -> np.ndarray:
    """Rows y0:y1, columns x0:x1 of the raster of `shapes` (pixel coordinates (col, row) as
    `_to_pixels` makes them, indexed by `tree`) as a bool array."""
    y0, y1, x0, x1 = (int(v) for v in (y0, y1, x0, x1))
    out = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    hits = np.sort(tree.query(shapely.box(x0, y0, x1, y1)))
    if len(hits) == 0:
        return out.view(bool)
    hit = shapes[hits]
    big = shapely.get_num_coordinates(hit) > _CLIP_ABOVE
    if big.any():
        hit = hit.copy()
        # One pixel of slack: clipping moves no edge near a pixel centre of this block.
        hit[big] = shapely.clip_by_rect(hit[big], x0 - 1, y0 - 1, x1 + 1, y1 + 1)
        hit = _polygonal(hit)
        hit = hit[~shapely.is_empty(hit)]
        if len(hit) == 0:
            return out.view(bool)
    # Pixel frame: coordinates are (col, row), so a block's transform is a shift.
    rasterize(((g, 1) for g in hit), out_shape=out.shape, out=out,
              transform=Affine(1.0, 0.0, x0, 0.0, 1.0, y0), all_touched=False)
    return out.view(bool)


def _to_pixels(shapes: np.ndarray, grid: RasterGrid) -> np.ndarray:
    """`shapes` in pixel coordinates (col, row) of `grid`. Done once for all blocks, so every
    block rasterises exactly the same vertices whatever the chunking."""
    t = grid.transform

    def convert(xy: np.ndarray) -> np.ndarray:
        return np.column_stack([(xy[:, 0] - t.c) / t.a, (xy[:, 1] - t.f) / t.e])

    return shapely.transform(shapes, convert)


def burn(shapes: np.ndarray, grid: RasterGrid, *, chunks: int = 1024) -> da.Array:
    """Lazy bool raster of `grid` with `shapes` (footprints in the grid's coordinates) burnt,
    in `chunks` x `chunks` blocks."""
    if chunks < 16:
        raise ConfigError(f"chunks must be at least 16, got {chunks}")
    pixel_shapes = _to_pixels(np.asarray(shapes, dtype=object), grid)
    tree = shapely.STRtree(pixel_shapes)
    block_chunks = da.core.normalize_chunks((chunks, chunks), grid.shape)

    def block(block_info=None) -> np.ndarray:
        (y0, y1), (x0, x1) = block_info[None]["array-location"]
        return burn_block(tree, pixel_shapes, y0, y1, x0, x1)

    # An explicit name: tokenising the closure would hash every footprint.
    return da.map_blocks(block, chunks=block_chunks, dtype=bool,
                         meta=np.empty((0, 0), dtype=bool), name=f"burn-{uuid.uuid4().hex}")


def rasterize_lines(lines: VectorLines, pixel_size: float, rule: WidthRule | None = None, *,
                    bounds: tuple[float, float, float, float] | None = None,
                    margin: float = 0.0, chunks: int = 1024, source: str = "") -> Burnt:
    """Filter `lines` by `rule`'s classes, resolve widths, and burn them lazily at
    `pixel_size` (CRS units per pixel). The raster covers `bounds` if given, else the source's
    canvas (SVG viewBox), else the footprints, each grown by `margin` CRS units.
    InputError (naming `source`) when no feature is left to burn."""
    rule = rule or WidthRule()
    what = source or "vector data"
    if not (isinstance(margin, (int, float)) and np.isfinite(margin) and margin >= 0):
        raise ConfigError(f"margin must be >= 0, got {margin!r}")
    if len(lines) == 0:
        raise InputError(f"{what}: no lines or polygons to burn")
    kept = lines.subset(select(lines, rule, what))
    if len(kept) == 0:
        raise InputError(f"{what}: no feature left after the class filters "
                         f"(include {list(rule.include)}, exclude {list(rule.exclude)}; "
                         f"{len(lines)} before)")
    widths = resolve_widths(kept, rule, what)
    burnt_widths = np.maximum(widths, rule.min_width_px * pixel_size)
    shapes = footprints(kept.geometries, burnt_widths, cap=rule.cap, join=rule.join)
    if len(shapes) == 0:
        raise InputError(f"{what}: every feature is empty once drawn")
    if bounds is None:
        bounds = kept.extent if kept.extent is not None else tuple(shapely.total_bounds(shapes))
    minx, miny, maxx, maxy = bounds
    grid = RasterGrid.covering((minx - margin, miny - margin, maxx + margin, maxy + margin),
                               pixel_size, y_down=kept.y_down)
    return Burnt(mask=burn(shapes, grid, chunks=chunks), grid=grid, features=len(kept),
                 widths=widths)
