"""Rasterise vector files into samples of a mask store (what `distpaint rasterize` runs).

One sample per source file, named after its stem without the vector suffix (as `ingest`
names samples: characters other than letters, digits, '.', '_' and '-' become '_'). Each
sample's mask is burnt lazily (`burner.rasterize_lines`) and streamed into the store by
`MaskStore.write`, which is atomic. Sources are only read, never modified.

Resolution: data whose unit is the metre (georeferenced data, reprojected to metres when
needed, and SUMO networks) uses `resolution` metres per pixel (default 0.5); data without a CRS
(SVG drawings, GIS files without one) uses `px_per_unit` pixels per unit (default 4). Giving
only the other one of the two is a ConfigError naming the file.

Per sample the attrs hold: `source` (absolute path), `sha256`, `format` ("vector:<kind>"),
`crs` (WKT, None for drawings), `transform` ([a, b, c, d, e, f] as rasterio and GeoTIFF ingest
write it), `resolution` (units per pixel), `px_per_unit` (drawings), `unit`, `width_rule`,
`class_filters`, `features` (count burnt), `margin`, `layer`, `vector` (reader provenance:
SUMO projParameter / netOffset, reprojection, SVG canvas) and, when given, `licence` and
`attribution`.

Usage::

    from distpaint.data.vector import RasterizeConfig, WidthRule, rasterize_files
    config = RasterizeConfig(resolution=1.0, rule=WidthRule(exclude=("footway", "railway.*")))
    results = rasterize_files(["osm.net.xml.gz"], "roads.zarr", config)
"""

from __future__ import annotations

import os
import pathlib
import re
from dataclasses import dataclass, field

import numpy as np

from distpaint.data.ingest import check_outside, file_sha256
from distpaint.data.store import MaskStore, writing_store
from distpaint.data.vector.burner import rasterize_lines
from distpaint.data.vector.readers import read_vector, vector_kind, vector_stem
from distpaint.data.vector.widths import WidthRule
from distpaint.errors import ConfigError, DistpaintError, InputError

__all__ = [
    "RasterizeConfig",
    "RasterizeResult",
    "DEFAULT_RESOLUTION",
    "DEFAULT_PX_PER_UNIT",
    "vector_sample_name",
    "rasterize_file",
    "rasterize_files",
]

DEFAULT_RESOLUTION = 0.5
"""Metres per pixel for data in metres when no resolution is given."""
DEFAULT_PX_PER_UNIT = 4.0
"""Pixels per unit for data without a CRS (drawings) when none is given."""
SVG_MAX_SEGMENT_PX = 0.25
"""Curves of SVG drawings are cut into straight pieces of at most this many pixels."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _positive_or_none(value: float | None, what: str) -> None:
    if value is not None and not (isinstance(value, (int, float)) and np.isfinite(value)
                                  and value > 0):
        raise ConfigError(f"{what} must be a positive number, got {value!r}")


@dataclass
class RasterizeConfig:
    """How vector files become mask samples."""

    resolution: float | None = None
    """Metres per pixel for data in metres (georeferenced, SUMO); None: 0.5."""
    px_per_unit: float | None = None
    """Pixels per unit for data without a CRS (SVG user units, ...); None: 4."""
    rule: WidthRule = field(default_factory=WidthRule)
    """Widths, class filters, minimum pixel width, caps and joins."""
    margin: float = 0.0
    """Background added around the features (or the SVG canvas) on every side, in CRS units."""
    bounds: tuple[float, float, float, float] | None = None
    """(minx, miny, maxx, maxy) in the output CRS to rasterise instead of the features' extent."""
    layer: str | None = None
    """Layer of a multi-layer GIS file (GeoPackage)."""
    chunks: int = 1024
    """Side of the square blocks burnt at a time and of the Zarr chunks written."""
    overwrite: bool = False
    """Replace samples that already exist in the store (otherwise an error)."""
    licence: str | None = None
    """Licence of the source data, recorded in the sample attrs (e.g. "ODbL-1.0")."""
    attribution: str | None = None
    """Attribution the source data requires, recorded in the sample attrs."""

    def __post_init__(self) -> None:
        _positive_or_none(self.resolution, "resolution")
        _positive_or_none(self.px_per_unit, "px per unit")
        if not isinstance(self.rule, WidthRule):
            raise ConfigError(f"rule must be a WidthRule, got {type(self.rule).__name__}")
        if not (isinstance(self.margin, (int, float)) and np.isfinite(self.margin)
                and self.margin >= 0):
            raise ConfigError(f"margin must be a number >= 0, got {self.margin!r}")
        if self.bounds is not None:
            try:
                x0, y0, x1, y1 = (float(v) for v in self.bounds)
            except (TypeError, ValueError):
                raise ConfigError(f"bounds must be 4 numbers, got {self.bounds!r}") from None
            if not (np.isfinite([x0, y0, x1, y1]).all() and x1 > x0 and y1 > y0):
                raise ConfigError(f"bounds must be minx, miny, maxx, maxy with max > min, "
                                  f"got {self.bounds!r}")
            self.bounds = (x0, y0, x1, y1)
        if self.chunks < 16:
            raise ConfigError(f"chunks must be at least 16, got {self.chunks}")
        for key in ("licence", "attribution", "layer"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"{key} must be a non-empty string, got {value!r}")


@dataclass
class RasterizeResult:
    """One rasterised sample."""

    name: str
    """Sample name in the store."""
    source: str
    """Absolute path of the source file."""
    kind: str
    """Kind of vector data ("sumo", "geopackage", "svg", ...)."""
    shape: tuple[int, int]
    """(rows, cols) of the mask."""
    features: int
    """Features burnt."""
    pixel_size: float
    """CRS units per pixel."""
    unit: str
    """Unit of the coordinates."""
    foreground: int
    """Foreground pixels written."""

    @property
    def foreground_fraction(self) -> float:
        """Foreground pixels over all pixels."""
        return self.foreground / (self.shape[0] * self.shape[1])


