"""The mask store: a Zarr v3 group on disk or on object storage holding binary masks, read
lazily with Dask.

Layout (see docs/ARCHITECTURE.md)::

    STORE/                      Zarr v3 group, attrs {"distpaint_store": 1}
      <sample>/                 one sub-group per sample, attrs = provenance
        mask                    2-D bool array, chunked (1024x1024), sharded, Blosc zstd
        gaps, truth             optional layers of the same shape

Writing a sample is atomic: the sub-group is written under a hidden temporary name
(`.tmp-<name>-<hex>`) and renamed into place only when every layer is complete, so a failure
leaves nothing half-written. Inputs (NumPy, Dask or Zarr arrays) are written one shard-aligned
block at a time, so memory stays constant however large the mask.

A store may also be an fsspec URL (`s3://bucket/masks.zarr`; `distpaint.data.location`): the
same layout through zarr's FsspecStore, whole-shard writes only. Object stores cannot rename,
so there the finished temporary group is copied into place server side, its zarr.json last
(`location.publish`): readers find a sample by its zarr.json and so still never see a partial
one. Replacing a sample there removes the old one first: a reader may briefly find it missing.

Usage::

    from distpaint.data.store import MaskStore
    store = MaskStore.create("masks.zarr", exist_ok=True)
    store.write("roads", {"mask": dask_or_numpy_bool_array}, {"source": "roads.tif"})
    store.array("roads")[0:256, 0:256]     # fast patch slicing (read-only zarr.Array)
    store.dask("roads").mean().compute()   # lazy whole-array work
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr
from zarr.codecs import BloscCodec
from zarr.storage import LocalStore

from distpaint.data import location
from distpaint.data.integrity import CHECKSUM, CheckedArray, record_shards
from distpaint.data.zarr_meta import broken_zarr_metadata
from distpaint.errors import ConfigError, InputError

__all__ = [
    "MaskStore",
    "STORE_FORMAT",
    "FORMAT_ATTR",
    "LAYERS",
    "DEFAULT_CHUNKS",
    "DEFAULT_SHARDS",
    "compressors",
    "layout",
    "shard_blocks",
    "stream_to_zarr",
    "jsonable",
    "writing_store",
]

STORE_FORMAT = 1
"""Version of the on-disk layout, recorded in the root group's attrs under `FORMAT_ATTR`."""
FORMAT_ATTR = "distpaint_store"
LAYERS = ("mask", "gaps", "truth")
"""The layers the rest of distpaint knows about; `mask` is required in every sample."""
DEFAULT_CHUNKS = 1024
DEFAULT_SHARDS = 4096

# Hidden prefixes: names starting with "." are never samples, so a crashed writer's leftovers
# are invisible to `names()` and never clash with a real sample.
_TMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".trash-"
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")

Block = tuple[slice, slice]


