"""Read one object of an R package's lazy-load data base, and spatstat's line networks in it.

An installed R package keeps its data sets in `data/Rdata.rdx` (an index: an R list of
`variables` = {name: (offset, length)}, `references` and `compressed`, serialised and gzipped)
and `data/Rdata.rdb` (the objects, each at its offset: a 4-byte big-endian length, a
compression byte when `compressed` is 2 or 3, and the compressed R serialisation). The
`rdata` package parses the serialisation and converts it to dicts of numpy arrays.

spatstat's linear networks (`linnet`) hold `vertices` (x, y), `from` and `to` (1-based vertex
numbers of each edge) and a `window`; a point pattern on a network (`lpp`) holds its network
in `domain`. `network_lines` turns either into line features for the vector burner, with the
edges merged into polylines through vertices of degree 2.

    from distpaint.data.real.lazyload import network_lines, read_lazyload
    tree = read_lazyload(folder / "data" / "Rdata", "dendrite")   # spatstat.data's neuron
    lines = network_lines(tree, width=0.5, source="dendrite")
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import pathlib
import warnings
import zlib
from typing import Any

import numpy as np
import shapely

from distpaint.data.vector import VectorLines
from distpaint.errors import InputError

__all__ = ["read_lazyload", "lazyload_names", "network_lines", "is_tree"]


def _parse(raw: bytes, what: str) -> Any:
    import rdata  # deferred: only the R sources need it

    try:
        with warnings.catch_warnings():  # a bare serialisation ("X\n") warns "assumed RDS"
            warnings.simplefilter("ignore")
            return rdata.conversion.convert(rdata.parser.parse_data(raw))
    except Exception as exc:  # rdata raises many kinds on damaged or unsupported data
        raise InputError(f"{what}: not readable R data ({type(exc).__name__}: {exc})") from None


def _index(stem: pathlib.Path) -> dict:
    rdx = stem.with_name(stem.name + ".rdx")
    try:
        raw = rdx.read_bytes()
    except OSError as exc:
        raise InputError(f"{rdx}: cannot read the lazy-load index "
                         f"({exc.strerror or exc})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{rdx}: damaged gzip data ({exc})") from None
    index = _parse(raw, str(rdx))
    if not isinstance(index, dict) or "variables" not in index:
        raise InputError(f"{rdx}: not an R lazy-load index (no `variables`)")
    return index


def lazyload_names(stem: str | pathlib.Path) -> list[str]:
    """Names of the objects in the lazy-load data base `stem` (`.../data/Rdata`)."""
    return [str(k) for k in _index(pathlib.Path(stem))["variables"]]


def read_lazyload(stem: str | pathlib.Path, name: str) -> Any:
    """The object `name` of the lazy-load data base `stem` (the path without `.rdx`/`.rdb`),
    converted by `rdata` (R lists become dicts). InputError (one line) when the files are
    missing or damaged or hold no such object."""
    stem = pathlib.Path(stem)
    index = _index(stem)
    variables = {str(k): v for k, v in index["variables"].items()}
    if name not in variables:
        known = sorted(variables)
        raise InputError(f"{stem}.rdx: no object {name!r} (holds {len(known)}: "
                         f"{', '.join(known[:8])}{', ...' if len(known) > 8 else ''})")
    offset, length = (int(v) for v in np.asarray(variables[name]).reshape(-1)[:2])
    rdb = stem.with_name(stem.name + ".rdb")
    try:
        with open(rdb, "rb") as fh:
            fh.seek(offset)
            blob = fh.read(length)
    except OSError as exc:
        raise InputError(f"{rdb}: cannot read ({exc.strerror or exc})") from None
    if len(blob) != length or length < 5:
        raise InputError(f"{rdb}: truncated ({len(blob)} of {length} bytes of {name!r})")
    compressed = int(np.asarray(index.get("compressed", True)).reshape(-1)[0])
    size, body = int.from_bytes(blob[:4], "big"), blob[4:]
    try:
        if compressed in (2, 3):  # a type byte: Z(lib), 2 (bzip2), X (xz), 0 (none)
            kind, body = body[:1], body[1:]
            raw = {b"Z": zlib.decompress, b"2": bz2.decompress, b"X": lzma.decompress,
                   b"0": bytes}[kind](body)
        elif compressed:
            raw = zlib.decompress(body)
        else:
            raw = body
    except (KeyError, zlib.error, OSError, lzma.LZMAError, ValueError) as exc:
        raise InputError(f"{rdb}: cannot decompress {name!r} ({type(exc).__name__})") from None
    if len(raw) != size:
        raise InputError(f"{rdb}: {name!r} is {len(raw)} bytes uncompressed, expected {size}")
    return _parse(raw, f"{rdb} ({name})")


def _field(obj: dict, key: str, what: str) -> Any:
    for k, v in obj.items():
        if str(k) == key:
            return v
    raise InputError(f"{what}: not a spatstat linnet or lpp (no `{key}`)")


def _network(obj: Any, what: str) -> dict:
    if not isinstance(obj, dict):
        raise InputError(f"{what}: not a spatstat linnet or lpp (an R list), "
                         f"got {type(obj).__name__}")
    keys = {str(k) for k in obj}
    if "domain" in keys and "vertices" not in keys:  # an lpp: the points on its network
        obj = _field(obj, "domain", what)
        if not isinstance(obj, dict):
            raise InputError(f"{what}: the lpp's domain is not a linnet")
    return obj


def is_tree(n_vertices: int, edges: np.ndarray) -> bool:
    """True when the edges (0-based (from, to) rows) join all `n_vertices` into one tree:
    n - 1 edges and one connected component."""
    if len(edges) != n_vertices - 1:
        return False
    parent = np.arange(n_vertices)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in edges:
        ra, rb = root(int(a)), root(int(b))
        if ra == rb:
            return False  # a loop
        parent[ra] = rb
    return True


def network_lines(obj: Any, width: float, source: str = "network") -> VectorLines:
    """The edges of a spatstat `linnet` (or the network of an `lpp`) as line features of
    `width` (network units), merged into polylines through degree-2 vertices; y points up,
    the canvas is the network's window. `meta` records vertex and edge counts and whether
    the network is a tree."""
    net = _network(obj, source)
    vertices = _field(net, "vertices", source)
    if not isinstance(vertices, dict):
        raise InputError(f"{source}: the network's vertices are not a point pattern")
    try:
        x = np.asarray(_field(vertices, "x", source), dtype=float).reshape(-1)
        y = np.asarray(_field(vertices, "y", source), dtype=float).reshape(-1)
        start = np.asarray(_field(net, "from", source), dtype=np.int64).reshape(-1) - 1
        end = np.asarray(_field(net, "to", source), dtype=np.int64).reshape(-1) - 1
    except (TypeError, ValueError) as exc:
        raise InputError(f"{source}: non-numeric network coordinates ({exc})") from None
    if len(x) != len(y) or len(start) != len(end) or len(start) == 0:
        raise InputError(f"{source}: {len(x)} x, {len(y)} y, {len(start)} from, {len(end)} to: "
                         "not a network")
    if min(start.min(), end.min()) < 0 or max(start.max(), end.max()) >= len(x):
        raise InputError(f"{source}: an edge names a vertex outside 1..{len(x)}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputError(f"{source}: non-finite vertex coordinates")
    xy = np.column_stack([x, y])
    segments = shapely.linestrings(np.stack([xy[start], xy[end]], axis=1))
    merged = shapely.line_merge(shapely.multilinestrings(segments))
    geoms = shapely.get_parts(merged)
    extent = None
    window = next((v for k, v in net.items() if str(k) == "window"), None)
    if isinstance(window, dict):
        try:
            (x0, x1), (y0, y1) = (np.asarray(_field(window, r, source), float)[:2]
                                  for r in ("xrange", "yrange"))
            if x1 > x0 and y1 > y0:
                extent = (float(x0), float(y0), float(x1), float(y1))
        except (InputError, TypeError, ValueError):
            extent = None
    edges = np.column_stack([start, end])
    length = float(shapely.length(segments).sum())
    return VectorLines(geometries=geoms, widths=np.full(len(geoms), float(width)), crs=None,
                       unit="unit", extent=extent,
                       meta={"network": {"vertices": len(x), "edges": len(edges),
                                         "length": round(length, 3), "polylines": len(geoms),
                                         "tree": is_tree(len(x), edges)}})
