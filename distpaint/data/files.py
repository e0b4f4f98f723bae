"""Reading and writing single mask files: PNG, TIFF, GeoTIFF, NPY and Zarr.

`read_mask_file` opens a file read-only, checks it is a usable binary mask and returns it as a
lazy bool Dask array plus metadata (format, source dtype and foreground value, and for a
GeoTIFF its CRS as WKT and its affine transform). `write_mask_file` writes a mask back in the
format its suffix names, georeferenced from that metadata, atomically (temporary file in the
same folder, then `os.replace`). Large TIFF, GeoTIFF, NPY and Zarr files are read window by
window and written block by block; PNG has no windows and is read and written whole.

Binarisation: a mask whose values are exactly {0, v} (or bool) is used as is (foreground =
non-zero). Anything else needs a threshold (foreground = value > threshold); without one the
error lists the values found. An empty (0-byte, zero-size or all-background) or unreadable
file is an InputError naming the file, and so is a float file with NaN or infinite values
(with their count), a truncated TIFF, a Zarr node with broken metadata (naming the broken
zarr.json) and a PNG larger than `max_image_pixels()` (2**34 pixels; PNG is decoded whole,
so this bounds a "decompression bomb"; set DISTPAINT_MAX_IMAGE_PIXELS to raise it). Writing
to a folder that is not writable is an InputError too (`check_writable` checks before any
work starts).

Usage::

    from distpaint.data.files import read_mask_file, write_mask_file
    mask, meta = read_mask_file("roads.tif", threshold=None)   # dask bool (H, W), dict
    write_mask_file("roads_repaired.tif", repaired, meta)        # same CRS and transform
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pathlib
import shutil
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr
from zarr.storage import LocalStore

from distpaint.data import location
from distpaint.data.integrity import CheckedArray
from distpaint.data.store import FORMAT_ATTR, compressors, jsonable, layout, stream_to_zarr
from distpaint.data.zarr_meta import broken_zarr_metadata  # re-exported (was defined here)
from distpaint.errors import ConfigError, InputError

# Each format's library (Pillow and imageio for PNG, tifffile for TIFF, rasterio and affine
# for GeoTIFF) is imported by the functions that read or write that format: importing this
# module (as infer, ingest and evaluate do) loads none of them, and a job on PNGs never loads
# tifffile or rasterio.

__all__ = [
    "FORMATS",
    "READ_CHUNKS",
    "MAX_IMAGE_PIXELS_ENV",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "max_image_pixels",
    "check_writable",
    "broken_zarr_metadata",
    "mask_format",
    "read_mask_file",
    "read_raw",
    "binarise",
    "write_mask_file",
]

FORMATS = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".npy": "npy", ".zarr": "zarr"}
"""File suffix -> format name. GeoTIFF is a TIFF whose tags carry georeferencing."""
READ_CHUNKS = 1024
"""Side of the windows that large files are read in."""
_MAX_VALUES_SHOWN = 8
_WRITE_TILE = 512  # TIFF tile side (a multiple of 16, as TIFF requires)


def mask_format(path: str | os.PathLike) -> str:
    """The format name of `path` from its suffix; InputError for an unsupported suffix."""
    path = pathlib.Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS and any(p.suffix.lower() == ".zarr" for p in path.parents):
        return "zarr"  # a node inside a Zarr hierarchy, e.g. STORE.zarr/SAMPLE
    if suffix not in FORMATS:
        raise InputError(
            f"{path}: unsupported file type {suffix or '(no suffix)'!r}; "
            f"use one of {', '.join(sorted(FORMATS))}"
        )
    return FORMATS[suffix]


# ---- reading ---------------------------------------------------------------------------------
def read_mask_file(
    path: str | os.PathLike, threshold: float | None = None
) -> tuple[da.Array, dict]:
    """Open mask file `path` read-only and return `(mask, meta)`.

    mask: lazy bool Dask array (H, W), True = foreground; nothing is read beyond one pass
        over the values (to check the mask is binary and not empty).
    meta: {"format", "source", "source_dtype", "shape", "foreground" (pixel count),
        "foreground_value" (v of a {0, v} mask, else None), "threshold"} plus "crs" (WKT) and
        "transform" (6 affine numbers a, b, c, d, e, f as in rasterio) for a GeoTIFF, and the
        georeferencing and "padded_from" carried over from a distpaint store sample.
    Raises InputError naming the file for anything unusable.
    """
    path = os.fspath(path).rstrip("/") if location.is_url(path) else pathlib.Path(path)
    raw, meta = read_raw(path)
    mask, stats = binarise(raw, threshold, path)
    meta.update(stats)
    meta.update(source=str(path), shape=list(mask.shape), threshold=threshold)
    return mask, meta


def read_raw(path: str | os.PathLike) -> tuple[da.Array, dict]:
    """The raw 2-D values of `path` as a lazy Dask array, and format metadata. `path` may be
    the URL of a Zarr node on object storage (a store's sample: `s3://bucket/x.zarr/NAME`)."""
    if location.is_url(path):
        url = os.fspath(path).rstrip("/")
        if mask_format(url.split("://", 1)[1]) != "zarr":
            raise InputError(f"{url}: only Zarr nodes (mask stores and their samples) are read "
                             "from object storage; copy the file here first")
        if not location.is_file(location.join(url, "zarr.json")):
            location.exists(url)  # a missing bucket says so
            raise InputError(f"{url}: no Zarr node there")
        raw, meta = _read_zarr(url)
        return _to_2d(raw, url), {"format": "zarr", **meta}
    path = pathlib.Path(path)
    fmt = mask_format(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if fmt == "zarr" and not path.is_dir():
        raise InputError(f"{path}: not a Zarr directory")
    if fmt != "zarr" and not path.is_file():
        raise InputError(f"{path}: not a file")
    if fmt != "zarr" and path.stat().st_size == 0:
        raise InputError(f"{path}: empty file (0 bytes)")
    reader = {"png": _read_png, "tiff": _read_tiff, "npy": _read_npy, "zarr": _read_zarr}[fmt]
    try:
        raw, meta = reader(path)
    except OSError as exc:  # permissions, I/O errors: the user's file, not a bug
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    raw = _to_2d(raw, path)
    if raw.size == 0:
        raise InputError(f"{path}: empty image (shape {tuple(raw.shape)})")
    return raw, {"format": fmt, **meta}


def _unreadable(path: pathlib.Path, fmt: str, exc: BaseException) -> InputError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return InputError(f"{path}: cannot read as {fmt}: {detail}")


class _Guarded:
    """Array-like view of a lazily decoded source whose pixel reads turn any decoding failure
    into an InputError naming the file: a corrupt tile is found only when Dask reads it, deep
    inside a compute, and must not surface as a zlib or codec traceback."""

    def __init__(self, array: Any, path: pathlib.Path, fmt: str) -> None:
        self.array, self.path, self.fmt = array, path, fmt
        self.shape, self.dtype, self.ndim = tuple(array.shape), np.dtype(array.dtype), array.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return np.asarray(self.array[key])
        except InputError:
            raise
        except Exception as exc:
            raise _unreadable(self.path, self.fmt, exc) from None


def _guarded(array: Any, path: pathlib.Path, fmt: str, chunks: Any) -> da.Array:
    """`da.from_array` of `_Guarded(array)` (no lock: every reader here is thread-safe)."""
    view = _Guarded(array, path, fmt)
    return da.from_array(view, chunks=chunks, lock=False, meta=np.empty((0,) * view.ndim, view.dtype))


MAX_IMAGE_PIXELS_ENV = "DISTPAINT_MAX_IMAGE_PIXELS"
"""Environment variable raising (or lowering) the largest PNG read, in pixels."""
DEFAULT_MAX_IMAGE_PIXELS = 2**34
"""Largest PNG read by default: 17.2 G pixels (131072 x 131072), 16 GiB of 8-bit pixels.
PNG has no windows, so a PNG is decoded whole into memory: this bounds what a small
malicious or broken file ("decompression bomb") can make distpaint allocate."""


def max_image_pixels() -> int:
    """The PNG size limit in pixels: `DISTPAINT_MAX_IMAGE_PIXELS` if set, else
    `DEFAULT_MAX_IMAGE_PIXELS`; ConfigError for a value that is not a positive integer."""
    raw = os.environ.get(MAX_IMAGE_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{MAX_IMAGE_PIXELS_ENV}={raw!r}: must be a positive whole number of "
                          "pixels (e.g. 34359738368)")
    return value


def _too_large(path: pathlib.Path, pixels: int | None, limit: int, detail: str = "") -> InputError:
    size = f"{pixels:,} pixels{detail}" if pixels is not None else "its size"
    return InputError(
        f"{path}: {size} exceeds the limit of {limit:,} pixels for a PNG (decoded whole into "
        f"memory; a guard against decompression bombs); if the file is trusted, raise it with "
        f"{MAX_IMAGE_PIXELS_ENV}=N"
    )


@contextlib.contextmanager
def _pixel_limit(path: pathlib.Path, limit: int) -> Iterator[None]:
    """Pillow's decompression-bomb guard at `limit` pixels (not its default 89 M, too small
    for masks; never off), its warning made an error, both as an InputError naming `path`."""
    from PIL import Image  # deferred: see the note at the imports

    old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_large(path, None, limit) from None
    finally:
        Image.MAX_IMAGE_PIXELS = old


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path: pathlib.Path) -> tuple[int, int] | None:
    """(width, height) from the PNG's IHDR chunk, or None if the header is not there; raises
    InputError for a file without the PNG signature."""
    with open(path, "rb") as fh:
        head = fh.read(len(_PNG_SIGNATURE) + 16)
    if head[: len(_PNG_SIGNATURE)] != _PNG_SIGNATURE:
        raise InputError(f"{path}: not a PNG file (no PNG signature)")
    if len(head) < len(_PNG_SIGNATURE) + 16 or head[12:16] != b"IHDR":
        return None  # truncated or broken: the decoder says what is wrong
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _read_png(path: pathlib.Path) -> tuple[da.Array, dict]:
    import imageio.v3 as iio  # deferred: see the note at the imports

    limit = max_image_pixels()
    size = _png_size(path)
    if size is not None and size[0] * size[1] > limit:
        raise _too_large(path, size[0] * size[1], limit, f" ({size[1]}x{size[0]})")
    try:
        with _pixel_limit(path, limit):
            data = iio.imread(path, extension=".png")
    except InputError:
        raise
    except Exception as exc:  # Pillow raises many types for a corrupt file
        raise _unreadable(path, "PNG", exc) from None
    return da.from_array(data, chunks=READ_CHUNKS), {}


@contextlib.contextmanager
def _quiet_tifffile() -> Iterator[None]:
    """tifffile logs what is wrong with a broken file (to stderr) before raising; the error we
    raise says it in one line, so its log records are dropped while probing."""
    logger = logging.getLogger("tifffile")
    old, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = old


def _read_tiff(path: pathlib.Path) -> tuple[da.Array, dict]:
    import tifffile  # deferred: see the note at the imports

    try:
        with _quiet_tifffile(), tifffile.TiffFile(path) as tif:
            geo = tif.is_geotiff
            if not tif.series:
                raise ValueError("no image in the file")
            end = _tiff_data_end(tif)
    except Exception as exc:
        raise _unreadable(path, "TIFF", exc) from None
    size = path.stat().st_size
    if end > size:
        raise InputError(f"{path}: truncated TIFF: the file has {size:,} bytes, its image data "
                         f"runs to byte {end:,}")
    return _read_geotiff(path) if geo else _read_plain_tiff(path)


def _tiff_data_end(tif: Any) -> int:
    """The byte where the image data of the first series ends (its first pages: a mask has
    one), from the strip/tile offsets and byte counts: beyond the file's size, it is cut."""
    end = 0
    for page in list(tif.series[0].pages)[:16]:
        if page is None:
            continue
        offsets, counts = page.dataoffsets, page.databytecounts
        end = max([end] + [o + c for o, c in zip(offsets, counts, strict=False) if c])
    return end


def _read_plain_tiff(path: pathlib.Path) -> tuple[da.Array, dict]:
    import tifffile  # deferred: see the note at the imports

    try:  # uncompressed, contiguous data maps straight from disk
        data = tifffile.memmap(path, mode="r")
        return da.from_array(data, chunks=_tiff_chunks(data.shape)), {}
    except ValueError:
        pass
    try:  # compressed: tifffile decodes tiles/strips on demand through a Zarr view
        node = zarr.open(tifffile.imread(path, aszarr=True), mode="r", zarr_format=2)
        if isinstance(node, zarr.Group):  # pyramid: level 0 is the full resolution
            node = node["0"]
    except Exception as exc:
        raise _unreadable(path, "TIFF", exc) from None
    return _guarded(node, path, "TIFF", _tiff_chunks(node.shape)), {}


def _tiff_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (READ_CHUNKS, READ_CHUNKS) + tuple(shape[2:]) if len(shape) >= 2 else shape


class _RasterWindows:
    """Array-like view of band 1 of a raster: each slice opens the file and reads a window,
    so Dask threads never share a GDAL dataset (which is not thread-safe)."""

    def __init__(self, path: pathlib.Path, shape: tuple[int, int], dtype: np.dtype) -> None:
        self.path, self.shape, self.dtype, self.ndim = path, shape, dtype, 2

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        import rasterio  # deferred: see the note at the imports
        from rasterio.windows import Window  # deferred: see the note at the imports

        (y0, y1, _), (x0, x1, _) = (k.indices(n) for k, n in zip(key, self.shape, strict=True))
        with rasterio.open(self.path) as ds:
            return ds.read(1, window=Window(x0, y0, x1 - x0, y1 - y0))


def _read_geotiff(path: pathlib.Path) -> tuple[da.Array, dict]:
    import rasterio  # deferred: see the note at the imports

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                if ds.count != 1:
                    raise InputError(f"{path}: GeoTIFF has {ds.count} bands; a mask has one")
                shape, dtype = (ds.height, ds.width), np.dtype(ds.dtypes[0])
                meta = {
                    "crs": ds.crs.to_wkt() if ds.crs is not None else None,
                    "transform": list(ds.transform)[:6],
                }
    except InputError:
        raise
    except Exception as exc:
        raise _unreadable(path, "GeoTIFF", exc) from None
    return _guarded(_RasterWindows(path, shape, dtype), path, "GeoTIFF", READ_CHUNKS), meta


def _read_npy(path: pathlib.Path) -> tuple[da.Array, dict]:
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise _unreadable(path, "NPY", exc) from None
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "biuf":
        raise InputError(f"{path}: NPY holds {getattr(data, 'dtype', type(data))}, not numbers")
    return da.from_array(data, chunks=_tiff_chunks(data.shape)), {}


def _read_zarr(path: pathlib.Path) -> tuple[da.Array, dict]:
    """A Zarr array, a distpaint sample (its `mask`), a distpaint store with one sample, or
    a group holding exactly one array."""

    remote = isinstance(path, str)  # a URL (read_raw)
    try:
        store = location.zarr_store(path, read_only=True) if remote else LocalStore(path, read_only=True)
        node = zarr.open(store, mode="r")
        carried: dict = {}
        if isinstance(node, zarr.Group):
            node, carried = _zarr_group_array(path, node)
        chunks = node.chunks
        # a shard recorded but missing, or a corrupt one, named by its file (integrity.py)
        where = location.child(path, node.path) if node.path else path
        name = os.fspath(where).rstrip("/").split("/")[-2 if node.path else -1]
        node = CheckedArray(node, os.fspath(where), name)
        node.check_missing()
    except InputError:
        raise
    except Exception as exc:  # broken metadata: name the file that is broken
        broken = None if remote else broken_zarr_metadata(path)
        raise broken or _unreadable(path, "Zarr", exc) from None
    return _guarded(node, path, "Zarr", chunks), carried


def _zarr_group_array(path: pathlib.Path, group: Any) -> tuple[Any, dict]:
    keep = ("crs", "transform", "padded_from")
    if FORMAT_ATTR in group.attrs:  # a whole distpaint store: only unambiguous if one sample
        samples = sorted(k for k in group.group_keys() if not k.startswith("."))
        if len(samples) != 1:
            raise InputError(
                f"{path}: a mask store with {len(samples)} samples; name one as {path}/NAME "
                f"(samples: {', '.join(samples[:8]) or 'none'})"
            )
        group = group[samples[0]]
    arrays = sorted(group.array_keys())
    if "mask" in arrays:  # a distpaint sample
        attrs = dict(group.attrs)
        return group["mask"], {k: attrs[k] for k in keep if k in attrs}
    if len(arrays) != 1:
        raise InputError(
            f"{path}: Zarr group with {len(arrays)} arrays ({', '.join(arrays[:8])}); "
            "point at one array"
        )
    return group[arrays[0]], {}


def _to_2d(raw: da.Array, path: pathlib.Path) -> da.Array:
    """Drop singleton axes; a grey image stored as identical RGB(A) channels is fine, a colour
    image is not."""
    while raw.ndim > 2 and raw.shape[0] == 1:
        raw = raw[0]
    if raw.ndim == 3 and raw.shape[-1] in (2, 3, 4):
        colour = raw[..., : 3 if raw.shape[-1] >= 3 else 1]  # drop alpha
        if colour.shape[-1] > 1 and not bool((colour == colour[..., :1]).all().compute()):
            raise InputError(
                f"{path}: a colour image (channels differ); save the mask as one grey channel"
            )
        raw = raw[..., 0]
    if raw.ndim != 2:
        raise InputError(f"{path}: expected a 2-D mask, got an array of shape {raw.shape}")
    return raw


# ---- binarisation ----------------------------------------------------------------------------
def _block_stats(block: np.ndarray, threshold: float | None) -> tuple[np.ndarray, int, int]:
    """(up to _MAX_VALUES_SHOWN + 1 smallest distinct finite values, foreground count, count
    of NaN and infinite values) of a block."""
    if block.dtype == bool or block.dtype == np.uint8:
        counts = np.bincount(block.view(np.uint8).ravel(), minlength=2)
        values = np.flatnonzero(counts).astype(block.dtype)
        return values[: _MAX_VALUES_SHOWN + 1], _foreground(block, threshold), 0
    nonfinite = 0
    if block.dtype.kind == "f":
        finite = np.isfinite(block)
        nonfinite = int(block.size - np.count_nonzero(finite))
        if nonfinite:
            block = block[finite]
    values = np.unique(block)
    return values[: _MAX_VALUES_SHOWN + 1], _foreground(block, threshold), nonfinite


def _foreground(block: np.ndarray, threshold: float | None) -> int:
    return int(np.count_nonzero(block > threshold if threshold is not None else block != 0))


def _value_stats(raw: da.Array, threshold: float | None) -> tuple[np.ndarray, int, int]:
    """Distinct finite values (at most _MAX_VALUES_SHOWN + 1), foreground count and count of
    NaN/inf values, one pass over `raw` block by block; a block's values are dropped as soon
    as its stats are taken."""
    parts = [dask.delayed(_block_stats)(b, threshold) for b in raw.to_delayed().ravel()]
    results = dask.compute(*parts)
    values = np.unique(np.concatenate([v for v, _, _ in results]))
    return (values[: _MAX_VALUES_SHOWN + 1], sum(n for _, n, _ in results),
            sum(k for _, _, k in results))


def _format_values(values: np.ndarray) -> str:
    shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values.tolist()[:8])
    return shown + (", ..." if len(values) > _MAX_VALUES_SHOWN else "")


