"""Synthetic thin structures: plant roots, retinal-like vessel trees, road networks, sketches.

Geometry first, then pixels: `synth_geometry` draws the vector geometry of a mask (capsule
segments, indexed by position) from one seed, and `rasterize` turns any window of it into
pixels. Every pixel is a pure function of the geometry, so the same (kind, shape, seed, config)
gives identical pixels whatever the chunking, and `synth_mask` can build a 40000 x 40000 mask
lazily, block by block, in bounded memory.

    from distpaint.data.synth import synth_array, synth_mask
    small = synth_array("roads", (1024, 1024), seed=0)            # numpy bool
    huge = synth_mask("vessels", (40000, 40000), seed=1)         # dask bool, lazy

From the shell: `distpaint synth roads --size 4096 4096 --seed 0 --count 4 --out store.zarr`.
"""

from __future__ import annotations

import functools
import uuid

import dask.array as da
import numpy as np
from dask.base import tokenize

from distpaint.data.synth.config import KINDS, SynthConfig, check_request
from distpaint.data.synth.geometry import Geometry, PathBuilder
from distpaint.data.synth.raster import rasterize
from distpaint.data.synth.roads import build_roads
from distpaint.data.synth.roots import build_roots
from distpaint.data.synth.sketch import build_sketch
from distpaint.data.synth.vessels import build_vessels
from distpaint.errors import ConfigError

__all__ = [
    "KINDS",
    "SynthConfig",
    "Geometry",
    "synth_geometry",
    "rasterize",
    "geometry_mask",
    "synth_mask",
    "synth_array",
    "sample_seeds",
]

_BUILDERS = {"roots": build_roots, "vessels": build_vessels, "roads": build_roads, "sketch": build_sketch}

# Salt mixed into every seed so the kinds draw independent streams from the same user seed.
_KIND_SALT = {kind: i + 1 for i, kind in enumerate(KINDS)}


def synth_geometry(kind: str, shape: tuple[int, int], seed: int, config: SynthConfig | None = None) -> Geometry:
    """Vector geometry of a synthetic (H, W) mask of `kind`, fully determined by the arguments."""
    kind, shape, seed = check_request(kind, shape, seed)
    config = SynthConfig() if config is None else config
    rng = np.random.default_rng(np.random.SeedSequence([seed, _KIND_SALT[kind]]))
    builder = PathBuilder(shape)
    _BUILDERS[kind](builder, shape, rng, config)
    return builder.build()


def geometry_mask(geometry: Geometry, chunks: int = 1024, name: str | None = None) -> da.Array:
    """Lazy bool dask array of `geometry`, each (chunks x chunks) block rasterised on its own."""
    if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
        raise ConfigError(f"synth chunks must be a positive integer, got {chunks!r}")
    template = da.empty(geometry.shape, dtype=bool, chunks=chunks)
    # The geometry rides in a partial: dask neither hashes nor traverses it (a 40k mask's
    # geometry is hundreds of MB), hence the explicit, cheap graph name.
    return da.map_blocks(
        functools.partial(_block, geometry), dtype=bool, chunks=template.chunks,
        meta=np.empty((0, 0), dtype=bool), name=name or f"synth-geometry-{uuid.uuid4().hex}",
    )


def _block(geometry: Geometry, block_info=None) -> np.ndarray:
    (y0, y1), (x0, x1) = block_info[None]["array-location"]
    return rasterize(geometry, y0, y1, x0, x1)


def synth_mask(kind: str, shape: tuple[int, int], seed: int, *, chunks: int = 1024,
               config: SynthConfig | None = None) -> da.Array:
    """Lazy (H, W) bool dask array of a synthetic mask; geometry is built now, pixels on compute."""
    config = SynthConfig() if config is None else config
    geometry = synth_geometry(kind, shape, seed, config)
    token = tokenize(kind, geometry.shape, int(seed), config.to_dict(), chunks)
    return geometry_mask(geometry, chunks, name=f"synth-{kind}-{token}")


def synth_array(kind: str, shape: tuple[int, int], seed: int, config: SynthConfig | None = None) -> np.ndarray:
    """(H, W) bool numpy mask, rasterised in one window; for small masks."""
    geometry = synth_geometry(kind, shape, seed, config)
    return rasterize(geometry, 0, geometry.shape[0], 0, geometry.shape[1])


def sample_seeds(seed: int, count: int) -> list[int]:
    """Seeds of `count` samples derived from one base seed (SeedSequence(seed).spawn)."""
    children = np.random.SeedSequence(int(seed)).spawn(int(count))
    return [int(c.generate_state(1, dtype=np.uint32)[0]) for c in children]

