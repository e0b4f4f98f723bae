"""Question: how far are the synthetic generators from real masks? The statistics of thin
structures, real against synthetic, side by side per kind (used to calibrate `SynthConfig`).

    python research/real_vs_synth.py --real runs/real [--split train] [--size 2048] [--seeds 4]
        [--kinds roads ...] [--synth density=2 width_scale=1.5 ...] [--json]

For the complete masks of the real benchmark's split (`distpaint realdata build`; training
split by default, the one the synthetic generators are calibrated to) and for synthetic masks
of the matching kind (roads -> roads, rivers -> vessels, drawings -> sketch; `--seeds` masks of
`--size` px from `distpaint.data.synth`), prints per kind:

- width: 2 x the distance to background at centreline pixels, percentiles 10 / 50 / 90 (px);
- dead ends per 1000 px of centreline (skeleton end points);
- junctions per 1000 px of centreline, and the shares of degree 3, 4 and 5+;
- tortuosity: branch length over the straight distance between its ends, median over the
  branches longer than 20 px (1 = straight);
- branch length, median (px);
- holes (4-connected background not touching the border) per Mpx and their median area (px);
- foreground share.

Skeletons by scikit-image, branches and node degrees by skan. Pixels, not metres: the real
masks are drawn at several resolutions, the synthetic ones at several width scales.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from distpaint.data.real.build import open_real
from distpaint.data.synth import SynthConfig, synth_array

SYNTH_OF = {"roads": "roads", "rivers": "vessels", "drawings": "sketch"}
"""The synthetic kind each real kind is compared with."""
STATS = ("width_p10", "width_p50", "width_p90", "dead_ends_per_kpx", "junctions_per_kpx",
         "degree3", "degree4", "degree5plus", "tortuosity", "branch_median", "holes_per_mpx",
         "hole_area_median", "foreground")


def mask_stats(mask: np.ndarray) -> dict[str, float]:
    """The statistics of one complete mask (module docstring), and the raw lists to pool."""
    from skan import Skeleton, summarize

    mask = np.asarray(mask, bool)
    skel = skeletonize(mask)
    length = int(skel.sum())
    widths = 2 * ndi.distance_transform_edt(mask)[skel]
    out: dict = {"length": length, "widths": widths.tolist(), "pixels": mask.size,
                 "fg": int(mask.sum())}
    if length < 2:
        return {**out, "ends": 0, "degrees": [], "tortuosity": [], "branches": [], "holes": []}
    graph = Skeleton(skel)
    degrees = np.asarray(graph.degrees)
    table = summarize(graph, separator="_")
    long = table[table["branch_distance"] > 20]
    ratio = (long["branch_distance"] / long["euclidean_distance"].clip(lower=1)).tolist()
    # the pixels of one junction touch: a junction is a cluster of degree >= 3 pixels, of the
    # cluster's highest degree
    dmap = np.zeros(skel.shape, np.int8)
    coords = graph.coordinates.astype(int)
    dmap[coords[:, 0], coords[:, 1]] = np.minimum(degrees, 8)
    labels, n = ndi.label(dmap >= 3, structure=np.ones((3, 3), bool))
    cluster_degree = ndi.maximum(dmap, labels, index=np.arange(1, n + 1)) if n else np.zeros(0)
    background, nb = ndi.label(~mask)
    edge = np.unique(np.concatenate([background[0], background[-1], background[:, 0],
                                     background[:, -1]]))
    areas = np.bincount(background.ravel())
    holes = [int(areas[k]) for k in range(1, nb + 1) if k not in set(edge.tolist())]
    return {**out, "ends": int((dmap == 1).sum()), "degrees": np.asarray(cluster_degree).tolist(),
            "tortuosity": ratio, "branches": table["branch_distance"].tolist(), "holes": holes}


def pooled(parts: list[dict]) -> dict[str, float]:
    """Pool the per-mask statistics of one group into the reported figures."""
    length = sum(p["length"] for p in parts) or 1
    widths = np.concatenate([np.asarray(p["widths"]) for p in parts] or [np.zeros(1)])
    degrees = np.concatenate([np.asarray(p["degrees"]) for p in parts] or [np.zeros(0)])
    pixels = sum(p["pixels"] for p in parts)
    holes = [h for p in parts for h in p["holes"]]
    tort = [t for p in parts for t in p["tortuosity"]]
    branches = [b for p in parts for b in p["branches"]]
    nj = max(len(degrees), 1)
    return {
        "width_p10": float(np.percentile(widths, 10)), "width_p50": float(np.median(widths)),
        "width_p90": float(np.percentile(widths, 90)),
        "dead_ends_per_kpx": 1000 * sum(p["ends"] for p in parts) / length,
        "junctions_per_kpx": 1000 * len(degrees) / length,
        "degree3": float((degrees == 3).sum() / nj), "degree4": float((degrees == 4).sum() / nj),
        "degree5plus": float((degrees >= 5).sum() / nj),
        "tortuosity": float(np.median(tort)) if tort else float("nan"),
        "branch_median": float(np.median(branches)) if branches else float("nan"),
        "holes_per_mpx": 1e6 * len(holes) / pixels,
        "hole_area_median": float(np.median(holes)) if holes else float("nan"),
        "foreground": sum(p["fg"] for p in parts) / pixels,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", required=True, help="real benchmark folder")
    parser.add_argument("--split", default="train", choices=["train", "val", "test"])
    parser.add_argument("--size", type=int, default=2048, help="side of the synthetic masks")
    parser.add_argument("--seeds", type=int, default=4, help="synthetic masks per kind")
    parser.add_argument("--limit", type=int, default=12, help="real masks per kind (largest first)")
    parser.add_argument("--kinds", nargs="+", default=list(SYNTH_OF), choices=list(SYNTH_OF))
    parser.add_argument("--synth", nargs="*", default=[], metavar="KEY=VALUE",
                        help="SynthConfig options of the synthetic masks (e.g. density=2), to "
                             "calibrate them against the real ones")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    options = {k: float(v) for k, v in (item.split("=", 1) for item in args.synth)}
    synth_config = SynthConfig(**options)
    real = open_real(args.real)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for kind in args.kinds:
        synth_kind = SYNTH_OF[kind]
        if args.split == "train":
            from distpaint.data.store import MaskStore

            store = MaskStore.open(real.train_store(kind))
            layer = "mask"
        else:
            store, layer = real.store(args.split, kind), "truth"
        names = sorted(store.names(), key=lambda n: -np.prod(store.shape(n)))[: args.limit]
        real_parts = [mask_stats(store.array(n, layer)[...]) for n in names]
        synth_parts = [mask_stats(synth_array(synth_kind, (args.size, args.size), 1000 + s,
                                              synth_config)) for s in range(args.seeds)]
        results[kind] = {"real": pooled(real_parts), f"synthetic {synth_kind}": pooled(synth_parts)}
    if args.json:
        print(json.dumps(results))
        return 0
    console = Console()
    for kind, groups in results.items():
        table = Table(title=f"{kind}: real {args.split} split vs synthetic")
        table.add_column("statistic")
        for group in groups:
            table.add_column(group, justify="right")
        for stat in STATS:
            table.add_row(stat, *(f"{groups[g][stat]:.3g}" for g in groups))
        console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
