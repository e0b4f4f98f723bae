"""Question: does a model's repair stay harmless on lines 1 px wide (boundary maps and glyphs are
often drawn so), and which up-sampling factor or confidence floor would make it so?

    python research/one_px_lines.py --real runs/real --model general [--split val]
        [--specs upsample=1 upsample=2 upsample=3] [--seed 0]
    python research/one_px_lines.py --real runs/real --specs min_confidence=0.55 min_confidence=0.75

The real benchmark has no line under 1.5 px, so each thin validation mask (the 1.5-px rivers,
the thin glyphs and icons) stands in for one: its truth's skeleton (8-connected, 1 px wide) is
the complete mask, cut as the judging protocol cuts (`distpaint.data.gaps`, kind `cut`, seed
`--seed`). Each `--specs` entry is repaired as `bench/quality.py --models MODEL:SPEC` does (the
card's defaults for what it leaves out) and scored against the 1-px truth. Prints per mask the
clDice gain, relative component difference, skeleton recall in the gaps and the no-harm verdict,
then per spec the smallest and mean gain and the masks without harm. At 1 px a bridge counts
for clDice only where its centreline is exactly on the line, which is the harshest case.
"""

from __future__ import annotations

import argparse

import numpy as np
from rich.console import Console
from rich.table import Table
from skimage.morphology import skeletonize

from distpaint.benchmark.methods import model_method
from distpaint.data.gaps import GapConfig, corrupt
from distpaint.data.real.build import open_real
from distpaint.metrics.evaluation import evaluate

KEYS = ("cldice_gain", "rel_component_diff", "skeleton_recall_gaps", "no_harm")


def one_px_case(truth: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(1-px truth, its cut version, the gaps) of a thin mask's truth."""
    line = skeletonize(truth)
    cut, gaps = corrupt(line, GapConfig(kind="cut"), np.random.default_rng(seed))
    return line, cut, gaps


def thin_masks(store, kind: str) -> list[str]:
    """The validation masks that stand in for 1-px ones: 1.5-px rivers, thin drawings."""
    return [n for n in store.names() if ("w1.5px" in n if kind == "rivers" else "-thin-" in n)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", required=True, help="the real benchmark (distpaint realdata build)")
    parser.add_argument("--model", default="general")
    parser.add_argument("--split", default="val")
    parser.add_argument("--kinds", nargs="+", default=["rivers", "drawings"])
    parser.add_argument("--specs", nargs="+", default=["upsample=1", "upsample=2", "upsample=3"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    methods = {spec: model_method(f"{args.model}:{spec}", threads=args.threads) for spec in args.specs}
    bench = open_real(args.real)
    table = Table(title=f"{args.model} on 1-px skeletons of {args.split} masks (gain / rel. comp. / recall / no harm)")
    table.add_column("mask")
    for spec in args.specs:
        table.add_column(spec, justify="right")
    scores: dict[str, list[dict]] = {spec: [] for spec in args.specs}
    for kind in args.kinds:
        store = bench.store(args.split, kind)
        for name in thin_masks(store, kind):
            line, cut, gaps = one_px_case(np.asarray(store.array(name, "truth")[...], bool), args.seed)
            cells = []
            for spec, method in methods.items():
                e = evaluate(method.repair(cut), line, cut, gaps)
                scores[spec].append(e)
                cells.append(f"{e['cldice_gain']:+.4f} / {e['rel_component_diff']:.3f} / "
                             f"{e['skeleton_recall_gaps']:.3f} / {'yes' if e['no_harm'] else 'NO'}")
            table.add_row(name, *cells)
    table.add_row("smallest gain, mean gain, no harm", *(
        f"{min(e['cldice_gain'] for e in s):+.4f}, {np.mean([e['cldice_gain'] for e in s]):+.4f}, "
        f"{sum(int(e['no_harm']) for e in s)}/{len(s)}" for s in scores.values()))
    Console().print(table)


if __name__ == "__main__":
    main()
