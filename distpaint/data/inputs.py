"""Where mask INPUT arguments come from: files, folders, globs and mask stores, expanded.

`distpaint infer`, `distpaint baseline` and `distpaint ingest` all take INPUT arguments the
same way: files (PNG, TIFF, GeoTIFF, NPY, a Zarr array or distpaint sample), distpaint mask
stores (one mask per sample), directories (every mask file below them, recursively, hidden
files and folders skipped, not descending into Zarr directories) and globs
(`'masks/**/*.png'`, expanded here when the shell did not). A store whose metadata is broken
is refused naming its zarr.json. A URL (`s3://bucket/archive.zarr`, any fsspec scheme) names
a mask store on object storage (`distpaint.data.location`); its masks keep the URL as `path`.

    for found in expand_inputs(["masks/", "roads.tif", "archive.zarr"]):
        print(found.path, found.sample, found.rel)
"""

from __future__ import annotations

import glob
import os
import pathlib
from dataclasses import dataclass

from distpaint.data import location
from distpaint.data.files import FORMATS, broken_zarr_metadata
from distpaint.data.store import MaskStore
from distpaint.errors import InputError

__all__ = ["InputMask", "expand_inputs"]

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class InputMask:
    """One mask found among the INPUT arguments."""

    path: pathlib.Path | str
    """The file, or the store of a sample (absolute); a URL string for a store on object
    storage."""
    sample: str | None
    """Sample name within the store `path`; None for a file."""
    rel: pathlib.PurePath
    """Name under the output folder: relative to the directory it was found in, else the
    file name (or the store's name, for samples)."""


def _is_store(path: pathlib.Path) -> bool:
    if not (path / "zarr.json").is_file():
        return False
    try:
        MaskStore.open(path)
    except InputError:
        return False
    return True


def _is_mask_file(path: pathlib.Path) -> bool:
    return path.suffix.lower() in FORMATS and not path.name.startswith(".")


def _walk(root: pathlib.Path) -> list[pathlib.Path]:
    """Mask files and Zarr nodes below `root` (not descending into Zarr directories)."""
    found: list[pathlib.Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = pathlib.Path(dirpath)
        keep = []
        for name in sorted(dirnames):
            if name.startswith("."):
                continue
            child = here / name
            if name.lower().endswith(".zarr") or (child / "zarr.json").is_file():
                found.append(child)
            else:
                keep.append(name)
        dirnames[:] = keep
        found += [here / f for f in sorted(filenames) if _is_mask_file(here / f)]
    return sorted(found)


def _expand_store(path: pathlib.Path, rel: pathlib.PurePath) -> list[InputMask]:
    store = MaskStore.open(path)
    broken = broken_zarr_metadata(path)  # a sample's or layer's zarr.json: name the file
    if broken is not None:
        raise broken
    names = store.names()
    if not names:
        raise InputError(f"{path}: mask store with no samples")
    return [InputMask(path, name, rel) for name in names]


def _expand_url(url: str) -> list[InputMask]:
    """A store on object storage (no patterns, folders or single files there yet)."""
    url = url.rstrip("/")
    store = MaskStore.open(url)  # InputError naming the URL: bucket, key or scheme
    names = store.names()
    if not names:
        raise InputError(f"{url}: mask store with no samples")
    rel = pathlib.PurePath(url.rsplit("/", 1)[-1])
    return [InputMask(url, name, rel) for name in names]


def _expand_one(raw: str) -> list[InputMask]:
    if location.is_url(raw):
        return _expand_url(raw)
    path = pathlib.Path(raw)
    if not path.exists() and _GLOB_CHARS & set(raw):
        matches = sorted(glob.glob(raw, recursive=True))
        if not matches:
            raise InputError(f"{raw}: no file matches this pattern")
        out: list[InputMask] = []
        for match in matches:
            out += _expand_path(pathlib.Path(match).absolute(), None)
        return out
    if not path.exists():
        raise InputError(f"{raw}: no such file or directory")
    return _expand_path(path.absolute(), None)


def _expand_path(path: pathlib.Path, root: pathlib.Path | None) -> list[InputMask]:
    rel = pathlib.PurePath(path.relative_to(root) if root else path.name)
    if path.is_dir() and _is_store(path):
        return _expand_store(path, rel)
    if path.is_dir() and not (path.suffix.lower() == ".zarr" or (path / "zarr.json").is_file()):
        if root is not None:
            return []
        files = _walk(path)
        if not files:
            raise InputError(
                f"{path}: no mask files in this directory (looked for "
                f"{', '.join(sorted(FORMATS))})"
            )
        out: list[InputMask] = []
        for file in files:
            out += _expand_path(file, path)
        return out
    return [InputMask(path, None, rel)]


def expand_inputs(inputs: list[str | os.PathLike]) -> list[InputMask]:
    """The masks named by the INPUT arguments, in order. InputError for a path that does not
    exist, a pattern matching nothing, a directory without masks, a store without samples."""
    if not inputs:
        raise InputError("no INPUT given: name mask files, directories, stores or globs")
    sources: list[InputMask] = []
    for raw in inputs:
        sources += _expand_one(os.fspath(raw))
    return sources
