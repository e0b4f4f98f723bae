"""Read SUMO road networks (`.net.xml`, `.net.xml.gz`) into `VectorLines`.

The file is streamed with `xml.etree.ElementTree.iterparse` and every finished top-level
element is dropped, so big networks never sit in memory as a tree. Drawn are:

- every lane's `shape` ("x,y x,y ..." in metres) at its `width` attribute (3.2 m when absent)
  plus `SEAM` (20 cm, so that adjacent lanes leave no pinholes between them),
  class = its edge's `type` (e.g. `highway.residential`, `railway.tram`);
- every junction's `shape` as a filled polygon (shapes of fewer than 3 points are skipped: a
  2-point shape is a dead end, and "internal" junctions have none). A junction's class is the
  classes of the edges that start or end there, joined with "|", so it is burnt whenever any of
  its roads is.

Lanes of edges with `function` "internal", "crossing" or "walkingarea" (the inside of a
junction) are skipped unless `internal=True`: the junction polygons cover them.

`<location>` gives `projParameter` (a proj string, or "!" for none) and `netOffset`. With a
projection, net coordinates are shifted back by the offset (projected = net - netOffset), so
the features are in that CRS and the written transform is georeferenced; without one they stay
in net coordinates (metres, no CRS). Both are recorded in `meta["sumo"]`.

Usage::

    from distpaint.data.vector.sumo import read_sumo
    lines = read_sumo("osm.net.xml.gz")
"""

from __future__ import annotations

import gzip
import math
import pathlib
import xml.etree.ElementTree as ET
import zlib
from typing import IO

import numpy as np
import shapely

from distpaint.data.vector.lines import METRE, VectorLines
from distpaint.errors import InputError

__all__ = ["read_sumo", "DEFAULT_LANE_WIDTH", "JUNCTION_INTERNAL_FUNCTIONS"]

DEFAULT_LANE_WIDTH = 3.2
"""SUMO's default lane width in metres (lanes without a `width` attribute)."""
SEAM = 0.2
"""Metres added to every lane's width: netconvert leaves a seam of up to ~15 cm between the
lanes of the two directions of a road (their centrelines lie a little more than a lane width
apart) and rounds coordinates to 1 cm, so a pixel whose centre falls in a seam is a pinhole in
the middle of the road (one every few metres along a two-way street at 1 m/px). 20 cm close
every seam; at 0.5 m/px a road grows by at most one pixel."""
JUNCTION_INTERNAL_FUNCTIONS = ("internal", "crossing", "walkingarea")
"""Edge functions inside junctions, covered by the junction polygons."""


def _points(text: str | None, path: pathlib.Path, what: str) -> np.ndarray:
    """An (n, 2) array from a SUMO shape "x,y[,z] x,y[,z] ..."."""
    if not text:
        return np.empty((0, 2))
    try:
        pts = [tuple(float(v) for v in p.split(",")[:2]) for p in text.split()]
        array = np.array(pts, dtype=float).reshape(-1, 2)
    except ValueError:
        raise InputError(f"{path}: {what}: malformed shape {text[:60]!r}") from None
    if not np.isfinite(array).all():
        raise InputError(f"{path}: {what}: shape has non-finite coordinates")
    return array


def _open(path: pathlib.Path) -> IO[bytes]:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def _float(value: str | None, default: float) -> float:
    try:
        number = float(value) if value is not None else default
    except ValueError:
        return default
    return number if math.isfinite(number) and number > 0 else default


