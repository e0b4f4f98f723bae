"""A library of random 32x32 blob shapes for blob gaps, built by our own seeded code.

The paper erases "blob" gaps taken from a library of 32x32 blob masks that are rotated and
rescaled on the fly (building a blob pixel by pixel at every training step would be too slow).
The authors never published the code that built their library, so this module makes one:
each blob is Gaussian-smoothed white noise under a radial envelope, thresholded, cleaned to
its largest connected component with holes filled. The library is a pure function of
`(seed, size)` and is cached in memory, so every caller with the same seed shares one copy.

    from distpaint.data.blobs import blob_library
    lib = blob_library(seed=0, count=64)      # (64, 32, 32) bool, read-only
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage as ndi

from distpaint.errors import ConfigError

__all__ = ["BLOB_SIZE", "blob_library", "make_blob"]

BLOB_SIZE = 32
"""Side of a library blob in pixels (the paper's 32x32)."""


def _envelope(size: int) -> np.ndarray:
    """A radial weight, 1 at the centre and 0 at the border, that keeps blobs inside the tile."""
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(yy - c, xx - c) / (size / 2.0)
    return np.clip(1.0 - r, 0.0, 1.0) ** 0.5


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndi.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (1 + int(np.argmax(sizes)))


def _centre(blob: np.ndarray) -> np.ndarray:
    """Move the blob's bounding box to the middle of the tile, so that a blob pasted at a
    gap centre (a foreground pixel when gaps must hit foreground) actually covers it."""
    rows, cols = np.flatnonzero(blob.any(1)), np.flatnonzero(blob.any(0))
    crop = blob[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    out = np.zeros_like(blob)
    y0, x0 = (blob.shape[0] - crop.shape[0]) // 2, (blob.shape[1] - crop.shape[1]) // 2
    out[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = crop
    return out


def make_blob(rng: np.random.Generator, size: int = BLOB_SIZE) -> np.ndarray:
    """One blob: a connected, hole-free, irregular shape touching no border of a size x size tile.

    Smoothing scale and fill fraction are drawn per blob so the library mixes compact
    and ragged, round and elongated shapes.
    """
    sigma = rng.uniform(1.5, 4.0)
    # Anisotropic smoothing gives elongated blobs; orientation comes later from rotation.
    noise = ndi.gaussian_filter(rng.standard_normal((size, size)), (sigma, sigma * rng.uniform(1.0, 2.0)))
    noise = (noise - noise.mean()) / (noise.std() + 1e-12)
    field = (noise + 1.5) * _envelope(size)
    fill = rng.uniform(0.25, 0.5)  # fraction of the tile the blob covers before cleaning
    blob = field > np.quantile(field, 1.0 - fill)
    blob[[0, -1], :] = False
    blob[:, [0, -1]] = False
    blob = ndi.binary_fill_holes(_largest_component(blob))
    if blob.sum() < size:  # degenerate draw (vanishingly rare): fall back to a disc
        yy, xx = np.mgrid[0:size, 0:size]
        blob = np.hypot(yy - (size - 1) / 2, xx - (size - 1) / 2) < size / 3
    return _centre(blob)


@functools.lru_cache(maxsize=8)
def blob_library(seed: int = 0, count: int = 64) -> np.ndarray:
    """`count` blobs of 32x32, shape `(count, 32, 32)` bool, read-only; cached per (seed, count)."""
    if count < 1:
        raise ConfigError(f"blob library: count must be >= 1, got {count}")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0xB10B,)))
    lib = np.stack([make_blob(rng) for _ in range(count)])
    lib.setflags(write=False)
    return lib
