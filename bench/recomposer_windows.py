"""Benchmark: the re-composer actor reading view windows vs whole masks (per-step time, memory).

Question: what does each composition cost the actor, in time and in peak memory, now that it
reads only each step's view window from the training store (`distpaint.train.windows`: chunk
LRU bounded in bytes), against loading each whole mask on first use and keeping it (the
former behaviour, reproduced here as a subclass overriding `_load` only)?

Setup: a store of `--masks` road-like masks of `--size`^2 px (1024-px chunks in 4096-px shards,
the store's layout), written once. Each variant runs in its own process (so its peak RSS is its
own), the two alternating for `--rounds` rounds; each process makes `--steps` compositions
with `RecomposerService.compose` called in-process (what the actor runs for a step, unpacking
and packing included; no Ray, so no transport in the figures): a mask drawn at random per
step, `--patches` 256-px patches at random corners, placed two ways:

- spread: anywhere on the mask, as `PatchSampler` places a step's patches; their bounding box
  is then most of the mask, and the view (at most `LossConfig.global_max_size`, 4096^2, centred
  on the box) stays near the mask's centre: consecutive windows overlap and the chunk cache
  serves most of them;
- clustered: inside a random 3072^2 square per step, so views land all over the mask: the
  windowed actor reads most windows from the store until its cache holds every chunk of
  every mask (with `--cache-mb` below the store's size as bools, never: its worst case).

Reported per placement and variant (medians over rounds): seconds of the steps that first touched a mask
("cold"), median seconds of the others ("warm"), mean seconds per step over the whole run,
MB read from the store, peak RSS and its growth over the process's RSS before the first step;
and windowed / whole ratios.

    python bench/recomposer_windows.py [--json] [--size 16384] [--masks 3] [--steps 40] [--cache-mb 1024]
    python bench/recomposer_windows.py --smoke-test      # tiny sizes, same code path
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from distpaint.data.store import MaskStore
from distpaint.train.actor import DEFAULT_CACHE_BYTES, RecomposerService, pack_patches

VARIANTS = ("whole", "windowed")
PLACEMENTS = ("spread", "clustered")


class WholeMaskService(RecomposerService):
    """The actor as it was: each whole mask read on first use and kept (its cache bounded in
    bytes, 4 GiB by default), every window cut out of it in memory."""

    def __init__(self, *args, whole_cache_bytes: int = 4 << 30, **kwargs) -> None:
        self._whole: dict[str, np.ndarray] = {}
        self.whole_cache_bytes = whole_cache_bytes
        self.whole_read = 0
        super().__init__(*args, **kwargs)

    def _reset(self) -> None:
        super()._reset()
        for name, truth in self._whole.items():
            self._rec.add_mask(name, truth)

    def _load(self, name: str) -> None:
        if name in self._whole:
            self._whole[name] = self._whole.pop(name)  # most recently used last
            return
        if self._store is None:
            self._store = MaskStore.open(self.store_path)
        truth = np.asarray(self._store.array(name, self.layer)[...], dtype=bool)
        self.whole_read += truth.nbytes
        self._whole[name] = truth
        self._rec.add_mask(name, truth)
        while sum(a.nbytes for a in self._whole.values()) > self.whole_cache_bytes and len(self._whole) > 1:
            old = next(iter(self._whole))
            self._whole.pop(old)
            self._rec.discard(old)


def road_mask(size: int, seed: int) -> np.ndarray:
    """A road-like mask: 3-px lines across the whole mask at random angles."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), bool)
    t = np.linspace(0.0, 1.0, 2 * size)
    for _ in range(max(4, size // 128)):
        (y0, x0), (y1, x1) = rng.integers(0, size, (2, 2))
        ys = np.clip(np.round(y0 + t * (y1 - y0)).astype(np.int64), 0, size - 1)
        xs = np.clip(np.round(x0 + t * (x1 - x0)).astype(np.int64), 0, size - 1)
        for d in (-1, 0, 1):
            mask[np.clip(ys + d, 0, size - 1), xs] = True
    return mask


def make_store(path: Path, size: int, masks: int) -> None:
    store = MaskStore.create(path)
    for i in range(masks):
        store.write(f"m{i}", {"mask": road_mask(size, i)})


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(variant: str, store: str, steps: int, patches: int, seed: int, placement: str = "spread",
          cache_bytes: int = DEFAULT_CACHE_BYTES) -> dict:
    """One variant's run (in its own process): see the module docstring."""
    cls = WholeMaskService if variant == "whole" else RecomposerService
    service = cls(store, max_size=4096, margin=256, cache_bytes=cache_bytes)
    names = MaskStore.open(store).names()
    size = MaskStore.open(store).shape(names[0])[0]
    rng = np.random.default_rng(seed)
    plan = []
    for _ in range(steps):
        name = names[int(rng.integers(len(names)))]
        if placement == "spread":
            ys, xs = (rng.integers(0, (size - 256) // 16 + 1, patches) * 16 for _ in range(2))
        else:
            side = min(3072, size)
            y0, x0 = rng.integers(0, size - side + 1, 2)
            ys, xs = (o + rng.integers(0, side - 256 + 1, patches) for o in (y0, x0))
        plan.append((name, pack_patches(rng.random((patches, 256, 256)) < 0.1), ys, xs))
    loop = asyncio.new_event_loop()
    base = _rss_mb()
    seen, cold, warm = set(), [], []
    start_all = time.perf_counter()
    for step, (name, bits, ys, xs) in enumerate(plan):
        start = time.perf_counter()
        loop.run_until_complete(service.compose(1, name, step, "sample", 0, 1, bits, ys, xs, 256))
        (warm if name in seen else cold).append(time.perf_counter() - start)
        seen.add(name)
    total = time.perf_counter() - start_all
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    read = service.whole_read if variant == "whole" else service.cache.bytes_read
    return {"cold_s": statistics.mean(cold), "warm_median_s": statistics.median(warm) if warm else float("nan"),
            "mean_s_per_step": total / steps, "read_mb": read / 2**20, "peak_rss_mb": peak,
            "rss_growth_mb": peak - base}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--size", type=int, default=16384, help="side of the masks (px)")
    ap.add_argument("--masks", type=int, default=3, help="masks in the store")
    ap.add_argument("--steps", type=int, default=40, help="compositions per run")
    ap.add_argument("--patches", type=int, default=32, help="256-px patches per composition (all ranks)")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each variant, alternating")
    ap.add_argument("--cache-mb", type=int, default=DEFAULT_CACHE_BYTES >> 20,
                    help="the windowed actor's chunk cache (default: the actor's)")
    ap.add_argument("--store", help="an existing store of such masks (default: written to a temporary folder)")
    ap.add_argument("--smoke-test", action="store_true", help="tiny sizes, same code path")
    ap.add_argument("--child", choices=["whole", "windowed"], help=argparse.SUPPRESS)
    ap.add_argument("--placement", choices=PLACEMENTS, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.smoke_test:
        args.size, args.masks, args.steps, args.patches, args.rounds = 1024, 2, 6, 4, 1
    if args.child:
        print(json.dumps(child(args.child, args.store, args.steps, args.patches, args.seed, args.placement,
                               args.cache_mb << 20)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store
        if store is None:
            store = str(Path(tmp) / "masks.zarr")
            start = time.perf_counter()
            make_store(Path(store), args.size, args.masks)
            print(f"store: {args.masks} masks of {args.size}^2 written in {time.perf_counter() - start:.1f} s",
                  file=sys.stderr)
        runs = {(p, v): [] for p in PLACEMENTS for v in VARIANTS}
        for r in range(args.rounds):
            for placement in PLACEMENTS:
                for variant in VARIANTS:  # side by side: the same load on both
                    cmd = [sys.executable, __file__, "--child", variant, "--store", store, "--steps",
                           str(args.steps), "--patches", str(args.patches), "--seed", str(r),
                           "--placement", placement, "--cache-mb", str(args.cache_mb)]
                    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                    runs[placement, variant].append(json.loads(out.strip().splitlines()[-1]))
    result = {"size": args.size, "masks": args.masks, "steps": args.steps, "patches": args.patches,
              "rounds": args.rounds, "cache_mb": args.cache_mb, "cpus": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 1)}
    for placement in PLACEMENTS:
        part = {v: {k: round(statistics.median(r[k] for r in runs[placement, v]), 4)
                    for k in runs[placement, v][0]} for v in VARIANTS}
        w, n = part["whole"], part["windowed"]
        part["ratio_windowed_over_whole"] = {k: round(n[k] / w[k], 3) for k in w if w[k]}
        result[placement] = part
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.masks} masks of {args.size}^2, {args.steps} compositions of {args.patches} 256-px patches, "
          f"{args.rounds} round(s), medians; windowed cache {args.cache_mb} MB; {result['cpus']} CPUs, "
          f"load {result['load_avg_1min']}")
    for placement in PLACEMENTS:
        print(f"\npatches {placement}:")
        print(f"{'':10} {'cold s':>8} {'warm s':>8} {'mean s':>8} {'read MB':>9} {'peak RSS MB':>12} "
              f"{'RSS growth MB':>14}")
        for variant in VARIANTS:
            v = result[placement][variant]
            print(f"{variant:10} {v['cold_s']:8.3f} {v['warm_median_s']:8.4f} {v['mean_s_per_step']:8.3f} "
                  f"{v['read_mb']:9.0f} {v['peak_rss_mb']:12.0f} {v['rss_growth_mb']:14.0f}")
        ratios = result[placement]["ratio_windowed_over_whole"]
        print("windowed / whole: " + ", ".join(f"{k} {v:g}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
