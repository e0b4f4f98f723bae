"""Patch sampling for training: batches of m patches, all from one mask, as in the paper.

Each step's batch is a pure function of (seed, step, rank, world size):
- the sample (mask) for a step is drawn from `SeedSequence(seed, spawn_key=(step,))`, the same
  on every rank (weighted by area if asked);
- every rank draws the same sequence of candidate positions from that generator (cheap, no
  I/O); a candidate that overlaps an earlier accepted one (of any rank) is skipped, and the
  a-th accepted position goes to rank a % world_size. So ranks get different patches and no
  two patches of one step overlap, which the global reward needs: it re-composes every rank's
  patches into one mask;
- foreground-aware: positions lie on a grid of `stride` px, and a per-sample overview (the
  foreground count of every stride x stride cell, computed once with Dask and cached in
  memory) gives the exact foreground of every grid position, so candidates are drawn only
  among positions with at least `min_foreground`, with no pixel reads;
- each rank then reads just its own patches by slicing the read-only `zarr.Array` (only the
  chunks touched; ~3x faster than Dask per window, see shared/STACK.md).

    from distpaint.data.store import MaskStore
    from distpaint.data.sampler import PatchSampler, SamplerConfig, corrupt_batch
    sampler = PatchSampler(MaskStore.open("masks.zarr"), SamplerConfig(), seed=0)
    batch = sampler.batch(step, rank, world_size)       # batch.patches: (8, 256, 256) bool
    x, y, M = corrupt_batch(batch, GapConfig(), rng)    # corrupted, complete, gap masks

Benchmark: `python bench/sampler.py --json`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from distpaint.data.gaps import GapConfig, corrupt
from distpaint.errors import ConfigError, InputError

if TYPE_CHECKING:  # Dask and Zarr load lazily: `corrupt_batch` needs numpy and scikit-image only
    from distpaint.data.store import MaskStore

__all__ = ["SamplerConfig", "PatchBatch", "PatchSampler", "corrupt_batch"]


@dataclass(frozen=True)
class SamplerConfig:
    """How patches are drawn."""

    patch_size: int = 256
    """Side of a square patch, px (the paper's 256); a multiple of `stride`."""
    batch_size: int = 8
    """Patches per rank per step (m), all from one mask."""
    min_foreground: float = 0.01
    """Smallest fraction of foreground pixels a patch may have (0 accepts empty patches)."""
    stride: int = 16
    """Patch corners lie on a grid of this many px; also the cell of the foreground overview
    (smaller: finer positions, larger overview: H*W/stride^2 counts per sample)."""
    max_tries: int = 50
    """Candidate positions drawn per wanted patch before falling back (never hangs)."""
    weight_by_area: bool = True
    """Draw a step's sample with probability proportional to its area (else uniformly)."""

    def __post_init__(self) -> None:
        for name in ("patch_size", "batch_size", "stride", "max_tries"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"sampler: {name} must be a positive int, got {value!r}")
        if self.patch_size % self.stride:
            raise ConfigError(f"sampler: patch_size ({self.patch_size}) must be a multiple of stride ({self.stride})")
        if not 0.0 <= self.min_foreground <= 1.0:
            raise ConfigError(f"sampler: min_foreground is a fraction in [0, 1], got {self.min_foreground}")


@dataclass
class PatchBatch:
    """One rank's complete patches of one step (NumPy), and where they came from; training
    turns them into a `distpaint.train.step.TrainBatch` of tensors."""

    name: str
    """Sample the patches came from (one per batch, as in the paper)."""
    patches: np.ndarray
    """(m, P, P) bool, the complete patches y."""
    ys: np.ndarray
    """(m,) int, top-left rows in the sample."""
    xs: np.ndarray
    """(m,) int, top-left columns in the sample."""


@dataclass
class _Positions:
    """Cached per sample: foreground count of every grid position, and the valid ones."""

    counts: np.ndarray  # (ny, nx) foreground pixels of the patch at (gy * stride, gx * stride)
    valid: np.ndarray  # flat indices into counts of positions meeting min_foreground


class PatchSampler:
    """Deterministic, foreground-aware, rank-aware patch sampler over a `MaskStore`."""

    def __init__(self, store: MaskStore, config: SamplerConfig, seed: int, names: list[str] | None = None, layer: str = "mask"):
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"sampler: seed must be a non-negative int, got {seed!r}")
        self.store, self.config, self.seed, self.layer = store, config, int(seed), layer
        self.names = list(store.names() if names is None else names)
        if not self.names:
            raise InputError(f"{store.path}: no samples to draw patches from")
        self.shapes = {name: store.shape(name) for name in self.names}  # InputError if missing
        p = config.patch_size
        small = [f"{n} {s[0]}x{s[1]}" for n, s in self.shapes.items() if min(s) < p]
        if small:
            raise InputError(f"{store.path}: samples smaller than the {p}x{p} patch: {', '.join(small)}")
        areas = np.array([h * w for h, w in self.shapes.values()], dtype=float)
        self.weights = areas / areas.sum() if config.weight_by_area else np.full(len(areas), 1 / len(areas))
        self._arrays: dict[str, object] = {}
        self._positions: dict[str, _Positions] = {}

    # ---- per-sample caches -------------------------------------------------------------------
    def _array(self, name: str):
        if name not in self._arrays:
            self._arrays[name] = self.store.array(name, self.layer)
        return self._arrays[name]

    def overview(self, name: str) -> np.ndarray:
        """Foreground count of every full stride x stride cell of sample `name`, `(H//s, W//s)`
        int32 (computed with Dask, block by block)."""
        import dask.array as da  # deferred: see the note at the imports

        s = self.config.stride
        mask = self.store.dask(name, self.layer)
        h, w = (mask.shape[0] // s) * s, (mask.shape[1] // s) * s
        mask = mask[:h, :w]
        # coarsen needs chunks divisible by the factor; whole-chunk multiples keep reads aligned.
        chunks = tuple(max(s, (c[0] // s) * s) for c in mask.chunks)
        if any(any(c % s for c in axis) for axis in mask.chunks):
            mask = mask.rechunk(chunks)
        return da.coarsen(np.sum, mask, {0: s, 1: s}).astype(np.int32).compute()

    def _positions_of(self, name: str) -> _Positions:
        if name not in self._positions:
            k = self.config.patch_size // self.config.stride
            table = np.pad(self.overview(name).astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
            counts = (table[k:, k:] - table[:-k, k:] - table[k:, :-k] + table[:-k, :-k]).astype(np.int32)
            threshold = math.ceil(self.config.min_foreground * self.config.patch_size**2)
            valid = np.flatnonzero(counts >= threshold)
            self._positions[name] = _Positions(counts, valid.astype(np.uint32) if counts.size < 2**32 else valid)
        return self._positions[name]

    # ---- planning (no pixel I/O) -------------------------------------------------------------
    def plan(self, step: int, world_size: int = 1) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
        """Every rank's patch positions at `step`: `(name, ys, xs, ranks)`, each array of length
        batch_size * world_size; identical on all ranks and cheap (no pixel reads)."""
        if not isinstance(step, (int, np.integer)) or step < 0:
            raise ConfigError(f"sampler: step must be a non-negative int, got {step!r}")
        if not isinstance(world_size, (int, np.integer)) or world_size < 1:
            raise ConfigError(f"sampler: world_size must be a positive int, got {world_size!r}")
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(int(step),)))
        name = self.names[int(rng.choice(len(self.names), p=self.weights))]
        need = self.config.batch_size * int(world_size)
        ys, xs = self._choose(name, need, rng)
        return name, ys, xs, np.arange(need) % world_size

    def _choose(self, name: str, need: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        pos = self._positions_of(name)
        s, p = self.config.stride, self.config.patch_size
        nx = pos.counts.shape[1]
        budget = self.config.max_tries * need
        taken: list[int] = []
        if pos.valid.size:
            taken = _non_overlapping(pos.valid[rng.integers(0, pos.valid.size, budget)], nx, p // s, need, taken)
        if len(taken) < need:
            # Too little foreground: fill with the highest-foreground free positions among fresh
            # uniform candidates, then, if the mask has no room left, allow overlaps.
            warnings.warn(
                # No counts in the message: the default filter then shows it once per sample.
                f"{self.store.path}/{name}: too few non-overlapping patches with >= "
                f"{self.config.min_foreground:.2%} foreground; filling with less foreground",
                RuntimeWarning, stacklevel=3,
            )
            pool = rng.integers(0, pos.counts.size, budget)
            pool = pool[np.argsort(-pos.counts.ravel()[pool], kind="stable")]
            taken = _non_overlapping(pool, nx, p // s, need, taken)
            if len(taken) < need:
                warnings.warn(
                    f"{self.store.path}/{name}: no room for {need} non-overlapping {p}x{p} patches; "
                    "some patches of this step overlap",
                    RuntimeWarning, stacklevel=3,
                )
                taken += pool[: need - len(taken)].tolist()
        gy, gx = np.divmod(np.asarray(taken, dtype=np.int64), nx)  # row-major flat index -> (row, col)
        return gy * s, gx * s

    # ---- reading -----------------------------------------------------------------------------
    def batch(self, step: int, rank: int = 0, world_size: int = 1) -> PatchBatch:
        """Rank `rank`'s batch at `step`: batch_size complete patches of one sample, read from
        the store (only this rank's patches are read)."""
        if not isinstance(rank, (int, np.integer)) or not 0 <= rank < world_size:
            raise ConfigError(f"sampler: rank must be in [0, world_size={world_size}), got {rank!r}")
        name, ys, xs, ranks = self.plan(step, world_size)
        mine = ranks == rank
        ys, xs = ys[mine], xs[mine]
        array, p = self._array(name), self.config.patch_size
        patches = np.stack([np.asarray(array[y : y + p, x : x + p], dtype=bool) for y, x in zip(ys, xs)])
        return PatchBatch(name=name, patches=patches, ys=ys, xs=xs)


def _non_overlapping(candidates: np.ndarray, nx: int, k: int, need: int, taken: list[int]) -> list[int]:
    """Append to `taken` (flat grid indices) candidates, in order, that overlap no patch taken
    so far, until `need`; patches are k x k grid cells, so overlap is |dy| < k and |dx| < k."""
    taken = list(taken)
    gy = [t // nx for t in taken]
    gx = [t % nx for t in taken]
    ty, tx = np.array(gy + [0] * need, dtype=np.int64), np.array(gx + [0] * need, dtype=np.int64)
    n = len(taken)
    for c in candidates.tolist():
        if n >= need:
            break
        cy, cx = divmod(c, nx)
        if n and np.any((np.abs(ty[:n] - cy) < k) & (np.abs(tx[:n] - cx) < k)):
            continue
        ty[n], tx[n] = cy, cx
        taken.append(c)
        n += 1
    return taken


def corrupt_batch(batch: PatchBatch, gap_config: GapConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaps for a batch: `(x, y, M)`, each `(m, P, P)` bool: corrupted input, complete patch,
    and the removed foreground (the paper's M). No torch: convert with `torch.from_numpy`."""
    y = batch.patches
    x, gaps = np.empty_like(y), np.empty_like(y)
    for i, patch in enumerate(y):
        x[i], gaps[i] = corrupt(patch, gap_config, rng)
    return x, y, gaps
