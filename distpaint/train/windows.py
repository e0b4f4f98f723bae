"""Windows of the masks in a training store, read through a chunk cache bounded in bytes.

The re-composer actor needs, at each step, the whole-mask window around the step's patches
(at most `LossConfig.global_max_size` per side), not the whole mask: a 50k x 50k mask is 2.5 GB
as bools. `StoreWindows` (a `distpaint.train.recompose.MaskWindows`) reads a window by slicing
the store's zarr array, which reads only the inner chunks the window touches of the shards it
touches (byte-range reads of a shard on disk and on object storage), and keeps the decoded
chunks in a `ChunkCache`: an LRU over every mask and layer, bounded in bytes. Consecutive
compositions on one mask (a step's sampled and greedy outputs, the next steps' nearby
windows) are then served from memory.

A window is assembled from whole chunks: the missing ones are read in one zarr call (their
bounding box, chunk-aligned), the cached ones copied. A chunk larger than an eighth of the
cache (a foreign store chunked in strips or not at all) is never cached: such windows are read
exactly as asked, every time, so a huge chunk is never kept (zarr still decodes it while
reading, which only a store with smaller chunks avoids).

    cache = ChunkCache(1 << 30)
    truth = StoreWindows(store.array("roads", "mask"), ("roads", "mask"), cache)
    truth.window(0, 512, 1024, 1536)     # (512, 512) bool; reads chunks of that area only
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

__all__ = ["ChunkCache", "StoreWindows"]


class ChunkCache:
    """Decoded chunks of any number of masks, least recently used evicted first, at most
    `max_bytes` in all; counts what it read for the actor's stats (and the tests and bench
    that bound the actor's memory)."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"cache size must be >= 0 bytes, got {max_bytes}")
        self.max_bytes = max_bytes
        self._chunks: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.nbytes = 0
        """Bytes of the chunks held now."""
        self.bytes_read = 0
        """Bytes of mask data decoded from the store so far (as bools)."""
        self.largest_read = 0
        """Largest single read from the store, in bytes (the transient memory of a window)."""

    def get(self, key: tuple) -> np.ndarray | None:
        chunk = self._chunks.get(key)
        if chunk is not None:
            self._chunks.move_to_end(key)
        return chunk

    def put(self, key: tuple, chunk: np.ndarray) -> None:
        if chunk.nbytes > self.max_bytes:
            return
        old = self._chunks.pop(key, None)
        if old is not None:
            self.nbytes -= old.nbytes
        self._chunks[key] = chunk
        self.nbytes += chunk.nbytes
        while self.nbytes > self.max_bytes:
            _, gone = self._chunks.popitem(last=False)
            self.nbytes -= gone.nbytes

    def counted_read(self, array: Any, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """`array[y0:y1, x0:x1]` as a bool ndarray, counted in `bytes_read`."""
        block = np.asarray(array[y0:y1, x0:x1], dtype=bool)
        self.bytes_read += block.nbytes
        self.largest_read = max(self.largest_read, block.nbytes)
        return block

    def masks(self) -> list:
        """The (mask, layer) keys with chunks in the cache, least recently used first."""
        return list(dict.fromkeys(key[:-2] for key in self._chunks))


class StoreWindows:
    """`MaskWindows` of one layer of one sample: windows read from the store's array through
    `cache` (see the module docstring)."""

    def __init__(self, array: Any, key: tuple, cache: ChunkCache) -> None:
        """`array`: a 2-D zarr.Array (or `MaskStore.array`'s checked wrapper) of the layer;
        `key`: its name in the cache, e.g. (sample, layer)."""
        self.array, self.key, self.cache = array, tuple(key), cache
        self.chunk = tuple(int(c) for c in array.chunks)  # the inner chunks of a sharded array
        # chunks too big to cache (module docstring): read windows exactly
        self.direct = self.chunk[0] * self.chunk[1] > cache.max_bytes // 8

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    def window(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        if self.direct:
            return self.cache.counted_read(self.array, y0, y1, x0, x1)
        (ch, cw), (h, w) = self.chunk, self.shape
        coords = [(r, c) for r in range(y0 // ch, (y1 - 1) // ch + 1) for c in range(x0 // cw, (x1 - 1) // cw + 1)]
        chunks = {rc: self.cache.get((*self.key, *rc)) for rc in coords}
        missing = [rc for rc, chunk in chunks.items() if chunk is None]
        if missing:  # one read of the missing chunks' box (a few cached ones in it are read again)
            r0, r1 = min(r for r, _ in missing), max(r for r, _ in missing) + 1
            c0, c1 = min(c for _, c in missing), max(c for _, c in missing) + 1
            block = self.cache.counted_read(self.array, r0 * ch, min(r1 * ch, h), c0 * cw, min(c1 * cw, w))
            for r, c in missing:
                # copies: a chunk kept in the cache must not hold the whole block alive
                chunks[r, c] = block[(r - r0) * ch:(r - r0 + 1) * ch, (c - c0) * cw:(c - c0 + 1) * cw].copy()
        out = np.empty((y1 - y0, x1 - x0), dtype=bool)
        for (r, c), chunk in chunks.items():
            a, b = max(y0, r * ch), min(y1, r * ch + chunk.shape[0])
            d, e = max(x0, c * cw), min(x1, c * cw + chunk.shape[1])
            out[a - y0:b - y0, d - x0:e - x0] = chunk[a - r * ch:b - r * ch, d - c * cw:e - c * cw]
        for rc in missing:  # after the copy: inserting may evict chunks of this very window
            self.cache.put((*self.key, *rc), chunks[rc])
        return out
