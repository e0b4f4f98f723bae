"""Default tile side: a fixed 1024 against `auto_tile` (from the halo), side by side in one run.

    python bench/auto_tile.py [--models general-synthetic general roads] [--size 4096] [--repeats 2] [--threads 2]
    python bench/auto_tile.py --smoke-test     # 768 px, --base-tile 256, one repeat, seconds

For each shipped model, `run_inference` (Zarr targets, batch 1, skip-empty off, shards of 4096)
repairs the same dense synthetic roads mask (`distpaint synth roads`, seed 0, --size px) with
tiles of --base-tile px and with the tile `auto_tile` picks for the model's halo, alternating,
--repeats times each (the best kept: the cores are shared). Prints per model the halo, both
tiles, the window pixels per forward (memory grows with them), Mpx/s of mask pixels, the speed
ratio auto / fixed and whether both outputs are identical (tiled inference does not depend on
the tile, so they must be). A model whose auto tile is --base-tile is reported, not timed.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import tempfile
import time

import numpy as np
import torch
import zarr
from zarr.storage import LocalStore

from distpaint.data.store import compressors
from distpaint.data.synth import synth_array
from distpaint.infer.engine import InferConfig, make_grid, output_layout, run_inference
from distpaint.infer.predictor import resolve_model

SHARD = 4096


def _run(mask: np.ndarray, predictor, out: pathlib.Path, tile: int | None) -> tuple[float, np.ndarray]:
    config = InferConfig(tile=tile, batch=1, skip_empty=False)
    grid = make_grid(mask.shape, predictor, config)
    chunks, shards = output_layout(mask.shape, grid.tile, shards=max(grid.tile, SHARD))
    group = zarr.open_group(LocalStore(out), mode="w", zarr_format=3)
    target = group.create_array("mask", shape=mask.shape, chunks=chunks, shards=shards, dtype=bool,
                                fill_value=False, compressors=compressors())
    start = time.perf_counter()
    run_inference(mask, predictor, {"mask": target}, config)
    return time.perf_counter() - start, np.asarray(target[:])


def _one(model: str, mask: np.ndarray, base: int, repeats: int, threads: int,
         work: pathlib.Path) -> dict:
    predictor = resolve_model(model, threads=threads)
    fixed = make_grid(mask.shape, predictor, InferConfig(tile=base))
    auto = make_grid(mask.shape, predictor, InferConfig(tile=None))
    row = {"model": model, "halo": auto.halo, "tile_fixed": base, "tile_auto": auto.tile,
           "window_mpx_fixed": round((base + 2 * auto.halo) ** 2 / 1e6, 3),
           "window_mpx_auto": round((auto.tile + 2 * auto.halo) ** 2 / 1e6, 3),
           "tiles_fixed": len(fixed), "tiles_auto": len(auto)}
    if auto.tile == base:
        return row
    _run(mask[:base, :base], predictor, work / "warm.zarr", base)  # warm-up
    seconds: dict[int | None, list[float]] = {base: [], None: []}
    outputs = {}
    for _ in range(repeats):
        for tile in (base, None):
            s, outputs[tile] = _run(mask, predictor, work / f"out-{tile}.zarr", tile)
            seconds[tile].append(s)
    mpx = mask.size / 1e6
    row.update(mpx_per_s_fixed=round(mpx / min(seconds[base]), 3),
               mpx_per_s_auto=round(mpx / min(seconds[None]), 3),
               ratio_auto_fixed=round(min(seconds[base]) / min(seconds[None]), 3),
               seconds_fixed=[round(s, 2) for s in seconds[base]],
               seconds_auto=[round(s, 2) for s in seconds[None]],
               identical=bool(np.array_equal(outputs[base], outputs[None])))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["general-synthetic", "general", "roads"])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--base-tile", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args()
    size, base, repeats = (768, 256, 1) if args.smoke_test else (args.size, args.base_tile, args.repeats)
    torch.set_num_threads(args.threads)
    mask = np.asarray(synth_array("roads", (size, size), 0), bool)
    with tempfile.TemporaryDirectory(prefix="distpaint-auto-tile-") as tmp:
        for model in args.models:
            print(json.dumps({"size": size, **_one(model, mask, base, repeats, args.threads,
                                                   pathlib.Path(tmp))}), flush=True)


if __name__ == "__main__":
    main()
