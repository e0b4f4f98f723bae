"""In-process training data for the single-process loop: patches of synthetic masks with gaps.

A pool of `n_masks` whole synthetic masks Y (`distpaint.data.synth.synth_array`) is drawn from
the run's seed: mask i is of kind `kinds[i % len(kinds)]` (one kind, several, or all) with a
stroke width scale drawn log-uniformly from `DataConfig.width_scale`. With
`DataConfig.refresh_every` > 0 a fresh pool is drawn every that many steps (endless variety
instead of a fixed set of masks to over-fit). Each step takes one mask (all patches of a step
come from one mask, as in the paper), draws `batch_size` non-overlapping patches on a randomly
shifted grid (cells with foreground preferred), erases a random gap region from each
(`distpaint.data.gaps.gap_region`, density drawn from `DataConfig.gap_density`) and adds complete
patches of another mask of the same kind for D_G's positive pairs. A batch is a pure function
of (seed, step), so a resumed run sees exactly the batches of an uninterrupted one.

With `DataConfig.store`, complete real masks are read once from those mask stores (named
`store-<sample>`, or `store-<i>:<sample>` with several) and a share `store_share` of the other
steps cut their batch from one of them (each store as often as the others)
(D_G's partner patches from another one), with the same artificial gaps: the supervised
branch then sees real geometry (dead ends, widths, junctions), not only synthetic masks.

GAN-GL-M: odd steps are "real" batches from a second pool whose masks carry inherent gaps
(simulated with `DataConfig.real_gaps`): the target is the gappy mask and only the masked CE
on the artificial gap region trains G (with `DataConfig.real_band`, also on the known
background beside the strokes: `distpaint.train.side_band`).

    data = LocalData(cfg.data, seed=0, variant="gan-gl")
    batch = data.batch(step=0)          # TrainBatch of torch tensors (m, 1, P, P)
    masks = data.pool_for(step=0)       # {name: whole mask} the batch may come from
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from distpaint.data.gaps import GapConfig, corrupt, gap_region
from distpaint.data.synth import SynthConfig, synth_array
from distpaint.errors import ConfigError, InputError
from distpaint.train.config import REAL_VARIANTS, DataConfig, kinds_of
from distpaint.train.side_band import side_band
from distpaint.train.step import TrainBatch

__all__ = ["LocalData", "grid_cells"]


def _gap_config(options: dict, key: str) -> GapConfig:
    try:
        return GapConfig(**options)
    except TypeError as exc:
        raise ConfigError(f"data.{key}: {exc}") from None


def grid_cells(mask: np.ndarray, patch: int, count: int, min_foreground: float,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners `(ys, xs)` of `count` non-overlapping `patch` cells of a grid shifted
    at random, drawn without replacement, preferring cells with enough foreground."""
    h, w = mask.shape
    ny, nx = h // patch, w // patch
    oy = int(rng.integers(0, h - ny * patch + 1))
    ox = int(rng.integers(0, w - nx * patch + 1))
    cells = mask[oy:oy + ny * patch, ox:ox + nx * patch].reshape(ny, patch, nx, patch)
    fg = cells.mean(axis=(1, 3)).ravel()  # (ny * nx,) foreground fraction per cell
    weight = np.where(fg >= min_foreground, 1.0, 1e-3)  # empty cells only when needed
    pick = rng.choice(ny * nx, size=count, replace=False, p=weight / weight.sum())
    return oy + (pick // nx) * patch, ox + (pick % nx) * patch


def _stored_masks(config: DataConfig) -> dict[str, np.ndarray]:
    """The masks of the stores of `config.store` (comma-separated) that hold a batch of
    non-overlapping patches, in memory (real training masks are a few Mpx each), as
    {"store-<sample>": mask} (with one store) or {"store-<i>:<sample>": mask}."""
    from distpaint.data.store import MaskStore  # deferred: Zarr only when data.store is set

    paths = [p.strip() for p in config.store.split(",") if p.strip()]
    p, need = config.patch_size, config.batch_size
    masks, total = {}, 0
    for i, path in enumerate(paths):
        store = MaskStore.open(path)
        prefix = "store-" if len(paths) == 1 else f"store-{i}:"  # ':' is never in a sample name
        for name in store.names():
            total += 1
            h, w = store.shape(name)
            if (h // p) * (w // p) >= need:
                masks[f"{prefix}{name}"] = np.asarray(store.array(name)[...], dtype=bool)
    if len(masks) < 2:
        raise InputError(f"{config.store}: data.store needs at least 2 masks that hold "
                         f"{need} patches of {p} px (D_G pairs patches of two masks), found "
                         f"{len(masks)} of {total}")
    return masks


def _kind_of(name: str) -> str:
    """What D_G's partner must share with a pool mask: its kind (`roads-3`), or its store
    (`store-1:berlin`, `store-berlin`)."""
    return name.split(":")[0] if ":" in name else name.split("-")[0]


def _tensor(stack: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(stack).astype(np.float32))[:, None]  # (m, 1, P, P)


class LocalData:
    """Deterministic per-step batches from pools of synthetic masks (see module docstring)."""

    def __init__(self, config: DataConfig, seed: int, variant: str = "gan-gl") -> None:
        self.config = config
        self.seed = seed
        self.variant = variant
        self.gaps = _gap_config(config.gaps, "gaps")
        self.real_gaps = _gap_config(config.real_gaps, "real_gaps") if variant in REAL_VARIANTS else None
        try:
            SynthConfig(**config.synth)
        except TypeError as exc:
            raise ConfigError(f"data.synth: {exc}") from None
        self._cache: tuple[int, dict[str, np.ndarray], dict[str, np.ndarray]] | None = None
        self.stored = _stored_masks(config) if config.store else {}

    def generation(self, step: int) -> int:
        """Index of the mask pool used at `step`."""
        every = self.config.refresh_every
        return step // every if every else 0

    def _pools(self, generation: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(synthetic pool, real pool) of `generation`; the last one is cached."""
        if self._cache is not None and self._cache[0] == generation:
            return self._cache[1], self._cache[2]
        cfg = self.config
        # generation 0 keeps the historic seeding; benchmark sets use other salts (never 7)
        key = [self.seed, 7] if generation == 0 else [self.seed, 7, generation]
        seeds = np.random.SeedSequence(key).generate_state(2 * cfg.n_masks)
        scale_rng = np.random.default_rng(key + [1])
        lo, hi = cfg.width_scale
        scales = np.exp(scale_rng.uniform(math.log(lo), math.log(hi), 2 * cfg.n_masks))
        shape = (cfg.mask_size, cfg.mask_size)
        suffix = "" if cfg.refresh_every == 0 else f"-g{generation}"

        def draw(kind: str, i: int) -> np.ndarray:
            synth = SynthConfig(**{**cfg.synth, "width_scale": float(scales[i])})
            return synth_array(kind, shape, int(seeds[i]), synth)

        kinds = cfg.kinds
        masks = {f"{kinds[i % len(kinds)]}-{i}{suffix}": draw(kinds[i % len(kinds)], i)
                 for i in range(cfg.n_masks)}
        real: dict[str, np.ndarray] = {}
        if self.real_gaps is not None:
            real_kinds = kinds_of(cfg.real_kind)
            for i in range(cfg.n_masks):
                kind = real_kinds[i % len(real_kinds)]
                mask = draw(kind, cfg.n_masks + i)
                gappy, _ = corrupt(mask, self.real_gaps, np.random.default_rng(key + [11, i]))
                real[f"real-{kind}-{i}{suffix}"] = gappy
        self._cache = (generation, masks, real)
        return masks, real

    def pool_for(self, step: int) -> dict[str, np.ndarray]:
        """The whole masks `{name: (H, W) bool}` batches of `step` are drawn from, synthetic
        and stored (what a recomposer must hold at that step)."""
        return {**self._pools(self.generation(step))[0], **self.stored}

    def real_pool_for(self, step: int) -> dict[str, np.ndarray]:
        """GAN-GL-M and unet-m only: the 'real' masks (with inherent gaps) of `step`'s pool; empty for
        other variants."""
        return self._pools(self.generation(step))[1]

    @property
    def masks(self) -> dict[str, np.ndarray]:
        """The first pool (all of them when the pool is never refreshed)."""
        return self.pool_for(0)

    def is_real_step(self, step: int) -> bool:
        """GAN-GL-M (and unet-m) alternate: odd steps are real batches."""
        return self.variant in REAL_VARIANTS and step % 2 == 1

    def _patches(self, mask: np.ndarray, rng: np.random.Generator) -> tuple[list, np.ndarray, np.ndarray]:
        p = self.config.patch_size
        ys, xs = grid_cells(mask, p, self.config.batch_size, self.config.min_foreground, rng)
        return [mask[y:y + p, x:x + p] for y, x in zip(ys, xs)], ys, xs

    def _region(self, patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        lo, hi = self.config.gap_density
        gaps = self.gaps
        if (lo, hi) != (1.0, 1.0):
            scale = lo if lo == hi else float(rng.uniform(lo, hi))
            gaps = dataclasses.replace(gaps, density=gaps.density * scale)
        return gap_region(patch, gaps, rng)

    def batch(self, step: int) -> TrainBatch:
        """The batch of `step` (a pure function of seed and step)."""
        rng = np.random.default_rng([self.seed, step, 3])
        real = self.is_real_step(step)
        masks, real_masks = self._pools(self.generation(step))
        pool = real_masks if real else masks
        # its own stream: runs without a store draw exactly the batches they drew before
        if not real and self.stored and \
                np.random.default_rng([self.seed, step, 17]).random() < self.config.store_share:
            pool = self.stored
        names = sorted(pool)
        if pool is self.stored:  # each store as often, whatever its number of masks
            groups = sorted({_kind_of(n) for n in names})
            group = groups[int(rng.integers(len(groups)))]
            members = [k for k, n in enumerate(names) if _kind_of(n) == group]
            i = members[int(rng.integers(len(members)))]
        else:
            i = int(rng.integers(len(names)))
        ys_patches, ys, xs = self._patches(pool[names[i]], rng)
        regions = [self._region(y, rng) for y in ys_patches]
        xs_patches = [y & ~r for y, r in zip(ys_patches, regions)]
        if real and self.config.real_band:  # the masked CE also covers the known side band
            regions = [r | side_band(x, y, r, self.config.real_band, self.config.real_band_max_width)
                       for x, y, r in zip(xs_patches, ys_patches, regions)]
        other = None
        if not real:  # complete patches of a different mask (of the same kind when possible)
            kind = _kind_of(names[i])
            partners = [n for n in names if n != names[i] and _kind_of(n) == kind]
            partners = partners or [n for n in names if n != names[i]]
            other = _tensor(self._patches(pool[partners[int(rng.integers(len(partners)))]], rng)[0])
        return TrainBatch(name=names[i], x=_tensor(xs_patches), y=_tensor(ys_patches),
                          region=_tensor(regions), ys=ys, xs=xs, y_other=other, real=real)