def compressors() -> list[Any]:
    """Blosc zstd with bit-shuffle (a bool pixel is one byte, bit-shuffle packs 8 per byte),
    then a crc32c checksum of every chunk, so that corrupt bytes fail to decode instead of
    reading as other pixels (`distpaint.data.integrity`)."""
    return [BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle"), CHECKSUM()]


def layout(
    shape: tuple[int, int], chunks: int = DEFAULT_CHUNKS, shards: int = DEFAULT_SHARDS
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Chunk and shard shapes for a 2-D array of `shape`.

    Chunks are `chunks` square, clipped to the array (a 300x300 mask gets one 300x300 chunk);
    shards are the largest multiple of the chunk not above `shards`, clipped to the array
    rounded up to whole chunks. Zarr requires shards to be a multiple of chunks.
    """
    if chunks < 1 or shards < 1:
        raise ConfigError(f"chunks ({chunks}) and shards ({shards}) must be positive")
    chunk = tuple(max(1, min(chunks, n)) for n in shape)
    shard = tuple(
        min(-(-n // c) * c, max(c, shards // c * c)) for n, c in zip(shape, chunk, strict=True)
    )
    return chunk, shard  # type: ignore[return-value]


def shard_blocks(shape: tuple[int, int], shard: tuple[int, int]) -> Iterator[Block]:
    """The shard-aligned blocks covering `shape`, row by row."""
    for y0 in range(0, shape[0], shard[0]):
        for x0 in range(0, shape[1], shard[1]):
            yield slice(y0, min(y0 + shard[0], shape[0])), slice(x0, min(x0 + shard[1], shape[1]))


def _as_bool(block: Any) -> np.ndarray:
    block = np.asarray(block)
    return block if block.dtype == bool else block != 0


def stream_to_zarr(sources: Mapping[str, Any], targets: Mapping[str, zarr.Array]) -> None:
    """Copy each 2-D array-like in `sources` into the zarr array of the same key, shard by shard.

    Every block is one whole shard of the targets (no read-modify-write of partly written
    shards). Dask blocks of all layers are computed together, so layers derived from one
    graph (a mask and its gaps) share the work. Computing block i+1 overlaps with writing
    block i on one writer thread; at most two blocks are in memory at any time. Non-bool
    inputs are binarised as `value != 0`.
    """
    first = next(iter(targets.values()))
    shape, shard = first.shape, first.shards or first.chunks
    pending: Future | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="distpaint-write") as writer:
        for block in shard_blocks(shape, shard):
            parts = {key: src[block] for key, src in sources.items()}
            lazy = {key: part for key, part in parts.items() if isinstance(part, da.Array)}
            if lazy:
                (computed,) = dask.compute(lazy)
                parts.update(computed)
            if pending is not None:
                pending.result()  # bounded memory: wait for the previous block's write
            pending = writer.submit(_write_block, targets, parts, block)
        if pending is not None:
            pending.result()


def _write_block(targets: Mapping[str, zarr.Array], parts: Mapping[str, Any], block: Block):
    for key, part in parts.items():
        targets[key][block] = _as_bool(part)


def jsonable(value: Any) -> Any:
    """`value` with tuples, NumPy scalars and arrays, and paths turned into JSON types."""

    def default(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, os.PathLike):
            return os.fspath(obj)
        raise TypeError(f"attribute value {obj!r} of type {type(obj).__name__} is not JSON")

    try:
        return json.loads(json.dumps(value, default=default))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"sample attributes must be JSON-serialisable: {exc}") from None


def _check_name(name: str, what: str = "sample") -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name) or name.startswith("__"):
        raise ConfigError(
            f"invalid {what} name {name!r}: use letters, digits, '.', '_' or '-', "
            "not starting with '.', '-' or '__'"
        )


class MaskStore:
    """A Zarr v3 group of binary mask samples; see the module docstring for the layout."""

    def __init__(self, path: pathlib.Path | str, group: zarr.Group, mode: str) -> None:
        """Use `MaskStore.create` or `MaskStore.open`. `path` is a local path, or a URL string
        for a store on object storage (`is_remote`)."""
        self.path = path
        self.mode = mode
        self._group = group
        self._read_store = (location.zarr_store(path, read_only=True) if self.is_remote
                            else LocalStore(path, read_only=True))

    @property
    def is_remote(self) -> bool:
        """True for a store at an fsspec URL (object storage)."""
        return isinstance(self.path, str)

    # ---- opening ---------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, *, exist_ok: bool = False) -> MaskStore:
        """Create an empty store at `path` (opened for writing); with `exist_ok`, open an
        existing store instead. A path holding anything else is an InputError."""
        if location.is_url(path):
            return cls._create_remote(os.fspath(path).rstrip("/"), exist_ok)
        path = pathlib.Path(path)
        if path.exists() and not (path.is_dir() and not any(path.iterdir())):
            if not exist_ok:
                raise InputError(f"{path}: already exists; choose another path")
            return cls.open(path, mode="a")
        try:
            group = zarr.open_group(
                LocalStore(path), mode="w-", zarr_format=3,
                attributes={FORMAT_ATTR: STORE_FORMAT},
            )
        except OSError as exc:
            raise InputError(f"{path}: cannot create a mask store: {exc}") from None
        return cls(path, group, "a")

    @classmethod
    def _create_remote(cls, url: str, exist_ok: bool) -> MaskStore:
        if location.exists(url):  # also: InputError for a missing or unreachable bucket
            if not exist_ok:
                raise InputError(f"{url}: already exists; choose another path")
            return cls.open(url, mode="a")
        try:
            group = zarr.open_group(location.zarr_store(url, read_only=False), mode="w-",
                                    zarr_format=3, attributes={FORMAT_ATTR: STORE_FORMAT})
        except Exception as exc:  # denied, unreachable: the user's bucket
            raise location.url_error(url, exc, "cannot create a mask store") from None
        return cls(url, group, "a")

    @classmethod
    def open(cls, path: str | os.PathLike, mode: str = "r") -> MaskStore:
        """Open an existing store, read-only (`mode="r"`) or for writing (`mode="a"`).
        Anything that is not a distpaint store is an InputError naming the path."""
        if mode not in ("r", "a"):
            raise ConfigError(f"MaskStore mode must be 'r' or 'a', not {mode!r}")
        if location.is_url(path):
            path = os.fspath(path).rstrip("/")
            if not location.exists(path) or not location.is_file(location.join(path, "zarr.json")):
                raise InputError(f"{path}: not a distpaint mask store (no Zarr v3 group there)")
            zstore = location.zarr_store(path, read_only=mode == "r")
        else:
            path = pathlib.Path(path)
            if not path.is_dir() or not (path / "zarr.json").is_file():
                raise InputError(f"{path}: not a distpaint mask store (no Zarr v3 group there)")
            zstore = LocalStore(path, read_only=mode == "r")
        try:
            group = zarr.open_group(zstore, mode="r" if mode == "r" else "r+", zarr_format=3)
        except Exception as exc:  # corrupt metadata: any zarr/json error is the user's file
            raise InputError(f"{path}: not a readable Zarr v3 group: {exc}") from None
        version = group.attrs.get(FORMAT_ATTR)
        if version is None:
            raise InputError(
                f"{path}: a Zarr group but not a distpaint mask store "
                f"(no {FORMAT_ATTR!r} attribute)"
            )
        if not isinstance(version, int) or version > STORE_FORMAT:
            raise InputError(
                f"{path}: store format {version!r} is newer than this distpaint "
                f"understands ({STORE_FORMAT})"
            )
        return cls(path, group, mode)

    def __repr__(self) -> str:
        return f"MaskStore({str(self.path)!r}, mode={self.mode!r}, samples={len(self.names())})"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    @property
    def root_attrs(self) -> dict:
        """A copy of the store's own attributes (format version, markers such as a benchmark
        set's)."""
        return dict(self._group.attrs)

    def set_root_attr(self, key: str, value: Any) -> None:
        """Set one attribute of the store itself (its zarr.json rewritten whole)."""
        if self.mode == "r":
            raise InputError(f"{self.path}: store opened read-only; open it with mode='a'")
        self._group.attrs[key] = jsonable(value)

    # ---- reading ---------------------------------------------------------------------------
    def _broken(self, exc: Exception) -> InputError:
        """The user error for zarr failing on this store's metadata: name the broken file
        (zarr's JSON errors do not), else the store and zarr's message."""
        found = None if self.is_remote else broken_zarr_metadata(self.path)
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return found or InputError(f"{self.path}: unreadable Zarr metadata: {detail}")

    def names(self) -> list[str]:
        """Sorted sample names (hidden temporary groups of unfinished writes excluded)."""
        try:
            keys = list(self._group.group_keys())
        except Exception as exc:  # a sample's broken zarr.json: the user's file, not a bug
            raise self._broken(exc) from None
        return sorted(k for k in keys if not k.startswith("."))

    def _sample(self, name: str) -> zarr.Group:
        try:
            found = isinstance(name, str) and not name.startswith(".") and name in self._group
            node = self._group[name] if found else None
        except Exception as exc:  # broken metadata of the sample
            raise self._broken(exc) from None
        if node is None:
            have = ", ".join(self.names()[:10]) or "none"
            raise InputError(f"{self.path}: no sample {name!r} (samples: {have})")
        if not isinstance(node, zarr.Group):
            raise InputError(f"{self.path}/{name}: not a sample group")
        return node

    def layers(self, name: str) -> list[str]:
        """The layers of sample `name`, sorted (always including `mask`)."""
        sample = self._sample(name)
        try:
            return sorted(sample.array_keys())
        except Exception as exc:  # a layer's broken zarr.json
            raise self._broken(exc) from None

    def attrs(self, name: str) -> dict:
        """A copy of sample `name`'s attributes (provenance, shape, crs, ...)."""
        return dict(self._sample(name).attrs)

    def shape(self, name: str) -> tuple[int, int]:
        """(H, W) of sample `name`."""
        return tuple(self.array(name).shape)  # type: ignore[return-value]

    def array(self, name: str, layer: str = "mask") -> CheckedArray:
        """Layer `layer` of sample `name` as a read-only zarr.Array (wrapped: a shard the store
        recorded but lacks, or a corrupt one, is an InputError naming the shard file): slice it
        for patches."""
        if layer not in self.layers(name):
            raise InputError(
                f"{self.path}/{name}: no layer {layer!r} (layers: {', '.join(self.layers(name))})"
            )
        try:
            array = zarr.open_array(store=self._read_store, path=f"{name}/{layer}", mode="r")
        except Exception as exc:  # broken layer metadata
            raise self._broken(exc) from None
        checked = CheckedArray(array, f"{self.path}/{name}/{layer}", name)
        checked.check_missing()  # one listing of the layer's shards, no data read
        return checked

    def dask(self, name: str, layer: str = "mask") -> da.Array:
        """Layer `layer` of sample `name` as a lazy Dask array, one Dask chunk per Zarr chunk."""
        array = self.array(name, layer)
        # from_array, not from_zarr: the checked wrapper's reads name corrupt shards
        return da.from_array(array, chunks=array.chunks, name=f"mask-{uuid.uuid4().hex}",
                             fancy=False)

    # ---- writing ---------------------------------------------------------------------------
    def write(
        self,
        name: str,
        layers: Mapping[str, Any],
        attrs: dict | None = None,
        *,
        chunks: int = DEFAULT_CHUNKS,
        overwrite: bool = False,
    ) -> None:
        """Write sample `name` with `layers` ({layer: 2-D array}, `mask` required, all of one
        shape; NumPy, Dask or Zarr arrays, bool or 0/non-0) and provenance `attrs`.

        Atomic: written under a hidden temporary name and renamed into place when complete.
        Streams shard by shard (constant memory). `shape` is added to the attrs. An existing
        sample is an InputError unless `overwrite`. Leftovers of an earlier write of `name`
        that was killed (SIGKILL, power loss) are removed first.
        """
        if self.mode == "r":
            raise InputError(f"{self.path}: store opened read-only; open it with mode='a'")
        _check_name(name)
        shape = self._check_layers(name, layers)
        sample_attrs = jsonable({**(attrs or {}), "shape": list(shape)})
        if self._has(name) and not overwrite:
            raise InputError(f"{self.path}: sample {name!r} already exists (use overwrite)")
        self._remove_leftovers(name)
        tmp_name = f"{_TMP_PREFIX}{name}-{uuid.uuid4().hex[:12]}"
        try:
            group = self._group.create_group(tmp_name, attributes=sample_attrs)
            chunk, shard = layout(shape, chunks)
            targets = {
                layer: group.create_array(
                    layer, shape=shape, chunks=chunk, shards=shard, dtype=bool,
                    fill_value=False, compressors=compressors(),
                )
                for layer in layers
            }
            stream_to_zarr(layers, targets)
            for target in targets.values():  # in the temporary group: published with it
                record_shards(target)
            self._commit(tmp_name, name)
        except BaseException:
            if self.is_remote:
                location.remove_tree(location.join(self.path, tmp_name))
            else:
                shutil.rmtree(self.path / tmp_name, ignore_errors=True)
            raise

    def _has(self, name: str) -> bool:
        """Is there anything at the sample's place (a sample, or a non-sample in the way)?"""
        if self.is_remote:
            return bool(location.list_names(location.join(self.path, name)))
        return (self.path / name).exists()

    def _check_layers(self, name: str, layers: Mapping[str, Any]) -> tuple[int, int]:
        if "mask" not in layers:
            raise ConfigError(f"sample {name!r}: layers must include 'mask' (got {list(layers)})")
        shapes = {}
        for layer, array in layers.items():
            _check_name(layer, "layer")
            shape = tuple(int(n) for n in getattr(array, "shape", ()))
            if len(shape) != 2 or min(shape) == 0:
                raise InputError(f"sample {name!r}: layer {layer!r} must be a non-empty 2-D "
                                 f"array, got shape {shape}")
            shapes[layer] = shape
        if len(set(shapes.values())) > 1:
            raise InputError(f"sample {name!r}: layers differ in shape: {shapes}")
        return shapes["mask"]

    def _remove_leftovers(self, name: str) -> None:
        """Delete hidden groups that a killed write of `name` left behind: its temporary group
        and, when the sample itself is in place, an old version moved aside. (An old version
        whose sample is missing is kept: it may be the only copy of the user's data.)"""
        pattern = re.compile(rf"^({re.escape(_TMP_PREFIX)}|{re.escape(_TRASH_PREFIX)})"
                             rf"{re.escape(name)}-[0-9a-f]{{12}}$")
        if self.is_remote:
            for entry in location.list_names(self.path):
                m = pattern.match(entry)
                if m and (m[1] == _TMP_PREFIX or self._has(name)):
                    location.remove_tree(location.join(self.path, entry))
            return
        for entry in self.path.iterdir():
            m = pattern.match(entry.name)
            if m and (m[1] == _TMP_PREFIX or (self.path / name).exists()):
                shutil.rmtree(entry, ignore_errors=True)

    def _commit(self, tmp_name: str, name: str) -> None:
        """Rename the finished temporary group into place, replacing an old sample if any.

        A rename within one directory is atomic; the old sample is first moved aside under a
        hidden name so that readers see either the old or the new sample, never a mix. On
        object storage: the old sample removed, the new one published (module docstring).
        """
        if self.is_remote:
            if self._has(name):
                location.remove_tree(location.join(self.path, name))
            location.publish(location.join(self.path, tmp_name), location.join(self.path, name))
            return
        location.rename_replacing(self.path / tmp_name, self.path / name,
                                  self.path / f"{_TRASH_PREFIX}{name}-{uuid.uuid4().hex[:12]}")

    def delete(self, name: str) -> None:
        """Remove sample `name` (moved aside first, so the removal is atomic for readers)."""
        if self.mode == "r":
            raise InputError(f"{self.path}: store opened read-only; open it with mode='a'")
        self._sample(name)
        if self.is_remote:  # its zarr.json first: from then on readers no longer list it
            location.remove_tree(location.join(self.path, name, "zarr.json"))
            location.remove_tree(location.join(self.path, name))
            return
        trash = self.path / f"{_TRASH_PREFIX}{name}-{uuid.uuid4().hex[:12]}"
        os.rename(self.path / name, trash)
        shutil.rmtree(trash, ignore_errors=True)


@contextlib.contextmanager
def writing_store(path: str | os.PathLike) -> Iterator[MaskStore]:
    """The mask store at `path` (a folder or a URL), opened for writing and created if missing.
    A store this call created that holds no sample when the block ends (an error, or nothing
    written) is removed again, so a failed first write into a new place leaves nothing behind;
    a folder that was there empty is kept (emptied), and a store that existed is never touched.

        with writing_store(out) as store:
            store.write(name, layers, attrs)
    """
    if location.is_url(path):
        created = None if location.exists(os.fspath(path).rstrip("/")) else "path"
    else:
        folder = pathlib.Path(path)
        created = "path" if not folder.exists() else (
            "contents" if folder.is_dir() and not any(folder.iterdir()) else None)
    store = MaskStore.create(path, exist_ok=True)
    try:
        yield store
    finally:
        if created is not None and not store.names():
            if store.is_remote:
                location.remove_tree(store.path)
            elif created == "path":
                shutil.rmtree(store.path, ignore_errors=True)
            else:
                for entry in store.path.iterdir():
                    shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
