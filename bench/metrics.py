"""Benchmark: evaluating a huge mask pair from a store in bounded memory.

    python bench/metrics.py [--size 20000] [--json] [--workers 2] [--smoke-test]

Builds a synthetic SIZE x SIZE truth (random thick line segments, rasterised lazily block by
block), erases square gaps, makes a "prediction" that fills half of the gaps and adds a few
false specks, writes truth/input/gaps and the prediction into two mask stores, then runs
`distpaint.metrics.evaluate` on the stored layers in a fresh subprocess and reports its wall
time and peak RSS (getrusage ru_maxrss), next to the same measurement on a small mask
evaluated whole in memory, so the ratios (throughput, memory per mask) come from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import dask.array as da
import numpy as np
from scipy import ndimage
from skimage.draw import line
from skimage.morphology import disk

CHUNK = 1024


def _segments(size: int, seed: int) -> np.ndarray:
    """(n, 5) segments y0, x0, y1, x1, radius: a road/root-like density (~1.5% foreground)."""
    rng = np.random.default_rng(seed)
    n = max(8, int(size * size / 40_000))
    y0, x0 = rng.uniform(0, size, n), rng.uniform(0, size, n)
    angle, length = rng.uniform(0, np.pi, n), rng.uniform(40, 400, n)
    y1, x1 = y0 + length * np.sin(angle), x0 + length * np.cos(angle)
    radius = rng.integers(1, 4, n)
    return np.stack([y0, x0, y1, x1, radius], 1)


def _truth_block(segs: np.ndarray, block_info=None) -> np.ndarray:
    (y0, y1), (x0, x1) = block_info[None]["array-location"]
    pad = 4
    out = np.zeros((y1 - y0 + 2 * pad, x1 - x0 + 2 * pad), bool)
    lo_y, hi_y = np.minimum(segs[:, 0], segs[:, 2]), np.maximum(segs[:, 0], segs[:, 2])
    lo_x, hi_x = np.minimum(segs[:, 1], segs[:, 3]), np.maximum(segs[:, 1], segs[:, 3])
    hit = (hi_y >= y0 - pad) & (lo_y < y1 + pad) & (hi_x >= x0 - pad) & (lo_x < x1 + pad)
    for r in (1, 2, 3):
        canvas = np.zeros_like(out)
        for sy, sx, ey, ex, _ in segs[hit & (segs[:, 4] == r)]:
            rr, cc = line(int(sy) - y0 + pad, int(sx) - x0 + pad, int(ey) - y0 + pad,
                          int(ex) - x0 + pad)
            keep = (rr >= 0) & (rr < out.shape[0]) & (cc >= 0) & (cc < out.shape[1])
            canvas[rr[keep], cc[keep]] = True
        out |= ndimage.binary_dilation(canvas, structure=disk(r))
    return out[pad:-pad, pad:-pad]


def _region_block(seed: int, block_info=None) -> np.ndarray:
    """Square gaps of 5-15 px, ~1 per 4000 px^2, per block from its own seed."""
    (y0, y1), (x0, x1) = block_info[None]["array-location"]
    rng = np.random.default_rng([seed, y0, x0])
    out = np.zeros((y1 - y0, x1 - x0), bool)
    n = out.size // 4000
    ys, xs = rng.integers(0, out.shape[0], n), rng.integers(0, out.shape[1], n)
    for y, x, s in zip(ys, xs, rng.integers(5, 16, n), strict=True):
        out[y : y + s, x : x + s] = True
    return out


def _pred_block(inp: np.ndarray, gaps: np.ndarray, block_info=None) -> np.ndarray:
    (y0, _), (x0, _) = block_info[None]["array-location"]
    rng = np.random.default_rng([7, y0, x0])
    cols = (np.arange(x0, x0 + inp.shape[1]) // 64) % 2 == 0  # fill the gaps in half the columns
    specks = rng.random(inp.shape) < 2e-5
    return inp | (gaps & cols[None, :]) | specks


def make_pair(size: int, seed: int = 0) -> dict[str, da.Array]:
    """Lazy truth, input, gaps and prediction of one synthetic sample."""
    template = da.empty((size, size), dtype=bool, chunks=CHUNK)
    truth = da.map_blocks(_truth_block, _segments(size, seed), dtype=bool, chunks=template.chunks,
                          meta=np.empty((0, 0), bool))
    region = da.map_blocks(_region_block, seed, dtype=bool, chunks=template.chunks,
                           meta=np.empty((0, 0), bool))
    gaps = truth & region
    inp = truth & ~region
    pred = da.map_blocks(_pred_block, inp, gaps, dtype=bool)
    return {"truth": truth, "input": inp, "gaps": gaps, "pred": pred}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(ref: str, pred: str, workers: int | None) -> None:
    """Evaluate the stored pair and print {seconds, peak_rss_mb, import_rss_mb, metrics}."""
    from distpaint.data.store import MaskStore
    from distpaint.metrics import EvalConfig, evaluate

    import_rss = _rss_mb()
    refs, preds = MaskStore.open(ref), MaskStore.open(pred)
    start = time.perf_counter()
    metrics = evaluate(preds.dask("s", "mask"), refs.dask("s", "truth"), refs.dask("s", "mask"),
                       refs.dask("s", "gaps"), EvalConfig(workers=workers))
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss_mb": _rss_mb(), "import_rss_mb": import_rss,
                      "metrics": {k: (None if isinstance(v, float) and np.isnan(v) else v)
                                  for k, v in metrics.items()}}))


def in_memory(size: int, workers: int | None) -> dict:
    """Evaluate a small pair whole in memory (NumPy, one tile) for the side-by-side ratio."""
    from distpaint.metrics import EvalConfig, evaluate

    arrays = {k: v.compute() for k, v in make_pair(size, seed=1).items()}
    start = time.perf_counter()
    evaluate(arrays["pred"], arrays["truth"], arrays["input"], arrays["gaps"],
             EvalConfig(workers=workers))
    return {"size": size, "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20000)
    parser.add_argument("--small", type=int, default=4096, help="side of the in-memory mask")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--smoke-test", action="store_true", help="2500 px, 1024 px small")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.workers)
        return
    if args.smoke_test:
        args.size, args.small = 2500, 1024
    from distpaint.data.store import MaskStore

    with tempfile.TemporaryDirectory(prefix="distpaint-bench-") as tmp:
        pair = make_pair(args.size)
        start = time.perf_counter()
        ref = MaskStore.create(os.path.join(tmp, "ref.zarr"))
        ref.write("s", {"mask": pair["input"], "gaps": pair["gaps"], "truth": pair["truth"]})
        MaskStore.create(os.path.join(tmp, "pred.zarr")).write("s", {"mask": pair["pred"]})
        write_s = time.perf_counter() - start
        cmd = [sys.executable, __file__, "--child", os.path.join(tmp, "ref.zarr"),
               os.path.join(tmp, "pred.zarr")]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        big = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    small = in_memory(args.small, args.workers)
    mpix_big = args.size**2 / 1e6 / big["seconds"]
    mpix_small = args.small**2 / 1e6 / small["seconds"]
    one_mask_mb = args.size**2 / 2**20  # one bool mask held in memory
    result = {
        "size": args.size,
        "chunk": CHUNK,
        "write_stores_s": round(write_s, 1),
        "evaluate_s": round(big["seconds"], 1),
        "peak_rss_mb": round(big["peak_rss_mb"]),
        "rss_after_imports_mb": round(big["import_rss_mb"]),
        "one_mask_mb": round(one_mask_mb),
        "peak_rss_over_one_mask": round(big["peak_rss_mb"] / one_mask_mb, 3),
        "tiled_mpix_per_s": round(mpix_big, 2),
        "in_memory": {"size": args.small, "evaluate_s": round(small["seconds"], 2),
                      "mpix_per_s": round(mpix_small, 2)},
        "tiled_over_in_memory_throughput": round(mpix_big / mpix_small, 3),
        "cpus": os.cpu_count(),
        "metrics": {k: big["metrics"][k] for k in ("pixel_diff", "components_truth",
                                                  "components_input", "components_pred",
                                                  "holes_truth", "cldice", "rel_pixel_diff",
                                                  "rel_component_diff", "false_fill",
                                                  "skeleton_recall_gaps")},
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>34}: {value}")


if __name__ == "__main__":
    main()
