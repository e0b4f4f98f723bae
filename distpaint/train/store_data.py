"""Training batches streamed from a Zarr mask store, one rank's share per step (distributed runs).

Every worker opens the store lazily and draws its batch with `PatchSampler`: at each step all
ranks take patches of the same whole mask, each rank different, non-overlapping ones, and only
the chunks a patch touches are read. Gaps are erased per patch, as in `LocalData`
(`distpaint.data.gaps.gap_region`, density scaled by `DataConfig.gap_density`), and D_G's
positive pairs take complete patches of a partner mask (another sample, of the same `kind`
attribute when there is one). A batch is a pure function of (seed, step, rank, world size), so
a restarted or resumed run sees exactly the batches of an uninterrupted one.

Samples named `real-*` are GAN-GL-M's 'real' masks (with inherent gaps): its odd steps draw from
them and train G with the masked CE only.

`synthesize_store(cfg, path, world_size)` writes the training pool of a config (the masks
`LocalData` would draw) into a store, so the embedded default runs without any data; masks are
enlarged when needed so that every rank's patches of a step fit without overlapping.

    path = synthesize_store(cfg, "runs/x/train.zarr", world_size=2)
    data = StoreData(path, cfg, rank=0, world_size=2)
    batch = data.batch(step)        # distpaint.train.step.TrainBatch, tensors (m, 1, P, P)

Needs Zarr and Dask (the store); not imported by the training step.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from distpaint.data import location
from distpaint.data.gaps import GapConfig, gap_region
from distpaint.data.sampler import PatchSampler, SamplerConfig
from distpaint.data.store import MaskStore
from distpaint.errors import ConfigError, InputError
from distpaint.train.config import TrainConfig
from distpaint.train.data import LocalData
from distpaint.train.side_band import side_band
from distpaint.train.step import TrainBatch

__all__ = ["StoreData", "REAL_PREFIX", "synthesize_store", "store_mask_size"]

REAL_PREFIX = "real-"
"""Samples whose name starts with this are GAN-GL-M's real masks."""

_STRIDE = 16  # patch corners on a 16-px grid (PatchSampler's stride; patch sizes are multiples)


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[:, None]  # (m, 1, P, P)


