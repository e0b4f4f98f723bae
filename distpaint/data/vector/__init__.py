"""Vector line data (GIS files, SUMO networks, GraphML street graphs, SVG drawings) burnt into
binary masks of a mask store.

Modules, one job each:

- `lines`: `VectorLines`, the container every reader returns;
- `readers`: `read_vector(path)` picks the reader by suffix (`gis`, `sumo`, `graphml`, `svg`);
- `widths`: `WidthRule` (width source, class filters, minimum pixel width) and the OSM table;
- `grid`: `RasterGrid`, the raster's shape and affine transform;
- `burner`: `rasterize_lines` -> lazy dask mask, burnt block by block with shapely + rasterio;
- `write`: `rasterize_file` / `rasterize_files` write samples with provenance attrs.

Usage::

    from distpaint.data.vector import RasterizeConfig, WidthRule, rasterize_files
    rasterize_files(["city.gpkg"], "roads.zarr",
                    RasterizeConfig(resolution=0.5, rule=WidthRule(class_attr="highway")))

or on the command line: `distpaint rasterize city.gpkg --out roads.zarr --class-attr highway`.
"""

from __future__ import annotations

from distpaint.data.vector.burner import Burnt, burn, burn_block, footprints, rasterize_lines
from distpaint.data.vector.grid import RasterGrid
from distpaint.data.vector.lines import VectorLines
from distpaint.data.vector.readers import VECTOR_SUFFIXES, read_vector, vector_kind
from distpaint.data.vector.widths import (
    OSM_HIGHWAY_WIDTHS,
    WidthRule,
    load_class_widths,
    resolve_widths,
    select,
)
from distpaint.data.vector.write import (
    RasterizeConfig,
    RasterizeResult,
    rasterize_file,
    rasterize_files,
    vector_sample_name,
)

__all__ = [
    "VectorLines",
    "read_vector",
    "vector_kind",
    "VECTOR_SUFFIXES",
    "WidthRule",
    "OSM_HIGHWAY_WIDTHS",
    "load_class_widths",
    "select",
    "resolve_widths",
    "RasterGrid",
    "Burnt",
    "footprints",
    "burn",
    "burn_block",
    "rasterize_lines",
    "RasterizeConfig",
    "RasterizeResult",
    "rasterize_file",
    "rasterize_files",
    "vector_sample_name",
]
