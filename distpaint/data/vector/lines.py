"""The container every vector reader returns: line geometry plus what the burner needs to know.

`VectorLines` holds one row per feature: a shapely geometry (LineString, MultiLineString,
LinearRing, Polygon or MultiPolygon; polygons are burnt filled, e.g. SUMO junction shapes), its
width in CRS units (NaN: the width rule's default decides), an optional class label (e.g.
`highway.residential`; several classes joined with "|" as SUMO writes them), and any other
per-feature attributes a width rule may read (`lanes`, `width`, ...). The CRS (WKT or a proj
string, None for drawings) and the unit apply to all rows.

Usage::

    import numpy as np, shapely
    from distpaint.data.vector import VectorLines
    lines = VectorLines(
        geometries=np.array([shapely.LineString([(0, 0), (100, 0)])], dtype=object),
        widths=np.array([6.0]), classes=np.array(["highway.residential"], dtype=object),
        crs="EPSG:32633", unit="metre")
    lines.subset(lines.widths > 5)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely

from distpaint.errors import ConfigError

__all__ = ["VectorLines", "METRE", "LINE_TYPES", "POLYGON_TYPES", "as_lines_and_polygons"]

METRE = "metre"
"""The unit of georeferenced data (always metres after reprojection) and of SUMO networks."""
LINE_TYPES = ("LineString", "MultiLineString", "LinearRing")
POLYGON_TYPES = ("Polygon", "MultiPolygon")


@dataclass
class VectorLines:
    """Line (and filled polygon) features in one coordinate system; see the module docstring."""

    geometries: np.ndarray
    """Object array of shapely geometries, one per feature (lines and polygons only)."""
    widths: np.ndarray
    """Float array: each feature's width in CRS units; NaN = use the width rule's default."""
    crs: str | None
    """WKT or proj string of the coordinate system; None for drawings and unprojected data."""
    unit: str
    """Unit of the coordinates: "metre" (georeferenced data, SUMO), "user unit" (SVG), "unit"
    (no CRS, unknown unit)."""
    classes: np.ndarray | None = None
    """Object array of class labels (str or None), or None when the source has no classes."""
    attributes: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Other per-feature attributes ({name: object array}), read by attribute width rules."""
    extent: tuple[float, float, float, float] | None = None
    """(minx, miny, maxx, maxy) the raster should cover when the source defines a canvas
    (an SVG's viewBox); None: the features' own bounds."""
    y_down: bool = False
    """True when y grows downwards (SVG): the raster is then not flipped."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Reader-specific provenance recorded in the sample attrs (SUMO projParameter, ...)."""

    def __post_init__(self) -> None:
        self.geometries = np.asarray(self.geometries, dtype=object).reshape(-1)
        self.widths = np.asarray(self.widths, dtype=float).reshape(-1)
        n = len(self.geometries)
        if len(self.widths) != n:
            raise ConfigError(f"VectorLines: {len(self.widths)} widths for {n} geometries")
        if self.classes is not None:
            self.classes = np.asarray(self.classes, dtype=object).reshape(-1)
            if len(self.classes) != n:
                raise ConfigError(f"VectorLines: {len(self.classes)} classes for {n} geometries")
        attributes = {}
        for key, values in self.attributes.items():
            column = np.empty(n, dtype=object)
            column[:] = list(values)
            attributes[str(key)] = column
        self.attributes = attributes
        kinds = set(shapely.get_type_id(self.geometries).tolist()) if n else set()
        allowed = {1, 2, 3, 5, 6}  # LineString, LinearRing, Polygon, MultiLineString, MultiPolygon
        if kinds - allowed:
            raise ConfigError("VectorLines: geometries must be lines or polygons "
                              f"(got type ids {sorted(kinds - allowed)})")
        if np.any(self.widths[np.isfinite(self.widths)] <= 0):
            raise ConfigError("VectorLines: widths must be positive (or NaN for the default)")
        if self.extent is not None:
            x0, y0, x1, y1 = (float(v) for v in self.extent)
            if not (x1 > x0 and y1 > y0):
                raise ConfigError(f"VectorLines: empty extent {self.extent}")
            self.extent = (x0, y0, x1, y1)

    def __len__(self) -> int:
        return len(self.geometries)

    @property
    def metric(self) -> bool:
        """True when coordinates are metres (resolution is then metres per pixel)."""
        return self.unit == METRE

    def subset(self, keep: np.ndarray) -> VectorLines:
        """The features selected by `keep` (bool mask or index array); other fields shared."""
        keep = np.asarray(keep)
        return VectorLines(
            geometries=self.geometries[keep], widths=self.widths[keep], crs=self.crs,
            unit=self.unit,
            classes=None if self.classes is None else self.classes[keep],
            attributes={k: v[keep] for k, v in self.attributes.items()},
            extent=self.extent, y_down=self.y_down, meta=dict(self.meta),
        )


def as_lines_and_polygons(geometries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(geometries, source index) with collections split into parts, Z dropped, and points and
    empties removed: the readers' common clean-up. The index maps each kept part to its row."""
    geoms = shapely.force_2d(np.asarray(geometries, dtype=object))
    geoms[shapely.is_missing(geoms)] = shapely.GeometryCollection()
    collection = shapely.get_type_id(geoms) == 7
    if collection.any():
        parts, index = shapely.get_parts(geoms, return_index=True)
        whole = np.flatnonzero(~collection)
        split = np.isin(index, np.flatnonzero(collection))
        geoms = np.concatenate([geoms[whole], parts[split]])
        rows = np.concatenate([whole, index[split]])
        order = np.argsort(rows, kind="stable")
        geoms, rows = geoms[order], rows[order]
    else:
        rows = np.arange(len(geoms))
    keep = np.isin(shapely.get_type_id(geoms), [1, 2, 3, 5, 6]) & ~shapely.is_empty(geoms)
    return geoms[keep], rows[keep]
