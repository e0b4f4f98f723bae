"""Cost of repairing thin lines up-sampled (`--upsample 2`, what `auto` picks for them) against
the model's own resolution, side by side in one run.

    python bench/upsample.py [--model general] [--size 2048] [--repeats 2] [--threads 2]
    python bench/upsample.py --smoke-test          # 256 px, one repeat, seconds

Draws a --size mask of thin lines (`distpaint synth sketch`, seed 0, width scale 0.5: lines
1-2 px wide, what `auto` up-samples), cuts it (`mix` gaps, seed 1), then runs `run_inference`
(tiles of 1024, `--keep bridges`, batch 1) at factors 1 and 2 in turn, --repeats times each
(the best kept: the cores are shared), and prints the seconds, the megapixels per second, the
ratio of the two, the factor `auto` chose for the mask, and the pixels each added. The model
sees 4x the pixels at factor 2, so about 4x the time is expected; the keep policy and the
reading and writing do not grow.
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile
import time

import numpy as np
import torch
import zarr
from zarr.storage import LocalStore

from distpaint.data.gaps import GapConfig, corrupt
from distpaint.data.store import compressors
from distpaint.data.synth import SynthConfig, synth_array
from distpaint.infer.engine import InferConfig, output_layout, run_inference
from distpaint.infer.model import with_options
from distpaint.infer.predictor import resolve_model
from distpaint.infer.upsample import choose_upsample, line_width

FACTORS = (1, 2)


def thin_mask(size: int) -> np.ndarray:
    """A cut sketch of thin lines, `size` px a side."""
    truth = synth_array("sketch", (size, size), 0, SynthConfig(width_scale=0.5))
    damaged, _ = corrupt(truth, GapConfig(kind="mix"), np.random.default_rng(1))
    return damaged


def _run(mask: np.ndarray, base, work: pathlib.Path, factor: int, tile: int) -> tuple[float, int]:
    infer = InferConfig(tile=tile, batch=1, upsample=factor)
    chunks, shards = output_layout(mask.shape, tile)
    group = zarr.open_group(LocalStore(work / f"out-{factor}.zarr"), mode="w", zarr_format=3)
    out = group.create_array("mask", shape=mask.shape, chunks=chunks, shards=shards, dtype=bool,
                             fill_value=False, compressors=compressors())
    start = time.perf_counter()
    stats = run_inference(mask, with_options(base, infer), {"mask": out}, infer)
    return time.perf_counter() - start, stats.added_pixels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="general")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke-test", action="store_true")
    args = parser.parse_args(argv)
    size, repeats, tile = (256, 1, 256) if args.smoke_test else (args.size, args.repeats, 1024)
    torch.set_num_threads(args.threads)
    mask = thin_mask(size)
    base = resolve_model(args.model, threads=args.threads)
    print(f"{size}^2 thin-line mask: mean line width {line_width(mask):.2f} px, "
          f"auto chooses {choose_upsample(mask)}")
    with tempfile.TemporaryDirectory(prefix="distpaint-upsample-") as tmp:
        work = pathlib.Path(tmp)
        _run(mask[:tile, :tile], base, work, 1, tile)  # warm-up
        seconds: dict[int, list[float]] = {f: [] for f in FACTORS}
        added: dict[int, int] = {}
        for _ in range(repeats):
            for factor in FACTORS:
                s, added[factor] = _run(mask, base, work, factor, tile)
                seconds[factor].append(s)
    best = {f: min(v) for f, v in seconds.items()}
    for factor in FACTORS:
        print(f"upsample {factor}: {best[factor]:.2f} s ({size * size / 1e6 / best[factor]:.2f} Mpx/s), "
              f"{added[factor]} px added")
    print(f"time ratio upsample 2 / 1: {best[2] / best[1]:.2f}")


if __name__ == "__main__":
    main()