def binarise(
    raw: da.Array, threshold: float | None, path: str | os.PathLike
) -> tuple[da.Array, dict]:
    """A bool mask from `raw` values and its stats, or InputError naming `path`.

    Without `threshold` the values must be {0, v} or {v} (bool, 0/1, 0/255, ...): foreground
    is non-zero. With it, foreground is value > threshold. Either way at least one pixel must
    be foreground. NaN or infinite values are refused either way (with a threshold they would
    silently become background or foreground).
    """
    values, foreground, nonfinite = _value_stats(raw, threshold)
    if nonfinite:
        raise InputError(
            f"{path}: {nonfinite:,} NaN/inf value{'s' * (nonfinite != 1)} among "
            f"{raw.size:,} pixels of {raw.dtype}; a mask needs finite values (replace them, "
            "e.g. with numpy.nan_to_num, and save the file again)"
        )
    shown = _format_values(values)
    if threshold is None:
        binary = len(values) == 1 or (len(values) == 2 and values[0] == 0)
        if not binary:
            raise InputError(
                f"{path}: not a binary mask, values found: {shown}; pass a threshold "
                "(--threshold T) to make foreground = value > T"
            )
        if foreground == 0:
            raise InputError(f"{path}: empty mask (every pixel is 0); nothing to ingest")
        mask = raw if raw.dtype == bool else raw != 0
        fg_value = values[-1].item()
    else:
        if foreground == 0:
            raise InputError(
                f"{path}: no pixel above threshold {threshold:g} (values found: {shown})"
            )
        mask, fg_value = raw > threshold, None
    stats = {
        "source_dtype": str(raw.dtype),
        "foreground": int(foreground),
        "foreground_value": fg_value,
    }
    return mask, stats