def read_sumo(path: str | pathlib.Path, *, internal: bool = False) -> VectorLines:
    """Lanes and junction polygons of a SUMO network (module docstring). InputError names the
    file for anything that is not a readable SUMO network."""
    path = pathlib.Path(path)
    lanes: list[np.ndarray] = []
    lane_rows: list[tuple[float, str | None, str, str, str | None]] = []
    junctions: list[tuple[str, np.ndarray, str | None]] = []
    touching: dict[str, set[str]] = {}  # junction id -> classes of the edges ending there
    location: dict[str, str] = {}
    edge: dict[str, str] | None = None
    depth = 0
    try:
        with _open(path) as fh:
            context = ET.iterparse(fh, events=("start", "end"))
            root = None
            for event, elem in context:
                if event == "start":
                    depth += 1
                    if root is None:
                        root = elem
                        if elem.tag != "net":
                            raise InputError(f"{path}: not a SUMO network (root element "
                                             f"<{elem.tag}>, expected <net>)")
                    elif depth == 2 and elem.tag == "edge":
                        edge = dict(elem.attrib)
                        function = edge.get("function", "normal")
                        if function not in JUNCTION_INTERNAL_FUNCTIONS:
                            cls = edge.get("type") or None
                            for end in (edge.get("from"), edge.get("to")):
                                if end is not None:
                                    classes = touching.setdefault(end, set())
                                    if cls:
                                        classes.add(cls)
                    elif depth == 2 and elem.tag == "location":
                        location = dict(elem.attrib)
                    elif depth == 2 and elem.tag == "junction":
                        shape = _points(elem.get("shape"), path, f"junction {elem.get('id')!r}")
                        if len(shape) >= 3:
                            junctions.append((elem.get("id", ""), shape, elem.get("type")))
                    elif depth == 3 and elem.tag == "lane" and edge is not None:
                        function = edge.get("function", "normal")
                        if internal or function not in JUNCTION_INTERNAL_FUNCTIONS:
                            what = f"lane {elem.get('id')!r}"
                            shape = _points(elem.get("shape"), path, what)
                            if len(shape) >= 2:
                                lanes.append(shape)
                                lane_rows.append((
                                    _float(elem.get("width"), DEFAULT_LANE_WIDTH) + SEAM,
                                    edge.get("type") or None, edge.get("id", ""),
                                    elem.get("id", ""), function,
                                ))
                else:
                    depth -= 1
                    if depth == 1:
                        if elem.tag == "edge":
                            edge = None
                        # Drop finished top-level elements: the tree never grows.
                        root.clear()
    except InputError:
        raise
    except ET.ParseError as exc:
        raise InputError(f"{path}: not a SUMO network: malformed XML ({exc})") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    return _assemble(path, lanes, lane_rows, junctions, touching, location)


def _assemble(path, lanes, lane_rows, junctions, touching, location) -> VectorLines:
    proj = location.get("projParameter", "!")
    offset = (0.0, 0.0)
    crs = None
    meta: dict = {"sumo": {"projParameter": proj}}
    if "netOffset" in location:
        try:
            ox, oy = (float(v) for v in location["netOffset"].split(","))
            offset = (ox, oy)
        except ValueError:
            raise InputError(f"{path}: malformed netOffset {location['netOffset']!r}") from None
        meta["sumo"]["netOffset"] = [ox, oy]
    if "convBoundary" in location:
        meta["sumo"]["convBoundary"] = location["convBoundary"]
    if proj and proj != "!":
        crs = _crs_wkt(path, proj)
        meta["sumo"]["coordinates"] = "projected (net - netOffset)"
    else:
        offset = (0.0, 0.0)
        meta["sumo"]["coordinates"] = "net"

    geoms = [shapely.linestrings(shape - offset) for shape in lanes]
    geoms += [shapely.polygons(np.vstack([shape, shape[:1]]) - offset)
              for _, shape, _ in junctions]
    n_lanes, n = len(lanes), len(lanes) + len(junctions)
    widths = np.full(n, np.nan)
    classes = np.empty(n, dtype=object)
    attrs = {key: np.empty(n, dtype=object) for key in
             ("type", "edge", "lane", "function", "junction", "junction_type", "width")}
    for i, (width, cls, edge_id, lane_id, function) in enumerate(lane_rows):
        widths[i] = width
        classes[i] = cls
        attrs["type"][i], attrs["edge"][i], attrs["lane"][i] = cls, edge_id, lane_id
        attrs["function"][i], attrs["width"][i] = function, width
    for j, (jid, _, jtype) in enumerate(junctions):
        cls = "|".join(sorted(touching.get(jid, ()))) or None
        classes[n_lanes + j] = cls
        attrs["type"][n_lanes + j] = cls
        attrs["junction"][n_lanes + j], attrs["junction_type"][n_lanes + j] = jid, jtype
    meta["sumo"]["lanes"], meta["sumo"]["junctions"] = n_lanes, len(junctions)
    return VectorLines(
        geometries=np.array(geoms, dtype=object) if geoms else np.empty(0, dtype=object),
        widths=widths, crs=crs, unit=METRE, classes=classes, attributes=attrs, meta=meta,
    )


def _crs_wkt(path: pathlib.Path, proj: str) -> str:
    from pyproj import CRS  # deferred: only a net with a projection needs pyproj
    from pyproj.exceptions import CRSError  # deferred: as above

    try:
        return CRS.from_user_input(proj).to_wkt()
    except CRSError as exc:
        raise InputError(f"{path}: unusable projParameter {proj!r}: {exc}") from None
