"""Read GIS vector files (GeoPackage, Shapefile, GeoJSON, FlatGeobuf) into `VectorLines`.

Reading goes through geopandas with the pyogrio engine. Data in a geographic CRS (degrees) or
in a projected CRS whose unit is not the metre (e.g. ESRI:102649, US feet) is reprojected to
the UTM zone `GeoDataFrame.estimate_utm_crs()` picks, so resolutions and widths of
georeferenced data are always metres. Data without a CRS keeps its coordinates (unit "unit").
Every non-geometry column becomes a per-feature attribute; there is no built-in class (name
one with a width rule's `class_attr`).

`from_geodataframe` is shared with the GraphML reader, which builds a GeoDataFrame of edges.

Usage::

    from distpaint.data.vector.gis import read_gis
    lines = read_gis("roads.gpkg", layer="streets")
"""

from __future__ import annotations

import pathlib
import warnings
from typing import Any

import numpy as np

from distpaint.data.vector.lines import METRE, VectorLines, as_lines_and_polygons
from distpaint.errors import InputError

# geopandas and pyogrio (about 0.6 s to import) are imported by the functions that read GIS
# files: the vector package is imported when the CLI starts (`distpaint realdata`), and SVG,
# SUMO and GraphML inputs need neither.

__all__ = ["read_gis", "from_geodataframe", "to_metric"]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_gis(path: str | pathlib.Path, *, layer: str | None = None) -> VectorLines:
    """Features of a GeoPackage / Shapefile / GeoJSON / FlatGeobuf file. A file with several
    layers needs `layer`; InputError names the file for anything unreadable."""
    import geopandas  # deferred: see the note at the imports
    import pyogrio  # deferred: see the note at the imports

    path = pathlib.Path(path)
    try:
        layers = [str(name) for name in pyogrio.list_layers(path)[:, 0]]
    except Exception as exc:
        raise InputError(f"{path}: not a readable vector file: {_first_line(exc)}") from None
    if layer is None and len(layers) > 1:
        raise InputError(f"{path}: has {len(layers)} layers ({', '.join(layers[:10])}); "
                         "choose one with --layer")
    if layer is not None and layer not in layers:
        raise InputError(f"{path}: no layer {layer!r} (layers: {', '.join(layers[:10])})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # pyogrio's notes on odd drivers
            frame = geopandas.read_file(path, engine="pyogrio", layer=layer)
    except Exception as exc:
        raise InputError(f"{path}: not a readable vector file: {_first_line(exc)}") from None
    return from_geodataframe(frame, str(path))


def to_metric(frame: Any, source: str) -> tuple[Any, dict]:
    """`frame` in a metric CRS: geographic and non-metre CRSs, and Mercator projections (in
    metres, but stretched by 1/cos(latitude): Web Mercator's "metre" is 0.62 m in London) are
    reprojected to the estimated UTM zone. Returns (frame, provenance for the sample attrs)."""
    crs = frame.crs
    if crs is None:
        return frame, {}
    unit = (crs.axis_info[0].unit_name if crs.axis_info else "").lower()
    operation = crs.coordinate_operation
    method = (operation.method_name or "").lower() if operation is not None else ""
    mercator = "mercator" in method and "transverse" not in method  # UTM is transverse: fine
    if crs.is_projected and unit in ("metre", "meter") and not mercator:
        return frame, {}
    try:
        target = frame.estimate_utm_crs()
        out = frame.to_crs(target)
    except Exception as exc:
        raise InputError(f"{source}: cannot reproject from {crs.name} to a metric CRS: "
                         f"{_first_line(exc)}") from None
    return out, {"reprojected_from": crs.to_string(), "reprojected_to": target.to_string()}


def from_geodataframe(frame: Any, source: str, *, classes: np.ndarray | None = None
                      ) -> VectorLines:
    """`VectorLines` of a GeoDataFrame's line and polygon features (points and empty
    geometries dropped, collections split), reprojected to metres when georeferenced.
    `classes` (one per row of `frame`) become the features' own classes."""
    frame, meta = to_metric(frame, source)
    geoms, rows = as_lines_and_polygons(np.asarray(frame.geometry.values, dtype=object))
    dropped = len(frame) - len(np.unique(rows))
    if dropped:
        meta["skipped_features"] = int(dropped)
    columns = [c for c in frame.columns if c != frame.geometry.name]
    attributes = {}
    for column in columns:
        values = frame[column].to_numpy(dtype=object)
        attributes[str(column)] = values[rows]
    return VectorLines(
        geometries=geoms,
        widths=np.full(len(geoms), np.nan),
        crs=frame.crs.to_wkt() if frame.crs is not None else None,
        unit=METRE if frame.crs is not None else "unit",
        classes=None if classes is None else np.asarray(classes, dtype=object)[rows],
        attributes=attributes,
        meta=meta,
    )
