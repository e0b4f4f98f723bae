"""Question: how much of what a repair paints on the uncut mask should the self-check count against
it (`GAP_ALLOWANCE`), and with which `MIN_GAIN`, so that `--min-confidence auto` harms no
validation mask or boundary-map stand-in and still repairs the validation rivers?

    python research/uncut_allowance.py --real runs/real [--kinds rivers drawings]
        [--maps borders coast] [--only NAME] [--allowances 0.75 1 1.25 1.5] [--min-gains 0.002 0.0025 0.003]
        [--bounds 1.5] [--wide-rivers CACHE --wide-seeds 1 2]

On boundary maps with coastlines `general` paints mostly where the mask is whole (bridges
between islands and the coast, filled islands): at the fixed floor 0.55 it lowers clDice on 5 of
the 8 validation coast maps of research/boundary_maps.py, by up to 0.017, while the first self-check,
which left out everything the repair of the uncut mask paints, expected a gain on every one.
The check now counts the centreline that repair adds beyond what the mask's own gaps would take
(as many as the protocol cuts, each taking `allowance` times what the check's own cuts took:
`distpaint.infer.self_check.floor_gains`). Here each validation mask (the real benchmark's
`--kinds`, and the validation regions of research/boundary_maps.py at 3 km/px, 1 and 2 px wide,
cut seed 7) is measured once (`self_check.measure`) and repaired once per floor from the same
probabilities; per allowance, MIN_GAIN and bound (`--bounds`: spreads below the expected gain,
`BOUND_SPREADS`) the floor the check would choose is looked up, and the masks harmed (clDice
lowered), the mean and smallest gain and the masks left unrepaired are printed per group. With
`--wide-rivers CACHE` the extra validation rivers of research/river_regions.py join, cut with
each of `--wide-seeds`.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
from rich.console import Console
from rich.table import Table
from skimage.morphology import skeletonize

from boundary_maps import LAYERS, boundary_masks  # research/ is on a script's path
from distpaint.data.gaps import GapConfig, corrupt
from distpaint.data.real.build import open_real
from distpaint.infer.keep import NO_REPAIR
from distpaint.infer.self_check import BOUND_SPREADS, CANDIDATE_FLOORS, choose_floor, floor_gains, measure
from piece_harm import Repairer, cldice
from river_regions import wide_river_masks


def masks(args: argparse.Namespace):
    """(group, name, damaged, truth) of every validation mask and stand-in."""
    store_of = open_real(args.real)
    for kind in args.kinds:
        store = store_of.store("val", kind)
        for name in (n for n in store.names() if args.only in n):
            yield kind, name, *(np.asarray(store.array(name, k)[...], bool) for k in ("mask", "truth"))
    for name, truth in boundary_masks(args.cache, "val", args.only, tuple(args.maps)):
        given, _ = corrupt(truth, GapConfig(kind="cut"), np.random.default_rng(7))
        yield f"{name.split('-')[0]} maps", name, given, truth
    if args.wide_rivers:
        for name, truth in wide_river_masks(pathlib.Path(args.wide_rivers), args.only):
            for seed in args.wide_seeds:
                given, _ = corrupt(truth, GapConfig(kind="cut"), np.random.default_rng(seed))
                yield "wide rivers", f"{name}#{seed}", given, truth


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", required=True)
    parser.add_argument("--model", default="general")
    parser.add_argument("--kinds", nargs="+", default=["rivers", "drawings"])
    parser.add_argument("--maps", nargs="*", default=sorted(LAYERS))
    parser.add_argument("--allowances", nargs="+", type=float, default=[0.75, 1.0, 1.25, 1.5])
    parser.add_argument("--min-gains", nargs="+", type=float, default=[0.002, 0.0025, 0.003])
    parser.add_argument("--bounds", nargs="+", type=float, default=[BOUND_SPREADS],
                        help="spreads below the expected gain (the self-check's BOUND_SPREADS)")
    parser.add_argument("--wide-rivers", default="", metavar="CACHE",
                        help="also the rivers of research/river_regions.py, from this real-data cache")
    parser.add_argument("--wide-seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--only", default="", help="only the masks and regions whose name contains this")
    parser.add_argument("--cache", type=pathlib.Path, default=pathlib.Path("runs/cache-boundaries"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    repair = Repairer(args.model, args.threads)
    seen = []  # (group, measurement, actual gain per floor)
    for group, name, given, truth in masks(args):
        probs, predictor, infer = repair.forward(given)
        skeleton = skeletonize(truth)
        before = cldice(given, truth, skeleton)
        actual = {f: cldice(repair.keep_at(given, probs, f), truth, skeleton) - before
                  for f in CANDIDATE_FLOORS}
        seen.append((group, measure(given, predictor, infer), actual))
        print(f"measured {name}", flush=True)
    table = Table(title=f"{args.model}, validation: harmed / mean gain / smallest gain / not repaired")
    groups = list(dict.fromkeys(g for g, _, _ in seen))
    for column in ("allowance", "MIN_GAIN", "bound", *groups):
        table.add_column(column, justify="right")
    for allowance in [None, *args.allowances]:
        for min_gain in args.min_gains:
            for bound in args.bounds:
                chosen = {g: [] for g in groups}
                for group, found, actual in seen:
                    floor = NO_REPAIR
                    if found.cuts >= 2:
                        gains, spreads, unexplained = floor_gains(found, allowance if allowance is not None else 1.0)
                        if allowance is None:  # the first check: the uncut repair left out
                            gains = {f: gains[f] - unexplained[f] for f in gains}
                        floor = choose_floor(gains, spreads, z=bound, min_gain=min_gain)
                    chosen[group].append(actual.get(floor, 0.0))
                table.add_row("left out" if allowance is None else f"{allowance:g}", f"{min_gain:g}", f"{bound:g}",
                              *(f"{sum(g < 0 for g in v)}/{len(v)} / {np.mean(v):+.4f} / {min(v):+.4f} / "
                                f"{sum(g == 0 for g in v)}" for v in chosen.values()))
    Console().print(table)


if __name__ == "__main__":
    main()
