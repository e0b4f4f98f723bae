"""Pick the reader for a vector file by its suffix and read it into `VectorLines`.

    suffix                                    kind          reader
    .gpkg                                     geopackage    gis.read_gis (layer=)
    .shp                                      shapefile     gis.read_gis
    .geojson, .json                           geojson       gis.read_gis
    .fgb                                      flatgeobuf    gis.read_gis
    .net.xml, .net.xml.gz                     sumo          sumo.read_sumo
    .graphml, .graphml.gz                     graphml       graphml.read_graphml
    .svg                                      svg           svg.read_svg

Usage::

    from distpaint.data.vector.readers import read_vector, vector_kind
    kind = vector_kind("osm.net.xml.gz")          # "sumo"; InputError for unknown suffixes
    lines = read_vector("roads.gpkg", layer="streets")
"""

from __future__ import annotations

import os
import pathlib

from distpaint.data.vector.gis import read_gis
from distpaint.data.vector.graphml import read_graphml
from distpaint.data.vector.lines import VectorLines
from distpaint.data.vector.sumo import read_sumo
from distpaint.data.vector.svg import read_svg
from distpaint.errors import ConfigError, InputError

__all__ = ["VECTOR_SUFFIXES", "vector_kind", "vector_stem", "read_vector"]

VECTOR_SUFFIXES: dict[str, str] = {
    ".net.xml.gz": "sumo",
    ".net.xml": "sumo",
    ".graphml.gz": "graphml",
    ".graphml": "graphml",
    ".gpkg": "geopackage",
    ".shp": "shapefile",
    ".geojson": "geojson",
    ".json": "geojson",
    ".fgb": "flatgeobuf",
    ".svg": "svg",
}
"""File suffix (longest first) -> kind of vector data."""


def _suffix(path: pathlib.Path) -> str | None:
    name = path.name.lower()
    return next((s for s in VECTOR_SUFFIXES if name.endswith(s) and len(name) > len(s)), None)


def vector_kind(path: str | os.PathLike) -> str:
    """The kind of vector data `path` holds, from its suffix; InputError if unknown."""
    path = pathlib.Path(path)
    suffix = _suffix(path)
    if suffix is None:
        known = ", ".join(VECTOR_SUFFIXES)
        raise InputError(f"{path}: unknown vector file type (known suffixes: {known})")
    return VECTOR_SUFFIXES[suffix]


def vector_stem(path: str | os.PathLike) -> str:
    """The file name without its vector suffix ("osm.net.xml.gz" -> "osm")."""
    path = pathlib.Path(path)
    suffix = _suffix(path)
    return path.name[: -len(suffix)] if suffix else path.stem


def read_vector(path: str | os.PathLike, *, layer: str | None = None,
                max_segment: float = 0.0625) -> VectorLines:
    """Read any supported vector file. `layer` picks a layer of a multi-layer GIS file;
    `max_segment` is the longest straight piece SVG curves are cut into (user units)."""
    path = pathlib.Path(path)
    kind = vector_kind(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if layer is not None and kind not in ("geopackage", "shapefile", "geojson", "flatgeobuf"):
        raise ConfigError(f"{path}: --layer applies to GIS files, not {kind}")
    if kind == "sumo":
        return read_sumo(path)
    if kind == "graphml":
        return read_graphml(path)
    if kind == "svg":
        return read_svg(path, max_segment=max_segment)
    return read_gis(path, layer=layer)