# ---- writing ---------------------------------------------------------------------------------
def write_mask_file(path: str | os.PathLike, array: Any, meta: dict | None = None) -> None:
    """Write the 2-D mask `array` (NumPy, Dask or Zarr; non-zero = foreground) to `path` in
    the format its suffix names, atomically.

    `meta` (as returned by `read_mask_file`) shapes the output: with "crs"/"transform" a
    .tif/.tiff is a GeoTIFF with that georeferencing; "source_dtype" and "foreground_value"
    (from a {0, v} source) give the pixel type and foreground value, otherwise PNG/TIFF get
    uint8 0/255 and NPY gets bool; with "padded_from" a larger array is cropped back to the
    original shape. TIFF, GeoTIFF, NPY and Zarr are written block by block.
    """
    path = pathlib.Path(path)
    fmt, meta = mask_format(path), dict(meta or {})
    mask = _mask_for_output(array, meta, path)
    dtype, fg = _output_values(fmt, meta)
    if fmt == "tiff" and (meta.get("crs") or meta.get("transform")):
        fmt = "geotiff"
    writer = {
        "png": _write_png, "tiff": _write_tiff, "geotiff": _write_geotiff,
        "npy": _write_npy, "zarr": _write_zarr,
    }[fmt]
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        writer(tmp, mask, dtype, fg, meta)
        _replace(tmp, path)
    except OSError as exc:  # read-only folder, disk full: the user's to fix, not a bug
        _remove(tmp)
        if isinstance(exc, FileNotFoundError) and path.parent.is_dir():
            raise  # a file vanished under us: not a permissions problem
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        _remove(tmp)
        raise


