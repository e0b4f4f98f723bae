"""Cost of the keep policies (`--keep all|attached|bridges|ends`, and `ends` with
`--min-confidence F` or `auto`): streaming inference under each, side by side in one run.

    python bench/keep.py [--model general] [--kind roads] [--size 4096] [--repeats 2] [--threads 2]
        [--min-confidence 0.55]
    python bench/keep.py --smoke-test          # 512 px, one repeat, seconds

Builds a --size mask from corrupted whole masks of a fresh benchmark set (`make_benchset`,
seed 0, --kind, tiled 2 x 2 when --size is twice their 2048 px), runs `run_inference` (Zarr
targets, tiles of 1024, skip-empty on) with each of POLICIES in turn, --repeats
times each (the best kept: the cores are shared), and prints the seconds, the ratios to `all`
and the pixels each policy kept. `attached` labels the added pixels of every tile window;
`bridges` also labels the input's holes and skeletonises the input around each candidate
bridge, so its cost grows with the fill, not with the model; `ends` skeletonises that
neighbourhood twice more (with and without each bridge); `ends+floor` adds a mean of the
probabilities over each kept piece; `ends+auto` first chooses the floor by the self-check
(`distpaint.infer.self_check`: two more forward passes over up to 4 Mpx of the mask, timed with
the run); `ends+none` keeps no added piece (NO_REPAIR), so no tile is predicted (the output is
the input: `InferConfig.repairs_nothing`), and where `auto` chooses NO_REPAIR it costs the check
and that copy.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import tempfile
import time
from dataclasses import replace

import numpy as np
import torch
import zarr
from zarr.storage import LocalStore

from distpaint.data.benchset import BenchsetConfig, make_benchset, open_benchset
from distpaint.data.store import compressors
from distpaint.infer.engine import InferConfig, output_layout, run_inference
from distpaint.infer.keep import NO_REPAIR
from distpaint.infer.predictor import resolve_model
from distpaint.infer.self_check import choose_min_confidence


def _mask(work: pathlib.Path, kind: str, size: int, smoke: bool) -> np.ndarray:
    config = BenchsetConfig(seed=0, kinds=(kind,), patches=4, whole_count=1 if smoke else 4,
                            **({"whole_size": 512} if smoke else {}))
    make_benchset(work / "benchset", config, log=lambda _: None)
    store = open_benchset(work / "benchset").store("whole", kind)
    tiles = [np.asarray(store.array(name)[:], bool) for name in store.names()]
    side = tiles[0].shape[0]
    reps = -(-size // side)
    grid = [[tiles[(r * reps + c) % len(tiles)] for c in range(reps)] for r in range(reps)]
    return np.block(grid)[:size, :size]


POLICIES = ("all", "attached", "bridges", "ends", "ends+floor", "ends+auto", "ends+none")
"""The runs: each policy, and `ends` with the confidence floor (`--min-confidence F`, `auto`,
and NO_REPAIR: `--min-confidence 1`, what `auto` chooses where the model shows no gain)."""


def _run(mask: np.ndarray, predictor, work: pathlib.Path, policy: str, tile: int,
         fixed: float) -> tuple[float, int]:
    chunks, shards = output_layout(mask.shape, tile)
    group = zarr.open_group(LocalStore(work / f"out-{policy}.zarr"), mode="w", zarr_format=3)
    out = group.create_array("mask", shape=mask.shape, chunks=chunks, shards=shards, dtype=bool,
                             fill_value=False, compressors=compressors())
    keep, _, floored = policy.partition("+")
    floor = {"": 0.0, "floor": fixed, "auto": 0.0, "none": NO_REPAIR}[floored]  # auto: chosen below
    config = InferConfig(tile=tile, batch=1, keep=keep, min_confidence=floor)
    start = time.perf_counter()
    if floored == "auto":
        config = replace(config, min_confidence=choose_min_confidence(mask, predictor, config).floor)
    stats = run_inference(mask, predictor, {"mask": out}, config)
    return time.perf_counter() - start, stats.added_pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="general")
    parser.add_argument("--kind", default="roads")
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-confidence", type=float, default=0.55, help="the floor of `ends+floor`")
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args()
    size, repeats, tile = (512, 1, 256) if args.smoke_test else (args.size, args.repeats, 1024)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="distpaint-keep-") as tmp:
        work = pathlib.Path(tmp)
        mask = _mask(work, args.kind, size, args.smoke_test)
        predictor = resolve_model(args.model, threads=args.threads)
        _run(mask[:tile, :tile], predictor, work, "all", tile, 0.0)  # warm-up
        seconds: dict[str, list[float]] = {k: [] for k in POLICIES}
        added = {}
        for _ in range(repeats):
            for keep in POLICIES:
                s, added[keep] = _run(mask, predictor, work, keep, tile, args.min_confidence)
                seconds[keep].append(s)
    best = {k: min(v) for k, v in seconds.items()}
    print(json.dumps({"model": args.model, "kind": args.kind, "size": size, "tile": tile,
                      "seconds": {k: round(v, 3) for k, v in best.items()},
                      "ratio_to_all": {k: round(v / best["all"], 3) for k, v in best.items()},
                      "added": added,
                      "kept_share": {k: round(added[k] / max(added["all"], 1), 4) for k in POLICIES}}))


if __name__ == "__main__":
    main()