def vector_sample_name(path: str | os.PathLike) -> str:
    """The sample name for a vector file: its stem without the vector suffix, made safe."""
    return _UNSAFE.sub("_", vector_stem(path)).strip("._-") or "mask"


def _pixel_size(lines, config: RasterizeConfig, path: pathlib.Path) -> float:
    if lines.metric:
        if config.resolution is None and config.px_per_unit is not None:
            where = "its CRS" if lines.crs else "a SUMO network"
            raise ConfigError(f"{path}: coordinates are metres ({where}); give --resolution "
                              "(metres per pixel), not --px-per-unit")
        return float(config.resolution or DEFAULT_RESOLUTION)
    if config.px_per_unit is None and config.resolution is not None:
        raise ConfigError(f"{path}: has no CRS (unit: {lines.unit}); give --px-per-unit "
                          "(pixels per unit), not --resolution (metres per pixel)")
    return 1.0 / float(config.px_per_unit or DEFAULT_PX_PER_UNIT)


def rasterize_file(path: str | os.PathLike, store: MaskStore, config: RasterizeConfig | None
                   = None, *, name: str | None = None) -> RasterizeResult:
    """Rasterise one vector file into sample `name` (default: from its stem) of `store`."""
    config = config or RasterizeConfig()
    path = pathlib.Path(path)
    name = name or vector_sample_name(path)
    kind = vector_kind(path)
    check_outside(path, store)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if name in store and not config.overwrite:
        raise InputError(f"{store.path}: sample {name!r} already exists; pass --overwrite to "
                         "replace it")
    max_segment = SVG_MAX_SEGMENT_PX / float(config.px_per_unit or DEFAULT_PX_PER_UNIT)
    lines = read_vector(path, layer=config.layer, max_segment=max_segment)
    if len(lines) == 0:
        raise InputError(f"{path}: no lines or polygons in the file")
    pixel = _pixel_size(lines, config, path)
    burnt = rasterize_lines(lines, pixel, config.rule, bounds=config.bounds,
                            margin=config.margin, chunks=config.chunks, source=str(path))
    rule = config.rule
    attrs = {
        "source": str(path.resolve()),
        "sha256": file_sha256(path),
        "format": f"vector:{kind}",
        "crs": lines.crs,
        "transform": list(burnt.grid.transform)[:6],
        "resolution": pixel,
        "unit": lines.unit,
        "width_rule": rule.describe(),
        "class_filters": {"include": list(rule.include), "exclude": list(rule.exclude),
                          "class_attr": rule.class_attr},
        "features": burnt.features,
        "margin": config.margin,
        "vector": lines.meta,
    }
    if not lines.metric:
        attrs["px_per_unit"] = 1.0 / pixel
    for key in ("layer", "licence", "attribution"):
        if getattr(config, key) is not None:
            attrs[key] = getattr(config, key)
    store.write(name, {"mask": burnt.mask}, attrs, chunks=config.chunks,
                overwrite=config.overwrite)
    foreground = int(store.dask(name).sum().compute())
    return RasterizeResult(
        name=name, source=attrs["source"], kind=kind, shape=burnt.grid.shape,
        features=burnt.features, pixel_size=pixel, unit=lines.unit, foreground=foreground,
    )


def rasterize_files(paths: list[str | os.PathLike], store: MaskStore | str | os.PathLike,
                    config: RasterizeConfig | None = None, *, name: str | None = None
                    ) -> list[RasterizeResult]:
    """Rasterise every file in `paths` into `store` (a MaskStore, or a path created if
    missing), one sample each. Missing files, unknown suffixes, name clashes and existing
    samples (without `overwrite`) are refused before anything is written; a store this call
    created is removed again if nothing could be written into it."""
    config = config or RasterizeConfig()
    paths = [pathlib.Path(p) for p in paths]
    if not paths:
        raise ConfigError("no sources given")
    if name is not None and len(paths) != 1:
        raise ConfigError(f"--name applies to one source, got {len(paths)}")
    names = [name or vector_sample_name(p) for p in paths]
    for path in paths:
        vector_kind(path)
        if not path.is_file():
            raise InputError(f"{path}: no such file")
    seen: dict[str, pathlib.Path] = {}
    for path, sample in zip(paths, names, strict=True):
        if sample in seen:
            raise InputError(f"{seen[sample]} and {path} would both become sample {sample!r}; "
                             "rasterize them in separate runs with --name")
        seen[sample] = path
    if isinstance(store, MaskStore):
        return _rasterize_into(paths, names, store, config)
    with writing_store(store) as opened:  # a new store left without a sample is removed
        return _rasterize_into(paths, names, opened, config)


def _rasterize_into(paths: list[pathlib.Path], names: list[str], store: MaskStore,
                    config: RasterizeConfig) -> list[RasterizeResult]:
    for path in paths:
        check_outside(path, store)
    if not config.overwrite:
        taken = [n for n in names if n in store]
        if taken:
            raise InputError(f"{store.path}: samples already exist: {', '.join(taken[:8])}; "
                             "pass --overwrite to replace them")
    results = []
    for path, sample in zip(paths, names, strict=True):
        try:
            results.append(rasterize_file(path, store, config, name=sample))
        except DistpaintError as exc:
            done = len(results)
            if not done:
                raise
            note = f" ({done} earlier source{'s' * (done != 1)} written)"
            raise type(exc)(f"{exc}{note}") from None
    return results