def check_writable(path: str | os.PathLike, what: str = "output") -> None:
    """InputError unless `path` can be written: an existing folder must be writable, a path
    that does not exist yet needs its nearest existing ancestor to be a writable folder (where
    it will be created). Call it before any work starts, so that a read-only destination
    fails at once and leaves nothing behind. A URL (object storage) is checked by reaching its
    bucket: a missing bucket or a refused connection is the InputError then."""
    if location.is_url(path):
        location.exists(os.fspath(path))
        return
    path = pathlib.Path(path).absolute()
    target = path
    while not target.exists() and target != target.parent:
        target = target.parent
    if target.exists() and not target.is_dir():
        if target != path:
            raise InputError(f"{path}: cannot create the {what}: {target} is a file, not a folder")
        target = target.parent  # an existing file is replaced by a rename in its folder
    if not os.access(target, os.W_OK | os.X_OK):
        folder = "the folder is" if target == path else f"the folder {target} is"
        raise InputError(f"{path}: cannot write the {what}: {folder} not writable "
                         "(permission denied)")


def _replace(tmp: pathlib.Path, path: pathlib.Path) -> None:
    """os.replace, also over an existing directory (a Zarr output): move the old one aside
    first so that `path` is always either the old or the new output."""
    if not path.is_dir():
        os.replace(tmp, path)
        return
    old = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.old")
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    _remove(old)


