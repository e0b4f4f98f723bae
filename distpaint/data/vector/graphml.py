"""Read GraphML street graphs (e.g. written by OSMnx) into `VectorLines`.

Read with `networkx.read_graphml` (`.graphml`, or `.graphml.gz`). Nodes carry `x` and `y`
coordinates; an edge with a `geometry` attribute (WKT LINESTRING) is drawn along it, any other
edge as the straight segment between its nodes. The graph-level `crs` attribute, when present,
georeferences the coordinates (geographic ones are reprojected to metres like GIS files); without
one the coordinates are plain units. Edge attributes (`highway`, `lanes`, `width`, ...) become
per-feature attributes, and `highway` the features' own class (OSMnx lists such as
"['residential', 'tertiary']" count as several classes). The two directions of a two-way street
(same node pair, same geometry) are drawn once.

Usage::

    from distpaint.data.vector.graphml import read_graphml
    lines = read_graphml("streets.graphml")
"""

from __future__ import annotations

import math
import pathlib
from typing import Any

import shapely

from distpaint.data.vector.gis import from_geodataframe
from distpaint.data.vector.lines import VectorLines
from distpaint.errors import InputError

# geopandas and networkx are imported by `read_graphml`: the vector package is imported when
# the CLI starts (`distpaint realdata`), and only GraphML inputs need them.

__all__ = ["read_graphml"]


def _coord(data: dict, key: str, node: Any, path: pathlib.Path) -> float:
    try:
        value = float(data[key])
    except KeyError:
        raise InputError(f"{path}: node {node!r} has no {key!r} coordinate") from None
    except (TypeError, ValueError):
        raise InputError(f"{path}: node {node!r}: {key}={data[key]!r} is not a number") from None
    if not math.isfinite(value):
        raise InputError(f"{path}: node {node!r}: {key}={data[key]!r} is not finite")
    return value


def read_graphml(path: str | pathlib.Path) -> VectorLines:
    """Edges of a GraphML street graph (module docstring); InputError names the file for
    anything unreadable."""
    import geopandas  # deferred: see the note at the imports
    import networkx  # deferred: see the note at the imports

    path = pathlib.Path(path)
    try:
        graph = networkx.read_graphml(path)
    except Exception as exc:  # networkx raises bare XML, KeyError, NetworkXError, ...
        text = str(exc).strip().splitlines()
        raise InputError(f"{path}: not a readable GraphML graph: "
                         f"{text[0] if text else type(exc).__name__}") from None
    xy = {node: (_coord(d, "x", node, path), _coord(d, "y", node, path))
          for node, d in graph.nodes(data=True)}
    geoms, rows, seen = [], [], set()
    for u, v, data in graph.edges(data=True):
        wkt = data.get("geometry")
        if wkt:
            try:
                geom = shapely.from_wkt(str(wkt))
            except shapely.errors.ShapelyError as exc:
                raise InputError(f"{path}: edge {u!r}-{v!r}: bad geometry WKT: {exc}") from None
        else:
            geom = shapely.LineString([xy[u], xy[v]])
        key = (frozenset((u, v)), shapely.normalize(geom).wkb)
        if key in seen:  # the other direction of a two-way street: same pixels
            continue
        seen.add(key)
        geoms.append(geom)
        rows.append({k: val for k, val in data.items() if k != "geometry"})
    if not geoms:
        raise InputError(f"{path}: the graph has no edges to draw")
    crs = graph.graph.get("crs") or None
    frame = geopandas.GeoDataFrame(rows, geometry=geoms)
    try:
        frame = frame.set_crs(crs) if crs else frame
    except Exception as exc:
        raise InputError(f"{path}: unusable graph crs {crs!r}: {exc}") from None
    classes = frame["highway"].to_numpy(dtype=object) if "highway" in frame else None
    lines = from_geodataframe(frame, str(path), classes=classes)
    lines.meta["graph"] = {"nodes": graph.number_of_nodes(), "edges": graph.number_of_edges()}
    return lines
