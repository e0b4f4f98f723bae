"""Benchmark of synthetic mask generation: peak memory and throughput, 4k to 40k masks.

    .venv/bin/python bench/synth.py [--json] [--sizes 4096 16384 40000] [--kind roads] [--root-hairs]

Each size runs in a fresh child process (so its peak RSS, `ru_maxrss` of that child, is its
own) that writes one mask through the same path as `distpaint synth` (`write_synth` into a
temporary `MaskStore` on disk). The child also times rasterising alone (every block computed
and dropped, no Zarr) so the report shows whether the store's write or the rasteriser limits
throughput. Target: the 40k mask under 1500 MB peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

RSS_LIMIT_MB = 1500.0


def child(kind: str, size: int, store_dir: str, seed: int, root_hairs: bool = False) -> dict:
    """Runs in the child process: write one mask, then rasterise it again without storing."""
    import dask
    import numpy as np

    from distpaint.data.store import MaskStore
    from distpaint.data.synth import SynthConfig, synth_geometry, synth_mask
    from distpaint.data.synth.writer import write_synth

    rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    config = SynthConfig(root_hairs=root_hairs)
    geometry = synth_geometry(kind, (size, size), seed, config)
    geometry_s = time.perf_counter() - start
    capsules, geometry_mb = len(geometry), geometry.nbytes / 2**20
    del geometry
    store = MaskStore.create(store_dir, exist_ok=True)
    (sample,) = write_synth(store, kind, (size, size), seed, 1, config=config, measure=False)
    rss_write = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Rasterise only: reduce every block to its foreground count (blocks are dropped at once).
    start = time.perf_counter()
    counts = synth_mask(kind, (size, size), seed, config=config).map_blocks(
        lambda b: np.array([[b.sum()]]), chunks=(1, 1), dtype=np.int64)
    (foreground,) = dask.compute(counts.sum())
    raster_s = time.perf_counter() - start
    mpx = size * size / 1e6
    return {
        "kind": kind, "root_hairs": root_hairs, "size": size, "megapixels": mpx, "capsules": capsules,
        "geometry_mb": round(geometry_mb, 1), "geometry_s": round(geometry_s, 2),
        "write_s": round(sample.seconds, 2), "write_mpx_s": round(mpx / sample.seconds, 1),
        "raster_only_s": round(raster_s, 2), "raster_only_mpx_s": round(mpx / raster_s, 1),
        "foreground_pct": round(100 * int(foreground) / (size * size), 3),
        "peak_rss_mb_after_import": round(rss_import, 1), "peak_rss_mb": round(rss_write, 1),
        "peak_rss_mb_incl_raster_only": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run_size(kind: str, size: int, seed: int, root_hairs: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as tmp:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(size), "--kind", kind, "--seed", str(seed), "--store", f"{tmp}/s.zarr"]
            + (["--root-hairs"] if root_hairs else []),
            capture_output=True, text=True,
        )
    if out.returncode != 0:  # show the child's own traceback, not just its exit status
        sys.exit(f"bench/synth.py: {kind} {size}x{size} failed (exit {out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384, 40000])
    parser.add_argument("--kind", default="roads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root-hairs", action="store_true", help="roots: with 1-px root hairs (the largest geometry)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.kind, args.child, args.store, args.seed, args.root_hairs)))
        return
    rows = [run_size(args.kind, size, args.seed, args.root_hairs) for size in args.sizes]
    for row in rows:
        row["under_rss_limit"] = row["peak_rss_mb"] < RSS_LIMIT_MB
        # < 1: the Zarr write costs more than rasterising; ~1: the rasteriser is the limit.
        row["raster_share_of_write"] = round(row["raster_only_s"] / row["write_s"], 2)
    if args.json:
        print(json.dumps({"benchmark": "synth", "rss_limit_mb": RSS_LIMIT_MB, "results": rows}, indent=2))
        return
    for r in rows:
        print(f"{r['kind']} {r['size']}x{r['size']}: write {r['write_mpx_s']} Mpx/s ({r['write_s']} s), "
              f"raster only {r['raster_only_mpx_s']} Mpx/s, peak RSS {r['peak_rss_mb']} MB, "
              f"geometry {r['capsules']} capsules / {r['geometry_mb']} MB, fg {r['foreground_pct']} %")


if __name__ == "__main__":
    main()