class StoreData:
    """Rank `rank`'s batches of a training store (see the module docstring)."""

    def __init__(self, store: str | os.PathLike | MaskStore, cfg: TrainConfig, rank: int = 0,
                 world_size: int = 1) -> None:
        self.store = store if isinstance(store, MaskStore) else MaskStore.open(store)
        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        d = cfg.data
        try:
            self.gaps = GapConfig(**d.gaps)
        except TypeError as exc:
            raise ConfigError(f"data.gaps: {exc}") from None
        if d.patch_size % _STRIDE:
            raise ConfigError(f"data.patch_size {d.patch_size} must be a multiple of {_STRIDE} for store sampling")
        self.sampler_config = SamplerConfig(patch_size=d.patch_size, batch_size=d.batch_size,
                                            min_foreground=d.min_foreground, stride=_STRIDE)
        names = self.store.names()
        self.real = [n for n in names if n.startswith(REAL_PREFIX)]
        self.synthetic = [n for n in names if not n.startswith(REAL_PREFIX)]
        # D_G's positive pairs (the paper's) are patches of two different masks; else one will do
        least = 2 if cfg.needs_partner else 1
        if len(self.synthetic) < least:
            why = (" (D_G compares patches of different masks; with loss.dg_positive: self one "
                   "sample will do)") if cfg.needs_partner else ""
            raise InputError(f"{self.store.path}: variant {cfg.variant} needs at least {least} "
                             f"sample{'s' if least > 1 else ''}{why}, found {len(self.synthetic)}")
        if cfg.uses_real and not self.real:
            # every real-batch variant is its plain one plus '-m' (gan-gl-m, unet-m)
            plain = cfg.variant.removesuffix("-m")
            raise InputError(f"{self.store.path}: variant {cfg.variant} needs real masks (samples named "
                             f"{REAL_PREFIX}*), found none; train --variant {plain} to use only the complete masks")
        self.kinds = {n: self.store.attrs(n).get("kind") for n in self.synthetic}
        self._main = PatchSampler(self.store, self.sampler_config, cfg.seed, names=self.synthetic)
        self._real = (PatchSampler(self.store, self.sampler_config, cfg.seed + 2, names=self.real)
                      if self.real and cfg.uses_real else None)
        self._partners: dict[str, PatchSampler] = {}

    def is_real_step(self, step: int) -> bool:
        """GAN-GL-M (and unet-m) alternate: odd steps are real batches."""
        return self.cfg.uses_real and step % 2 == 1

    def _partner(self, name: str, step: int) -> PatchSampler:
        """Sampler over one partner mask of `name` for `step` (same on every rank)."""
        rng = np.random.default_rng([self.cfg.seed, step, 5])
        same = [n for n in self.synthetic if n != name and self.kinds[n] == self.kinds[name]]
        pool = same or [n for n in self.synthetic if n != name]
        other = pool[int(rng.integers(len(pool)))]
        if other not in self._partners:
            self._partners[other] = PatchSampler(self.store, self.sampler_config, self.cfg.seed + 1, names=[other])
        return self._partners[other]

    def _region(self, patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        lo, hi = self.cfg.data.gap_density
        gaps = self.gaps
        if (lo, hi) != (1.0, 1.0):
            scale = lo if lo == hi else float(rng.uniform(lo, hi))
            gaps = dataclasses.replace(gaps, density=gaps.density * scale)
        return gap_region(patch, gaps, rng)

    def batch(self, step: int) -> TrainBatch:
        """This rank's batch of `step` (a pure function of seed, step, rank and world size)."""
        real = self.is_real_step(step)
        sampler = self._real if real else self._main
        got = sampler.batch(step, self.rank, self.world_size)
        rng = np.random.default_rng([self.cfg.seed, step, self.rank, 3])
        regions = np.stack([self._region(y, rng) for y in got.patches])
        x = got.patches & ~regions
        if real and self.cfg.data.real_band:  # the masked CE also covers the known side band
            band, max_width = self.cfg.data.real_band, self.cfg.data.real_band_max_width
            regions = np.stack([r | side_band(xi, y, r, band, max_width)
                                for xi, y, r in zip(x, got.patches, regions)])
        other = None
        if not real and self.cfg.needs_partner:  # only D_G's (y1, y2) pairs use the partner patches
            other = _tensor(self._partner(got.name, step).batch(step, self.rank, self.world_size).patches)
        return TrainBatch(name=got.name, x=_tensor(x), y=_tensor(got.patches), region=_tensor(regions),
                          ys=got.ys, xs=got.xs, y_other=other, real=real)


def store_mask_size(cfg: TrainConfig, world_size: int) -> int:
    """Side of the synthesised masks: `data.mask_size`, enlarged so that the step's
    `batch_size * world_size` patches fill at most a quarter of a mask (room for the sampler
    to place them without overlap), rounded up to a multiple of the patch size."""
    p = cfg.data.patch_size
    cells = math.ceil(math.sqrt(4 * cfg.data.batch_size * world_size))
    return max(cfg.data.mask_size, cells * p)


def _pool(cfg: TrainConfig, world_size: int) -> list[tuple[str, np.ndarray, dict]]:
    """(name, mask, attrs) of the training pool's samples (`synthesize_store`)."""
    size = store_mask_size(cfg, world_size)
    data = LocalData(dataclasses.replace(cfg.data, mask_size=size, refresh_every=0), cfg.seed, cfg.variant)
    out = [(name, mask, {"kind": name.split("-")[0], "seed": cfg.seed,
                         "source": "distpaint.train.data.LocalData"})
           for name, mask in data.pool_for(0).items()]
    out += [(name, mask, {"kind": name.split("-")[1], "seed": cfg.seed,  # GAN-GL-M, unet-m: real-<kind>-<i>
                          "source": "distpaint.train.data.LocalData (real)"})
            for name, mask in data.real_pool_for(0).items()]
    return out


def _synthesize_remote(cfg: TrainConfig, url: str, world_size: int) -> str:
    store = MaskStore.create(url, exist_ok=True)  # InputError for something else there
    have = set(store.names())
    for name, mask, attrs in _pool(cfg, world_size):
        if name not in have:
            store.write(name, {"mask": mask}, attrs)
    return url


def synthesize_store(cfg: TrainConfig, path: str | os.PathLike, world_size: int = 1) -> Path | str:
    """Write the config's training pool (generation 0 of `LocalData`) as a store at `path`
    (atomically: a temporary store renamed into place); an existing store is kept as it is.
    At a URL (object storage, no rename) the samples are written one by one, each atomically
    (`MaskStore.write`), and the ones already there are kept: the pool is a pure function of
    the config, so a store left half-written by a killed driver is completed, not rewritten."""
    if location.is_url(path):
        return _synthesize_remote(cfg, os.fspath(path), world_size)
    path = Path(path)
    if path.exists():
        MaskStore.open(path)  # InputError if something else is there
        return path
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    store = MaskStore.create(tmp)
    try:
        for name, mask, attrs in _pool(cfg, world_size):
            store.write(name, {"mask": mask}, attrs)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
