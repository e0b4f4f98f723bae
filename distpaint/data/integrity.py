"""Integrity of the mask arrays distpaint writes: corrupt and missing shards are errors, never
silently different pixels.

Two guards, both written with every array of a store (`MaskStore.write`, inference outputs):

- checksums: `CHECKSUM` (zarr v3's `crc32c` codec) closes the codec chain of every inner chunk
  of a shard (the shard index has its own crc32c by zarr's default), so flipped or truncated
  bytes fail to decode instead of decoding as other pixels;
- a record of the shards written (`record_shards`, the array attribute `RECORD_ATTR`): zarr
  stores no shard that holds only the fill value, so a missing shard file reads as background;
  the record tells an empty shard from a lost one.

`CheckedArray` wraps a read-only zarr.Array: opening it compares the record with the shard files
present (one listing, no data read), and a read that fails to decode is re-raised as an
InputError naming the sample and the shard file. Reads stay lazy and as fast as zarr's (the
wrapper only adds a try around each slice). Arrays without a record (older or foreign stores)
still read; for them a missing shard cannot be told from an empty one.

    record_shards(tmp_array)                       # after writing, before publishing
    checked = CheckedArray(array, "masks.zarr/roads/mask", "roads")
    checked.check_missing()                        # InputError naming a lost shard file
    checked[0:256, 0:256]                          # InputError naming a corrupt shard file
"""

from __future__ import annotations

import itertools
from numbers import Integral
from typing import Any

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec
from zarr.core.sync import sync

from distpaint.errors import InputError

__all__ = ["CHECKSUM", "RECORD_ATTR", "CheckedArray", "record_shards", "written_shards"]

CHECKSUM = Crc32cCodec
"""The checksum codec put last in every inner chunk's codec chain."""
RECORD_ATTR = "distpaint_shards"
"""Array attribute: {"grid": [rows, cols] of shards, "written": hex of the packed bitmap of the
shards stored, row-major}."""


def _grid(array: zarr.Array) -> tuple[int, ...]:
    shard = array.shards or array.chunks
    return tuple(-(-n // s) for n, s in zip(array.shape, shard, strict=True))


def _key(array: zarr.Array, coords: tuple[int, ...]) -> str:
    return array.metadata.encode_chunk_key(coords)


def written_shards(array: zarr.Array) -> set[tuple[int, ...]]:
    """Grid coordinates of the shards (or unsharded chunks) stored for `array` (one listing of
    its prefix in the store, no data read)."""
    store_path = array.store_path
    prefix = f"{store_path.path}/" if store_path.path else ""

    async def listing() -> set[str]:
        return {key[len(prefix):] async for key in store_path.store.list_prefix(prefix)}

    present = sync(listing())
    return {c for c in itertools.product(*map(range, _grid(array))) if _key(array, c) in present}


def record_shards(array: zarr.Array) -> None:
    """Record in `array`'s attributes which shards are stored (call when every shard is
    written and before the array is published, so that the record is part of what readers see
    atomically)."""
    grid = _grid(array)
    bits = np.zeros(grid, bool)
    for coords in written_shards(array):
        bits[coords] = True
    array.attrs[RECORD_ATTR] = {"grid": list(grid), "written": np.packbits(bits.ravel()).tobytes().hex()}


def _recorded(array: zarr.Array) -> set[tuple[int, ...]] | None:
    record = array.attrs.get(RECORD_ATTR)
    if not isinstance(record, dict):
        return None
    grid = tuple(record.get("grid") or ())
    if grid != _grid(array):
        return None  # a record of another shape: not ours to judge
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(record["written"]), np.uint8))
    bits = bits[: int(np.prod(grid))].reshape(grid).astype(bool)
    return {tuple(int(i) for i in c) for c in np.argwhere(bits)}


class CheckedArray:
    """A read-only zarr.Array whose corrupt or missing shards raise an InputError naming the
    sample and the shard file; every other attribute is the array's own."""

    def __init__(self, array: zarr.Array, where: str, sample: str) -> None:
        """`where`: the array's location for messages (STORE/SAMPLE/LAYER); `sample`: its
        sample's name."""
        self.array, self.where, self.sample = array, where, sample

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("array", "where", "sample"):
            raise AttributeError(name)  # unpickling: no recursion before __dict__ is set
        return getattr(self.array, name)

    def __repr__(self) -> str:
        return f"CheckedArray({self.where!r}, shape={self.array.shape})"

    def __len__(self) -> int:
        return len(self.array)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[...]
        return data if dtype is None else data.astype(dtype)

    def __getitem__(self, selection: Any) -> Any:
        try:
            return self.array[selection]
        except InputError:
            raise
        except Exception as exc:  # a checksum or decode failure: find the shard to name it
            raise self._corrupt(selection, exc) or exc from None

    def __setitem__(self, selection: Any, value: Any) -> None:
        self.array[selection] = value  # zarr refuses it: the array is opened read-only

    def check_missing(self) -> None:
        """InputError naming the first shard the record lists but the store lacks."""
        recorded = _recorded(self.array)
        if recorded is None:
            return
        lost = sorted(recorded - written_shards(self.array))
        if lost:
            more = f" (and {len(lost) - 1} more)" if len(lost) > 1 else ""
            raise InputError(
                f"{self.where}/{_key(self.array, lost[0])}: missing shard of sample "
                f"{self.sample!r}{more}: the store recorded it as written; restore the file or "
                "write the sample again")

    def _shards_of(self, selection: Any) -> list[range]:
        """Shard rows and columns a selection of slices and integers touches (every shard for
        other selections)."""
        shard, grid = self.array.shards or self.array.chunks, _grid(self.array)
        every = [range(n) for n in grid]
        parts = selection if isinstance(selection, tuple) else (selection,)
        if len(parts) != len(grid) or not all(isinstance(p, (slice, Integral)) for p in parts):
            return every
        ranges = []
        for part, n, s in zip(parts, self.array.shape, shard, strict=True):
            if isinstance(part, Integral):
                part = slice(int(part) % n, int(part) % n + 1)
            start, stop, _ = part.indices(n)
            ranges.append(range(start // s, max(start, stop - 1) // s + 1))
        return ranges

    def _corrupt(self, selection: Any, exc: Exception) -> InputError | None:
        """Read each shard the selection touches alone to find one that fails; None if none
        does (then the failure was not the data's, and the original error stands)."""
        shard = self.array.shards or self.array.chunks
        for coords in itertools.product(*self._shards_of(selection)):
            block = tuple(slice(c * s, (c + 1) * s) for c, s in zip(coords, shard, strict=True))
            try:
                self.array[block]
            except Exception:
                detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                why = ("checksum mismatch: the bytes changed on disk" if "checksum" in detail
                       else f"cannot decode: {detail}")
                return InputError(f"{self.where}/{_key(self.array, coords)}: corrupt shard of "
                                  f"sample {self.sample!r} ({why}); restore the file or write "
                                  "the sample again")
        return None