def _remove(path: pathlib.Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def _mask_for_output(array: Any, meta: dict, path: pathlib.Path) -> da.Array:
    mask = array if isinstance(array, da.Array) else da.from_array(array, chunks=READ_CHUNKS)
    if mask.ndim != 2 or mask.size == 0:
        raise InputError(f"{path}: can only write a non-empty 2-D mask, got shape {mask.shape}")
    if meta.get("padded_from"):
        h, w = (int(n) for n in meta["padded_from"])
        mask = mask[:h, :w]
    return mask if mask.dtype == bool else mask != 0


def _output_values(fmt: str, meta: dict) -> tuple[np.dtype, Any]:
    """Pixel dtype and foreground value: the source's if it was a {0, v} mask."""
    src, fg = meta.get("source_dtype"), meta.get("foreground_value")
    if src is not None and fg is not None:
        dtype = np.dtype(src)
        if fmt == "png" and dtype.kind not in "bu":  # PNG holds only unsigned integers
            return np.dtype(np.uint8), 255
        return dtype, (True if dtype == bool else fg)
    return (np.dtype(bool), True) if fmt in ("npy", "zarr") else (np.dtype(np.uint8), 255)


def _values(block: np.ndarray, dtype: np.dtype, fg: Any) -> np.ndarray:
    out = np.zeros(block.shape, dtype)
    out[block] = fg
    return out


def _row_bands(mask: da.Array, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(y0, computed rows y0:y0+rows) bands of `mask`: bounded memory for any height."""
    for y0 in range(0, mask.shape[0], rows):
        yield y0, np.asarray(mask[y0 : y0 + rows].compute())


def _write_png(tmp: pathlib.Path, mask: da.Array, dtype, fg, meta) -> None:
    import imageio.v3 as iio  # deferred: see the note at the imports

    data = _values(np.asarray(mask.compute()), dtype, fg)
    if data.dtype == bool:  # Pillow's 1-bit mode; 0/255 is the portable choice
        data = data.astype(np.uint8) * 255
    # encoded in memory, then written: imageio writing a file on a full disk fails its close,
    # and its plugin's __del__ closes again, printing a traceback
    tmp.write_bytes(iio.imwrite("<bytes>", data, extension=".png"))


def _tiles(mask: da.Array, dtype, fg, tile: int) -> Iterator[np.ndarray]:
    """Full-size tiles in row-major order, edge tiles padded with background (TIFF's rule)."""
    for _, band in _row_bands(mask, tile):
        band = _values(band, dtype, fg)
        for x0 in range(0, band.shape[1], tile):
            out = np.zeros((tile, tile), dtype)
            part = band[:, x0 : x0 + tile]
            out[: part.shape[0], : part.shape[1]] = part
            yield out


def _write_tiff(tmp: pathlib.Path, mask: da.Array, dtype, fg, meta) -> None:
    import tifffile  # deferred: see the note at the imports

    tifffile.imwrite(
        tmp, _tiles(mask, dtype, fg, _WRITE_TILE), shape=mask.shape, dtype=dtype,
        tile=(_WRITE_TILE, _WRITE_TILE), compression="zlib", bigtiff=mask.size > 2**31,
    )


def _write_geotiff(tmp: pathlib.Path, mask: da.Array, dtype, fg, meta) -> None:
    import rasterio  # deferred: see the note at the imports
    from affine import Affine  # deferred: see the note at the imports
    from rasterio.crs import CRS  # deferred: see the note at the imports
    from rasterio.windows import Window  # deferred: see the note at the imports

    if dtype == bool:  # GDAL has no bool type
        dtype, fg = np.dtype(np.uint8), 255
    h, w = mask.shape
    profile = {
        "driver": "GTiff", "height": h, "width": w, "count": 1, "dtype": dtype.name,
        "crs": CRS.from_wkt(meta["crs"]) if meta.get("crs") else None,
        "transform": Affine(*meta["transform"]) if meta.get("transform") else None,
        "tiled": True, "blockxsize": _WRITE_TILE, "blockysize": _WRITE_TILE,
        "compress": "deflate", "BIGTIFF": "IF_SAFER",
    }
    with rasterio.open(tmp, "w", **profile) as ds:
        for y0, band in _row_bands(mask, _WRITE_TILE):
            ds.write(_values(band, dtype, fg), 1, window=Window(0, y0, w, band.shape[0]))


def _write_npy(tmp: pathlib.Path, mask: da.Array, dtype, fg, meta) -> None:
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=mask.shape)
    for y0, band in _row_bands(mask, READ_CHUNKS):
        out[y0 : y0 + band.shape[0]] = _values(band, dtype, fg)
    out.flush()
    del out


def _write_zarr(tmp: pathlib.Path, mask: da.Array, dtype, fg, meta) -> None:
    """A single Zarr v3 bool array with the metadata as attributes."""

    chunk, shard = layout(mask.shape)
    target = zarr.create_array(
        LocalStore(tmp), shape=mask.shape, chunks=chunk, shards=shard, dtype=bool,
        fill_value=False, compressors=compressors(), attributes=jsonable(meta), zarr_format=3,
    )
    stream_to_zarr({"mask": mask}, {"mask": target})
