"""Write synthetic samples into a mask store (the library side of `distpaint synth`).

    from distpaint.data.store import MaskStore
    from distpaint.data.synth.writer import write_synth
    store = MaskStore.create("synth.zarr", exist_ok=True)
    for s in write_synth(store, "roads", (4096, 4096), seed=0, count=4):
        print(s.name, s.seed, s.foreground, s.seconds)

Sample i is named `<kind>-<i:04d>` and drawn from seed `sample_seeds(seed, count)[i]`
(`SeedSequence(seed).spawn(count)`), recorded in its attrs with the base seed and the config,
so any one sample can be regenerated alone with `synth_mask(kind, shape, attrs["seed"], ...)`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from distpaint.data.store import MaskStore
from distpaint.data.synth import SynthConfig, sample_seeds, synth_mask
from distpaint.data.synth.config import check_request
from distpaint.errors import ConfigError

__all__ = ["SynthSample", "check_synth_request", "write_synth", "sample_name"]


@dataclass(frozen=True)
class SynthSample:
    """What was written for one synthetic sample."""

    name: str
    """Sample name in the store, `<kind>-<i:04d>`."""
    shape: tuple[int, int]
    """(H, W) of the mask."""
    seed: int
    """Seed the sample was drawn from (derived from the base seed)."""
    foreground: float | None
    """Fraction of foreground pixels, read back from the store (None if not measured)."""
    seconds: float
    """Wall time to build the geometry and write the mask (not the read-back)."""


def sample_name(kind: str, index: int) -> str:
    """Store name of sample `index` of `kind`."""
    return f"{kind}-{index:04d}"


def check_synth_request(kind: str, shape, seed, count) -> tuple[str, tuple[int, int], int, int]:
    """Validate a whole `write_synth` request before anything is created on disk; returns
    (kind, shape, seed, count) normalised. ConfigError naming the bad value otherwise."""
    kind, shape, seed = check_request(kind, shape, seed)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"synth --count must be a positive integer, got {count!r}")
    return kind, shape, seed, count


def write_synth(
    store: MaskStore,
    kind: str,
    shape: tuple[int, int],
    seed: int,
    count: int = 1,
    *,
    config: SynthConfig | None = None,
    chunks: int = 1024,
    overwrite: bool = False,
    measure: bool = True,
) -> list[SynthSample]:
    """Generate `count` masks of `kind` and write them as samples `<kind>-0000`, ... of `store`.

    Each mask is built lazily (`synth_mask`) and streamed into the store block by block, so
    memory does not grow with the mask size. `measure` reads each mask back to report its
    foreground fraction.
    """
    kind, shape, seed, count = check_synth_request(kind, shape, seed, count)
    config = SynthConfig() if config is None else config
    names = [sample_name(kind, i) for i in range(count)]
    existing = sorted(set(names) & set(store.names()))
    if existing and not overwrite:
        raise ConfigError(f"{store.path}: sample(s) {', '.join(existing)} already exist; pass --overwrite to replace them")
    samples = []
    for i, (name, sample_seed) in enumerate(zip(names, sample_seeds(seed, count))):
        start = time.perf_counter()
        mask = synth_mask(kind, shape, sample_seed, chunks=chunks, config=config)
        attrs = {"kind": kind, "seed": sample_seed, "base_seed": seed, "index": i,
                 "config": config.to_dict(), "generator": "distpaint.data.synth"}
        store.write(name, {"mask": mask}, attrs=attrs, chunks=chunks, overwrite=overwrite)
        seconds = time.perf_counter() - start
        foreground = float(store.dask(name).mean().compute()) if measure else None
        samples.append(SynthSample(name, shape, sample_seed, foreground, seconds))
    return samples

