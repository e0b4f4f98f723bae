"""Question: over the random cuts of the judging protocol, how often does a repair lower clDice or
add pieces on a validation mask, with a fixed confidence floor and with floors chosen per mask by
the self-check (`--min-confidence auto`) under several decision rules?

    python research/harm_rate.py --real runs/real [--model general] [--kinds rivers]
        [--seeds 1 2 3] [--fixed 0.55] [--rules 0:0.002 1.5:0.002] [--one-px] [--only w1.5px]
        [--calibration runs/calibration.json]
    python research/harm_rate.py --wide-rivers /work/cache/real ...       # research/river_regions.py
    python research/harm_rate.py --boundary-maps runs/cache-boundaries ... # research/boundary_maps.py

The real benchmark's validation masks are one draw of the protocol's cuts (seed 0); a default
that does no harm on that draw may still harm a mask on another. Here each validation mask's
truth is cut again with each of `--seeds` (`distpaint.data.gaps`, kind `cut`), and repaired as
`distpaint infer --model MODEL` does with the card's threshold, keep policy and up-sampling:
once per `--fixed` floor and once per self-check rule `Z:MIN_GAIN` (the lowest floor whose
expected gain - Z x spread exceeds MIN_GAIN, none kept where none does:
`distpaint.infer.self_check.choose_floor`; `auto` is 1.5:0.002). The model runs once per
(mask, seed) and the check once, so every column sees the same probabilities. With `--one-px` the truth is first
skeletonised (the 1-px stand-ins of research/one_px_lines.py). Prints per column the masks x
seeds harmed (clDice lowered or a component added), the smallest and mean clDice gain and the
mean relative component difference. With `--calibration FILE`, also the check's expected gain,
its spread and the gain measured at every candidate floor, per mask and draw (written to FILE),
and per floor how far the measured gain lies from the expected one in spreads
(`calibration_summary`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from skimage.morphology import skeletonize

from distpaint.data.gaps import GapConfig, corrupt
from distpaint.data.real.build import open_real
from distpaint.infer.engine import decide
from distpaint.infer.keep import keep_added
from distpaint.infer.self_check import MIN_GAIN, choose_floor, choose_min_confidence
from distpaint.metrics.evaluation import evaluate
from piece_harm import Repairer, real_mask_arguments  # research/ is on a script's path
from boundary_maps import boundary_masks
from river_regions import wide_river_masks


def parse_rule(text: str) -> tuple[float, float]:
    """`Z:MIN_GAIN` -> (z, min_gain)."""
    z, _, min_gain = text.partition(":")
    return float(z), float(min_gain or 0.0)


def calibration_summary(calibration: list[dict]) -> list[dict]:
    """Per candidate floor: how the check's expected gain compares with the gain measured on the
    protocol's own cuts. `z` is (measured - expected) / spread: a calibrated check gives z a mean
    near 0 and a standard deviation near 1. `taken` counts the draws whose expected gain exceeds
    MIN_GAIN, `harmed` those of them whose clDice fell. Draws where the floor keeps nothing
    (expected and measured both 0) are left out."""
    summary = []
    for floor in sorted({f for row in calibration for f in row["floors"]}, key=float):
        cells = [row["floors"][floor] for row in calibration if floor in row["floors"]]
        cells = [c for c in cells if c["expected"] != 0.0 or c["measured"] != 0.0]
        if not cells:
            continue
        z = np.array([(c["measured"] - c["expected"]) / c["spread"] for c in cells if c["spread"] > 0])
        taken = [c for c in cells if c["expected"] > MIN_GAIN]
        summary.append({"floor": float(floor), "n": len(cells),
                        "bias": float(np.mean([c["measured"] - c["expected"] for c in cells])),
                        "z_mean": float(z.mean()) if len(z) else float("nan"),
                        "z_std": float(z.std()) if len(z) else float("nan"),
                        "z_p5": float(np.percentile(z, 5)) if len(z) else float("nan"),
                        "taken": len(taken), "harmed": sum(c["measured"] < 0 for c in taken)})
    return summary


def calibration_table(calibration: list[dict]) -> Table:
    """`calibration_summary` as a table."""
    table = Table(title="the check's expected gain against the measured gain, per candidate floor")
    for head in ("floor", "n", "mean measured - expected", "z: mean", "z: std", "z: 5th pct",
                 "expected > MIN_GAIN", "of them harmed"):
        table.add_column(head, justify="right")
    for row in calibration_summary(calibration):
        table.add_row(f"{row['floor']:g}", str(row["n"]), f"{row['bias']:+.4f}", f"{row['z_mean']:+.2f}",
                      f"{row['z_std']:.2f}", f"{row['z_p5']:+.2f}", str(row["taken"]), str(row["harmed"]))
    return table


def masks(args: argparse.Namespace) -> Iterator[tuple[str, np.ndarray]]:
    """(name, truth) of each mask to cut again: the real benchmark's `--split` masks of
    `--kinds`, or with `--wide-rivers CACHE` the extra validation rivers of
    research/river_regions.py, or with `--boundary-maps CACHE` the `--split` boundary maps of
    research/boundary_maps.py (both kinds, 1 and 2 px wide, at its default 3 km/px)."""
    if args.wide_rivers:
        yield from wide_river_masks(Path(args.wide_rivers), args.only)
        return
    if args.boundary_maps:
        yield from boundary_masks(Path(args.boundary_maps), args.split, args.only)
        return
    bench = open_real(args.real)
    for kind in args.kinds:
        store = bench.store(args.split, kind)
        for name in (n for n in store.names() if args.only in n):
            yield name, np.asarray(store.array(name, "truth")[...], bool)


def main(argv: list[str] | None = None) -> None:
    parser = real_mask_arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]),
                                 real_required=False)
    parser.add_argument("--wide-rivers", default="", metavar="CACHE",
                        help="cut the extra validation rivers of research/river_regions.py, drawn "
                             "from this real-data cache, instead of the benchmark's masks")
    parser.add_argument("--boundary-maps", default="", metavar="CACHE",
                        help="cut the --split boundary maps of research/boundary_maps.py, drawn "
                             "from this cache, instead of the benchmark's masks")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--fixed", nargs="*", type=float, default=[0.55])
    parser.add_argument("--rules", nargs="*", default=["0:0.002"])
    parser.add_argument("--one-px", action="store_true", help="skeletonise each truth first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calibration", default="",
                        help="also write, per mask and draw, the check's expected gain and spread and the "
                             "measured gain at every candidate floor to this JSON file")
    args = parser.parse_args(argv)
    if not (args.real or args.wide_rivers or args.boundary_maps):
        parser.error("give --real, --wide-rivers or --boundary-maps")
    repair = Repairer(args.model, args.threads)
    columns = [f"floor {f:g}" for f in args.fixed] + [f"auto z={r}" for r in args.rules]
    results: dict[str, list[dict]] = {c: [] for c in columns}
    calibration: list[dict] = []
    for name, truth in masks(args):
        truth = skeletonize(truth) if args.one_px else truth
        for seed in args.seeds:
            given, gaps = corrupt(truth, GapConfig(kind="cut"), np.random.default_rng(seed))
            probs, predictor, infer = repair.forward(given)
            output = decide(probs, given, (0, given.shape[0], 0, given.shape[1]), infer)
            check = choose_min_confidence(given, predictor, infer)
            floors = list(args.fixed) + [choose_floor(check.gains, check.spreads, *parse_rule(r))
                                         for r in args.rules]
            # each floor scored once: the columns and the calibration share the scores
            needed = set(floors) | (set(check.gains) if args.calibration else set())
            scored = {f: evaluate(keep_added(output, given, infer.pieces, probs=probs, min_confidence=f),
                                  truth, given, gaps) for f in needed}
            if args.calibration:
                calibration.append({"mask": f"{name}#{seed}", "floors": {
                    f"{f:g}": {"expected": check.gains[f], "spread": check.spreads[f],
                               "unexplained": check.unexplained[f],
                               "measured": scored[f]["cldice_gain"]}
                    for f in check.gains}})
            for column, floor in zip(columns, floors, strict=True):
                results[column].append({"mask": f"{name}#{seed}", "floor": floor, **scored[floor]})
    source = ("wide validation rivers" if args.wide_rivers else f"{args.split} boundary maps"
              if args.boundary_maps else f"{args.split} {' '.join(args.kinds)}")
    table = Table(title=f"{args.model} on {source}"
                        f"{' (1-px skeletons)' if args.one_px else ''}, cut seeds {args.seeds}")
    for head in ("column", "harmed", "smallest gain", "mean gain", "rel. comp.", "floors chosen"):
        table.add_column(head, justify="left" if head == "column" else "right")
    for column, rows in results.items():
        gains = [r["cldice_gain"] for r in rows]
        harmed = [r["mask"] for r in rows if not r["no_harm"]]
        floors = np.unique([r["floor"] for r in rows], return_counts=True)
        table.add_row(column, f"{len(harmed)}/{len(rows)}", f"{min(gains):+.4f}", f"{np.mean(gains):+.4f}",
                      f"{np.nanmean([r['rel_component_diff'] for r in rows]):.3f}",
                      " ".join(f"{f:g}x{n}" for f, n in zip(*floors, strict=True)))
    console = Console()
    console.print(table)
    if args.calibration:
        Path(args.calibration).write_text(json.dumps(calibration, indent=1))
        console.print(calibration_table(calibration))
    for column, rows in results.items():
        harmed = [f"{r['mask']} {r['cldice_gain']:+.4f}" for r in rows if not r["no_harm"]]
        if harmed:
            console.print(f"{column} harmed: " + ", ".join(harmed))


if __name__ == "__main__":
    main()
