"""In-process training data for the single-process loop: patches of synthetic masks with gaps.

A pool of `n_masks` whole synthetic masks Y (`distpaint.data.synth.synth_array`) is made once
from the run's seed. Each step takes one mask (all patches of a step come from one mask, as in
the paper), draws `batch_size` non-overlapping patches on a randomly shifted grid (cells with
foreground preferred), erases a random gap region from each (`distpaint.data.gaps.gap_region`)
and adds complete patches of another mask for D_G's positive pairs. A batch is a pure function
of (seed, step), so a resumed run sees exactly the batches of an uninterrupted one.

GAN-GL-M: odd steps are "real" batches from a second pool whose masks carry inherent gaps
(simulated with `DataConfig.real_gaps`): the target is the gappy mask and only the masked CE
on the artificial gap region trains G.

    data = LocalData(cfg.data, seed=0, variant="gan-gl")
    batch = data.batch(step=0)          # PatchBatch of torch tensors (m, 1, P, P)
"""

from __future__ import annotations

import numpy as np
import torch

from distpaint.data.gaps import GapConfig, corrupt, gap_region
from distpaint.data.synth import synth_array
from distpaint.errors import ConfigError
from distpaint.train.config import DataConfig
from distpaint.train.step import PatchBatch

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


def _tensor(stack: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(stack).astype(np.float32))[:, None]  # (m, 1, P, P)


class LocalData:
    """Deterministic per-step batches from a pool of synthetic masks (see module docstring)."""

    def __init__(self, config: DataConfig, seed: int, variant: str = "gan-gl") -> None:
        self.config = config
        self.seed = seed
        self.variant = variant
        self.gaps = _gap_config(config.gaps, "gaps")
        seeds = np.random.SeedSequence([seed, 7]).generate_state(2 * config.n_masks)
        shape = (config.mask_size, config.mask_size)
        self.masks = {f"{config.kind}-{i}": synth_array(config.kind, shape, int(seeds[i]))
                      for i in range(config.n_masks)}
        self.real: dict[str, np.ndarray] = {}
        if variant == "gan-gl-m":
            real_gaps = _gap_config(config.real_gaps, "real_gaps")
            for i in range(config.n_masks):
                mask = synth_array(config.real_kind, shape, int(seeds[config.n_masks + i]))
                gappy, _ = corrupt(mask, real_gaps, np.random.default_rng([seed, 11, i]))
                self.real[f"real-{config.real_kind}-{i}"] = gappy
        self.names = sorted(self.masks)

    def is_real_step(self, step: int) -> bool:
        """GAN-GL-M alternates: odd steps are real batches."""
        return self.variant == "gan-gl-m" and step % 2 == 1

    def _patches(self, mask: np.ndarray, rng: np.random.Generator) -> tuple[list, np.ndarray, np.ndarray]:
        p = self.config.patch_size
        ys, xs = grid_cells(mask, p, self.config.batch_size, self.config.min_foreground, rng)
        return [mask[y:y + p, x:x + p] for y, x in zip(ys, xs)], ys, xs

    def batch(self, step: int) -> PatchBatch:
        """The batch of `step` (a pure function of seed and step)."""
        rng = np.random.default_rng([self.seed, step, 3])
        real = self.is_real_step(step)
        pool = self.real if real else self.masks
        names = sorted(pool)
        i = int(rng.integers(len(names)))
        ys_patches, ys, xs = self._patches(pool[names[i]], rng)
        regions = [gap_region(y, self.gaps, rng) for y in ys_patches]
        xs_patches = [y & ~r for y, r in zip(ys_patches, regions)]
        other = None
        if not real:  # complete patches of a different mask for D_G's positive pairs
            j = (i + 1 + int(rng.integers(len(names) - 1))) % len(names)
            other = _tensor(self._patches(pool[names[j]], rng)[0])
        return PatchBatch(name=names[i], x=_tensor(xs_patches), y=_tensor(ys_patches),
                          region=_tensor(regions), ys=ys, xs=xs, y_other=other, real=real)
