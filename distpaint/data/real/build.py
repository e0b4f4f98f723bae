"""Build the real benchmark: complete training masks and damaged validation/test masks, drawn
from the fetched packages (`distpaint.data.real.packages`) as the catalogue says.

    from distpaint.data.real.build import RealConfig, build_real, open_real
    build_real("~/.cache/distpaint/real", "runs/real", RealConfig(seed=0))
    real = open_real("runs/real")
    real.store("val", "roads").names()

Layout of OUT:

- `train/<kind>.zarr`: every training render whole (`mask` only), for `distpaint train`
  (`data.store` of a recipe), named `<source>-<render>`;
- `<level>/<kind>.zarr` for the levels `val`, `test` (the judging protocol's damage: `cut`
  gaps, about 60 per Mpx) and `val-mix`, `test-mix` (the heavy `mix` damage the synthetic
  benchmark uses): crops of at most `crop` px a side of every render of the split, each with
  the layers `mask` (damaged input), `gaps` and `truth`, as the synthetic benchmark sets have;
- `manifest.json`: the config, the stores, per-store SHA-256 digests, and every package's
  version, licence and attribution (each sample's attrs repeat its own), written last.

OUT may be an fsspec URL (`s3://bucket/real`, `distpaint.data.location`): the same stores and
manifest there, each sample published whole, the manifest last.

A build is resumable: samples are written atomically and the existing ones are skipped. The
same cache and config give the same masks and gaps (gap seeds from the config's seed and the
sample's name). `RealBenchset` reads like a synthetic `Benchset` (levels, kinds, store), so the
quality harness scores methods on it unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pathlib
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from scipy import ndimage as ndi

from distpaint.data import location
from distpaint.data.gaps import GapConfig, corrupt
from distpaint.data.real.catalogue import KINDS, SPLITS, SOURCES, Render, Source, hash_split
from distpaint.data.real.lazyload import network_lines, read_lazyload
from distpaint.data.real.packages import MARKER, package, package_dir
from distpaint.data.store import MaskStore
from distpaint.data.vector import VectorLines, WidthRule, rasterize_lines, read_vector
from distpaint.data.vector.lines import METRE
from distpaint.errors import ConfigError, InputError

__all__ = ["FORMAT", "VERSION", "LEVELS", "RealConfig", "RealBenchset", "build_real",
           "open_real", "source_lines", "basemap_lines", "render_mask", "close_seams", "crops"]

FORMAT = "distpaint-real-benchmark"
VERSION = 1
LEVELS = ("val", "test", "val-mix", "test-mix")
"""Evaluation levels: split, and the heavier `mix` damage after a dash."""
_REAL_SALT = 0x7EA1


@dataclass(frozen=True)
class RealConfig:
    """What `build_real` writes."""

    seed: int = 0
    """Seed of the gaps (masks do not depend on it)."""
    crop: int = 2048
    """Largest side of an evaluation mask: a render is cut into equal crops no larger."""
    min_foreground: float = 0.003
    """Crops with less foreground than this are left out."""
    kinds: tuple[str, ...] = KINDS
    """Kinds to build."""
    splits: tuple[str, ...] = SPLITS
    """Splits to build."""
    cut_density: float = 1.0
    """Density of the `cut` gaps of the val/test levels (1: the judging protocol's ~60/Mpx)."""
    mix_density: float = 0.5
    """Density of the `mix` gaps of the -mix levels."""
    chunks: int = 1024
    """Zarr chunk side of the stores."""

    def __post_init__(self) -> None:
        if self.seed < 0 or self.crop < 256 or not 0 <= self.min_foreground < 1:
            raise ConfigError("real benchmark: seed >= 0, crop >= 256, min_foreground in [0, 1)")
        for name, allowed in (("kinds", KINDS), ("splits", SPLITS)):
            values = tuple(getattr(self, name))
            object.__setattr__(self, name, values)
            if not values or set(values) - set(allowed):
                raise ConfigError(f"real benchmark: {name} must be among {', '.join(allowed)}, "
                                  f"got {list(values)}")


# ---- geometry of one source ----------------------------------------------------------------
def _files_dir(cache: pathlib.Path, source: Source) -> pathlib.Path:
    pkg = package(source.package)
    folder = package_dir(cache, pkg)
    if not (folder / MARKER).is_file():
        raise InputError(f"{folder}: package {pkg.key} {pkg.version} is not fetched; run "
                         f"`distpaint realdata fetch --cache {cache}`")
    return folder


def basemap_lines(path: pathlib.Path, box: tuple[float, float, float, float], width_m: float
                  ) -> VectorLines:
    """The polylines of a basemap data file (`rivers_f.dat`; the borders and coastlines of
    `countries_f.dat`, `gshhs_f.dat` have the same format) crossing `box` (lon0, lat0, lon1,
    lat1), clipped to it, in a local azimuthal equidistant projection centred on the box
    (metres), each `width_m` wide. InputError where none crosses it."""
    from pyproj import Transformer  # deferred: only the river sources (in degrees) need it

    meta_path = path.with_name(path.name.replace("_", "meta_", 1))  # rivers_f -> riversmeta_f
    data = np.fromfile(path, "<f4")
    lon0, lat0, lon1, lat1 = box
    clip = shapely.box(lon0, lat0, lon1, lat1)
    lines = []
    for row in meta_path.read_text().splitlines():
        fields = row.split()
        n, offset = int(fields[2]), int(fields[5]) // 4
        points = data[offset: offset + 2 * n].reshape(-1, 2).astype(np.float64)  # (n, lon/lat)
        if n < 2 or (points[:, 0].max() < lon0 or points[:, 0].min() > lon1
                      or points[:, 1].max() < lat0 or points[:, 1].min() > lat1):
            continue
        part = shapely.intersection(shapely.linestrings(points), clip)
        if not part.is_empty:
            lines.extend(shapely.get_parts(part))
    lines = [g for g in lines if g.geom_type == "LineString"]
    if not lines:
        raise InputError(f"{path}: no lines inside {box}")
    proj = (f"+proj=aeqd +lat_0={(lat0 + lat1) / 2} +lon_0={(lon0 + lon1) / 2} "
            "+datum=WGS84 +units=m +no_defs")
    to_metres = Transformer.from_crs("EPSG:4326", proj, always_xy=True)
    geoms = shapely.transform(np.array(lines, dtype=object),
                              lambda xy: np.column_stack(to_metres.transform(xy[:, 0], xy[:, 1])))
    return VectorLines(geometries=geoms, widths=np.full(len(geoms), width_m), crs=proj,
                       unit=METRE, meta={"rivers": {"box": list(box), "lines": len(geoms)}})


def _glyph_files(folder: pathlib.Path, source: Source) -> list[pathlib.Path]:
    every = sorted(folder.glob("*.svg"))
    if not source.options.get("all_files"):
        every = [p for p in every if hash_split(p.name) == source.split]
    first, count = source.glyphs
    chosen = every[first: first + count]
    if len(chosen) < count:
        raise InputError(f"{folder}: {len(chosen)} glyph files for {source.name}, need {count}")
    return chosen


def _glyph_sheets(folder: pathlib.Path, source: Source, width_units: float
                  ) -> Iterator[tuple[int, VectorLines]]:
    """(index, sheet) for the glyphs of `source`, `sheet x sheet` per sheet, each glyph in its
    own cell of the glyph's canvas size plus a margin of a tenth, y pointing down."""
    files = _glyph_files(folder, source)
    per = source.sheet * source.sheet
    for index in range(math.ceil(len(files) / per)):
        geoms, extent = [], None
        for k, path in enumerate(files[index * per:(index + 1) * per]):
            glyph = read_vector(path)
            x0, y0, x1, y1 = glyph.extent or tuple(shapely.total_bounds(glyph.geometries))
            step = 1.1 * max(x1 - x0, y1 - y0)
            extent = (0.0, 0.0, step * source.sheet, step * source.sheet)
            row, col = divmod(k, source.sheet)
            dx, dy = col * step + 0.05 * step - x0, row * step + 0.05 * step - y0
            geoms.extend(shapely.transform(glyph.geometries, lambda xy, dx=dx, dy=dy: xy + (dx, dy)))
        yield index, VectorLines(geometries=np.array(geoms, dtype=object),
                                 widths=np.full(len(geoms), width_units), crs=None,
                                 unit="user unit", extent=extent, y_down=True,
                                 meta={"glyphs": len(files)})


def source_lines(cache: pathlib.Path, source: Source, render: Render
                 ) -> Iterator[tuple[str, VectorLines, float]]:
    """(suffix, lines, pixel size) of each mask of one render of `source` (glyph sources give
    one per sheet)."""
    folder = _files_dir(cache, source)
    path = folder / source.path
    if source.reader == "vector":
        yield "", read_vector(path, **({"layer": source.layer} if source.layer else {})), \
            float(render.resolution)
    elif source.reader == "rivers":
        res = float(render.resolution)
        yield "", basemap_lines(path, source.box, render.width * res), res
    elif source.reader == "glyphs":
        step = 1.0 / float(render.px_per_unit)
        for index, sheet in _glyph_sheets(path, source, render.width * step):
            yield f"-{index:03d}", sheet, step
    elif source.reader == "linnet":
        step = 1.0 / float(render.px_per_unit)
        network = read_lazyload(path, source.layer or source.name)
        yield "", network_lines(network, render.width * step, source.name), step
    else:
        raise ConfigError(f"{source.name}: unknown reader {source.reader!r}")


def _rule(source: Source, render: Render) -> WidthRule:
    if source.reader == "vector":
        return WidthRule(width=render.width, class_attr=render.class_attr,
                         exclude=render.exclude, min_width_px=1.0)
    return WidthRule(min_width_px=1.0)  # rivers, glyphs and networks carry their widths


def render_mask(cache: pathlib.Path, source: Source, render: Render
                ) -> Iterator[tuple[str, np.ndarray, dict]]:
    """(name, mask, attrs) of each mask one render of `source` makes, in memory (real sources
    are at most a few tens of Mpx)."""
    pkg = package(source.package)
    for suffix, lines, pixel in source_lines(cache, source, render):
        burnt = rasterize_lines(lines, pixel, _rule(source, render), margin=8 * pixel,
                                source=f"{source.name} ({source.path})")
        mask = np.asarray(burnt.mask.compute(), dtype=bool)
        seams = 0
        if source.path.endswith((".net.xml", ".net.xml.gz")):
            mask, seams = close_seams(mask)
        attrs = {
            "source": source.name, "kind": source.kind, "split": source.split,
            "package": pkg.key, "package_version": pkg.version, "file": source.path,
            "layer": source.layer, "render": dataclasses.asdict(render),
            "pixel_size": pixel, "crs": lines.crs, "transform": list(burnt.grid.transform)[:6],
            "features": burnt.features, "seams_closed": seams, "licence": pkg.licence,
            "attribution": pkg.attribution,
        }
        if "network" in lines.meta:  # linnet: vertices, edges, length, tree or not
            attrs["network"] = lines.meta["network"]
        yield f"{source.name}-{render.name}{suffix}", mask, attrs


def close_seams(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """`mask` with its seams filled, and how many: holes at most 2 px wide everywhere (they
    vanish under a 3x3 opening). SUMO draws separate edges of one road (the two directions,
    bus lanes) side by side with slivers of 10 cm to 1 m between their outlines, which burn
    into pinholes and thin slits inside the road; real holes (blocks, roundabout islands,
    the space between carriageways) are wider and stay."""
    holes = ndi.binary_fill_holes(mask) & ~mask
    labels, n = ndi.label(holes)
    if n == 0:
        return mask, 0
    wide = np.unique(labels[ndi.binary_opening(holes, structure=np.ones((3, 3), bool))])
    thin = np.ones(n + 1, bool)
    thin[wide] = False
    thin[0] = False
    return mask | thin[labels], int(thin.sum())


# ---- evaluation crops ----------------------------------------------------------------------
def crops(shape: tuple[int, int], side: int) -> list[tuple[slice, slice]]:
    """Equal crops of at most `side` px covering `shape` (a grid of ceil(H/side) x ceil(W/side))."""
    ny, nx = (max(1, math.ceil(n / side)) for n in shape)
    ys = np.linspace(0, shape[0], ny + 1).round().astype(int)
    xs = np.linspace(0, shape[1], nx + 1).round().astype(int)
    return [(slice(ys[i], ys[i + 1]), slice(xs[j], xs[j + 1])) for i in range(ny) for j in range(nx)]


def _gap_rng(seed: int, level: str, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, _REAL_SALT, LEVELS.index(level), zlib.crc32(name.encode())])


def _gap_config(config: RealConfig, level: str) -> GapConfig:
    if level.endswith("-mix"):
        return GapConfig(kind="mix", density=config.mix_density)
    return GapConfig(kind="cut", density=config.cut_density)


# ---- the build -----------------------------------------------------------------------------
def _write_json(path: pathlib.Path | str, doc: dict) -> None:
    location.write_bytes(path, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())


def _levels_of(split: str) -> tuple[str, ...]:
    return () if split == "train" else (split, f"{split}-mix")


def build_real(cache: str | os.PathLike, out: str | os.PathLike, config: RealConfig | None = None,
               log: Callable[[str], None] = print,
               catalogue: Sequence[Source] = SOURCES) -> RealBenchset:
    """Write the real benchmark into the folder or fsspec URL `out` from the packages fetched
    into `cache` (the sources of `catalogue`, by default the whole catalogue)."""
    config = config or RealConfig()
    cache = pathlib.Path(cache).expanduser()
    if location.is_url(out):
        out = os.fspath(out).rstrip("/")
        location.exists(out)  # a missing bucket or a refused connection: one line, now
    else:
        out = pathlib.Path(out)
        out.mkdir(parents=True, exist_ok=True)
    stores: dict[str, dict[str, str]] = {}
    stats: dict[str, dict[str, dict]] = {}
    for split in config.splits:
        for kind in config.kinds:
            todo = [s for s in catalogue if s.split == split and s.kind == kind]
            if not todo:
                continue
            tic = time.perf_counter()
            levels = _levels_of(split) or ("train",)
            opened = {}
            for level in levels:
                rel = f"{level}/{kind}.zarr"
                stores.setdefault(level, {})[kind] = rel
                opened[level] = MaskStore.create(location.child(out, rel), exist_ok=True)
            counts = {level: 0 for level in levels}
            for source in todo:
                for render in source.renders:
                    if split not in render.splits:
                        continue
                    _write_render(cache, source, render, split, opened, config, counts)
            for level in levels:
                stats.setdefault(level, {})[kind] = {"samples": counts[level]}
            log(f"{split}/{kind}: " + ", ".join(f"{lv} {n}" for lv, n in counts.items())
                + f" sample(s) in {time.perf_counter() - tic:.0f} s")
    packages = sorted({s.package for s in catalogue if s.split in config.splits and s.kind in config.kinds})
    manifest = {
        "format": FORMAT, "version": VERSION, "config": dataclasses.asdict(config),
        "stores": stores, "sets": stats,
        "digests": {f"{lv}/{k}": location.tree_digest(location.child(out, rel))
                    for lv, ks in stores.items() for k, rel in ks.items()},
        "packages": {key: {"version": package(key).version, "licence": package(key).licence,
                           "attribution": package(key).attribution} for key in packages},
    }
    _write_json(location.child(out, "manifest.json"), manifest)  # last: the benchmark is complete
    return open_real(out)


def _write_render(cache: pathlib.Path, source: Source, render: Render, split: str,
                  opened: dict[str, MaskStore], config: RealConfig, counts: dict[str, int]) -> None:
    for name, mask, attrs in render_mask(cache, source, render):
        if split == "train":
            store = opened["train"]
            if name not in store:
                store.write(name, {"mask": mask}, attrs, chunks=config.chunks)
            counts["train"] += 1
            continue
        for k, (ys, xs) in enumerate(crops(mask.shape, config.crop)):
            truth = mask[ys, xs]
            if truth.mean() < config.min_foreground:
                continue
            crop_name = f"{name}-c{k:02d}"
            for level, store in opened.items():
                counts[level] += 1
                if crop_name in store:
                    continue
                gap_config = _gap_config(config, level)
                damaged, gaps = corrupt(truth, gap_config, _gap_rng(config.seed, level, crop_name))
                store.write(crop_name, {"mask": damaged, "gaps": gaps, "truth": truth},
                            {**attrs, "crop": [ys.start, ys.stop, xs.start, xs.stop],
                             "gap_config": dataclasses.asdict(gap_config), "gap_seed": config.seed,
                             "level": level}, chunks=config.chunks)


# ---- reading -------------------------------------------------------------------------------
@dataclass
class RealBenchset:
    """A built real benchmark (read-only); reads like `distpaint.data.benchset.Benchset`."""

    path: pathlib.Path | str
    """The folder (a URL on object storage)."""
    manifest: dict
    """The parsed manifest.json."""

    @property
    def digest(self) -> str:
        """One SHA-256 over the stores' digests: names the exact data results were taken on."""
        return hashlib.sha256(json.dumps(self.manifest["digests"], sort_keys=True).encode()).hexdigest()

    def levels(self) -> list[str]:
        """The evaluation levels present (val, test, val-mix, test-mix)."""
        return [level for level in LEVELS if level in self.manifest["stores"]]

    def kinds(self, level: str) -> list[str]:
        """Kinds of `level`, in the order of `KINDS`."""
        return [k for k in KINDS if k in self.manifest["stores"].get(level, {})]

    def store(self, level: str, kind: str) -> MaskStore:
        """The mask store of (level, kind), read-only; InputError if absent."""
        rel = self.manifest["stores"].get(level, {}).get(kind)
        if rel is None:
            raise InputError(f"{self.path}: no {level} set of kind {kind!r}")
        return MaskStore.open(location.child(self.path, rel))

    def train_store(self, kind: str) -> pathlib.Path | str:
        """Path (or URL) of the complete training masks of `kind`."""
        rel = self.manifest["stores"].get("train", {}).get(kind)
        if rel is None:
            raise InputError(f"{self.path}: no training masks of kind {kind!r}")
        return location.child(self.path, rel)


def open_real(path: str | os.PathLike) -> RealBenchset:
    """Open a folder (or URL) written by `build_real`; InputError if it is not one."""
    path = os.fspath(path).rstrip("/") if location.is_url(path) else pathlib.Path(path)
    try:
        manifest = json.loads(location.read_bytes(location.child(path, "manifest.json")))
    except FileNotFoundError:
        if isinstance(path, str):
            location.exists(path)  # a missing bucket says so
        raise InputError(f"{path}: not a real benchmark (no manifest.json); build one with "
                         "`distpaint realdata build`") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}/manifest.json: unreadable: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"{path}/manifest.json: not a distpaint real benchmark manifest")
    if manifest.get("version") != VERSION:
        raise InputError(f"{path}: real benchmark version {manifest.get('version')!r}; this "
                         f"distpaint reads version {VERSION}: rebuild it")
    return RealBenchset(path, manifest)


def split_names(bench: RealBenchset, levels: Sequence[str]) -> dict[str, list[str]]:
    """{level/kind: sample names} of `levels` (a summary for reports)."""
    return {f"{lv}/{k}": bench.store(lv, k).names() for lv in levels for k in bench.kinds(lv)}
