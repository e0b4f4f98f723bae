"""Read the stroked shapes of an SVG drawing into `VectorLines` (via svgelements).

`svgelements.SVG.parse` resolves styles, inheritance and transforms; every Path, Line,
Polyline, Polygon, Circle, Ellipse and Rect that has a stroke becomes one feature: its outline
as a (multi-)polyline, with curves (Béziers, arcs) sampled so that no segment is longer than
`max_segment` user units, and its width = the `stroke-width` scaled by the element's transform
(`implicit_stroke_width`). Fills, text and images are ignored.

Coordinates are in the root's user units (the `viewBox` units; svgelements maps them to CSS
pixels of the document's width/height, which is undone here), y pointing down as in the SVG,
no CRS. The viewBox (else the declared width x height) is the canvas: the raster covers it.

Usage::

    from distpaint.data.vector.svg import read_svg
    lines = read_svg("kanji.svg", max_segment=0.25 / 4)   # 0.25 px at 4 px per unit
"""

from __future__ import annotations

import math
import pathlib
import xml.etree.ElementTree as ET

import numpy as np
import shapely
from svgelements import SVG, Close, Line, Matrix, Move, Path, Shape

from distpaint.data.vector.lines import VectorLines
from distpaint.errors import ConfigError, InputError

__all__ = ["read_svg", "SVG_UNIT"]

SVG_UNIT = "user unit"
"""The unit of SVG features: the root element's user unit (viewBox units)."""


def _sample(segment, step: float) -> np.ndarray:
    """Points along a curved segment, consecutive points at most `step` apart."""
    n = 64
    for _ in range(6):
        pts = np.asarray(segment.npoint(np.linspace(0.0, 1.0, n + 1)), dtype=float)
        chord = float(np.hypot(*np.diff(pts, axis=0).T).max()) if len(pts) > 1 else 0.0
        if chord <= step:
            return pts
        # Parameter speed varies along a curve; grow n by the worst chord's excess.
        n = int(math.ceil(n * chord / step * 1.1))
        if n > 50_000_000:
            raise ConfigError(f"SVG curve needs more than {n} points at this resolution")
    return pts


def _subpaths(element, step: float) -> list[np.ndarray]:
    """The element's outline as point arrays (document coordinates), one per subpath."""
    out: list[list[np.ndarray]] = []
    current: list[np.ndarray] | None = None
    for segment in Path(element).segments():
        if isinstance(segment, Move):
            current = [np.array([[segment.end.x, segment.end.y]], dtype=float)]
            out.append(current)
            continue
        if segment.start is None or segment.end is None:
            continue
        if current is None:
            current = [np.array([[segment.start.x, segment.start.y]], dtype=float)]
            out.append(current)
        if isinstance(segment, (Line, Close)):
            current.append(np.array([[segment.end.x, segment.end.y]], dtype=float))
        else:
            current.append(_sample(segment, step)[1:])
    return [np.vstack(parts) for parts in out if len(parts) > 1]


def _dedupe(points: np.ndarray) -> np.ndarray:
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = np.any(np.diff(points, axis=0) != 0, axis=1)
    points = points[keep]
    return points if len(points) > 1 else np.vstack([points, points])  # a dot: zero length


def read_svg(path: str | pathlib.Path, *, max_segment: float = 0.0625) -> VectorLines:
    """Stroked shapes of an SVG file (module docstring); `max_segment` is the longest
    straight piece a curve is cut into, in user units. InputError names the file for anything
    unreadable."""
    path = pathlib.Path(path)
    if not (isinstance(max_segment, (int, float)) and max_segment > 0):
        raise ConfigError(f"max_segment must be positive, got {max_segment!r}")
    try:
        svg = SVG.parse(str(path))
    except ET.ParseError as exc:
        raise InputError(f"{path}: not a readable SVG: malformed XML ({exc})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except Exception as exc:  # svgelements' own errors on odd attributes
        raise InputError(f"{path}: not a readable SVG: {exc}") from None
    if not isinstance(svg, SVG):
        raise InputError(f"{path}: not an SVG document")
    # svgelements maps viewBox units to document pixels; undo that to get user units.
    to_doc = Matrix(svg.viewbox.transform(svg)) if svg.viewbox is not None else Matrix()
    scale = math.sqrt(abs(to_doc.a * to_doc.d - to_doc.b * to_doc.c)) or 1.0
    to_user = ~to_doc
    step_doc = max_segment * scale
    geoms, widths = [], []
    attrs: dict[str, list] = {"id": [], "class": [], "stroke": []}
    for element in svg.elements():
        if not isinstance(element, Shape) or element.stroke is None or element.stroke.value is None:
            continue
        width = element.implicit_stroke_width
        if width is None or not width > 0:
            continue
        parts = []
        for points in _subpaths(element, step_doc):
            x, y = points[:, 0], points[:, 1]
            user = np.column_stack([to_user.a * x + to_user.c * y + to_user.e,
                                    to_user.b * x + to_user.d * y + to_user.f])
            parts.append(shapely.linestrings(_dedupe(user)))
        if not parts:
            continue
        geoms.append(parts[0] if len(parts) == 1 else shapely.multilinestrings(parts))
        widths.append(float(width) / scale)
        attrs["id"].append(element.id)
        attrs["class"].append(element.values.get("class"))
        attrs["stroke"].append(element.stroke.hex)
    extent = None
    if svg.viewbox is not None:
        vb = svg.viewbox
        extent = (vb.x, vb.y, vb.x + vb.width, vb.y + vb.height)
    elif svg.values.get("width") and svg.values.get("height"):
        extent = (0.0, 0.0, float(svg.width), float(svg.height))
    if extent is not None and not (extent[2] > extent[0] and extent[3] > extent[1]):
        extent = None
    meta = {"svg": {"extent": list(extent) if extent else None, "shapes": len(geoms)}}
    return VectorLines(
        geometries=np.array(geoms, dtype=object) if geoms else np.empty(0, dtype=object),
        widths=np.array(widths, dtype=float), crs=None, unit=SVG_UNIT,
        attributes=attrs, extent=extent, y_down=True, meta=meta,
    )
