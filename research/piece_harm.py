"""Question: which pieces a repair adds lower clDice on thin real masks, and would a floor on
each piece's mean probability, chosen on validation, keep them out?

    python research/piece_harm.py --real runs/real --model general --kinds rivers
        [--split val] [--floors 0.5 0.55 0.6 0.65] [--only w1.5px] [--min-confidence F] [--threads 2]

Motivation: on 1.5-px rivers `general`'s clDice gain is a few thousandths (+0.0016 to +0.0045
on validation and test) and one test river loses 0.0029. clDice counts centreline pixels:
precision = |S(out) & truth| / |S(out)|, sensitivity = |S(truth) & out| / |S(truth)| (S the
whole-image skeleton), so each added piece has an exact share of the counts: the output's
centreline on it outside the truth (what it costs precision) and the truth's centreline it
covers (what it gives sensitivity). Pieces are split by where they lie: *in a gap* (within
3 px of the erased pixels M, the false-fill distance) or *away* from every gap (a false bridge:
where the truth itself has a break, or a dead end joined to a neighbour).

Each mask is repaired as `distpaint infer --model MODEL` does with the card's defaults
(threshold, keep policy, confidence floor unless --min-confidence, up-sampling) on the whole
mask, one forward. Printed per mask: clDice
of the input and the repair, the pieces in gaps (count, centreline off the truth, truth
centreline covered) and away from gaps, and the clDice gain with the pieces whose mean
probability is under each `--floors` value dropped (exact: skeletons recomputed).
"""

from __future__ import annotations

import argparse

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from distpaint.data.real.build import open_real
from distpaint.infer.engine import InferConfig
from distpaint.infer.keep import keep_added
from distpaint.infer.model import PredictorsByFactor
from distpaint.infer.predictor import Predictor, resolve_model
from distpaint.infer.self_check import choose_min_confidence, parse_min_confidence
from distpaint.infer.tiling import round_up
from distpaint.infer.upsample import choose_upsample, parse_upsample
from distpaint.metrics.topology import cldice_from_counts
from distpaint.weights import inference_defaults

EIGHT = np.ones((3, 3), bool)
NEAR_GAP = 3.0
"""Px from the erased pixels within which a piece counts as in a gap (the false-fill distance)."""


def cldice(out: np.ndarray, truth: np.ndarray, truth_skeleton: np.ndarray) -> float:
    """clDice of `out` against `truth` from whole-image skeletons."""
    skeleton = skeletonize(out)
    return cldice_from_counts(int(skeleton.sum()), int((skeleton & truth).sum()),
                              int(truth_skeleton.sum()), int((truth_skeleton & out).sum())).cldice


def piece_table(out: np.ndarray, given: np.ndarray, truth: np.ndarray, truth_skeleton: np.ndarray,
                gaps: np.ndarray, probs: np.ndarray) -> list[dict]:
    """One row per added piece (8-connected piece of out & ~given): in a gap or not, its
    output centreline pixels off the truth, the truth centreline pixels (of `truth_skeleton`)
    it covers, its mean probability."""
    labels, n = ndi.label(out & ~given, EIGHT)
    if n == 0:
        return []
    index = np.arange(1, n + 1)
    skeleton = skeletonize(out)
    near = ndi.distance_transform_edt(~gaps) <= NEAR_GAP if gaps.any() else np.zeros_like(gaps)
    off = ndi.sum_labels(skeleton & ~truth, labels, index)
    covered = ndi.sum_labels(truth_skeleton, labels, index)
    in_gap = ndi.maximum(near, labels, index)
    mean_p = ndi.mean(probs, labels, index)
    return [{"in_gap": bool(g), "off_truth": int(o), "covered": int(c), "mean_p": float(p)}
            for g, o, c, p in zip(in_gap, off, covered, mean_p, strict=True)]


class Repairer:
    """The model's whole-mask probabilities and repair with its card's defaults."""

    def __init__(self, model: str, threads: int, min_confidence: float | str | None = None) -> None:
        chosen = inference_defaults(model)
        self.threshold, self.keep = chosen["threshold"], chosen["keep"]
        # None: `auto`, chosen per mask by the self-check
        self.min_confidence = parse_min_confidence(chosen["min_confidence"] if min_confidence is None
                                                   else min_confidence)
        self.upsample = parse_upsample(chosen["upsample"])  # None: auto
        base = resolve_model(model, threads=threads)
        self.align = int(base.align)
        self.predictors = PredictorsByFactor(base, InferConfig(tile=1024, batch=8, threshold=self.threshold,
                                                               keep=self.keep))

    def forward(self, mask: np.ndarray) -> tuple[np.ndarray, Predictor, InferConfig]:
        """(probabilities of `mask`, the predictor and InferConfig at its up-sampling factor)."""
        h, w = mask.shape
        factor = int(choose_upsample(mask) if self.upsample is None else self.upsample)
        predictor = self.predictors[factor]
        x = np.zeros((1, 1, round_up(h, self.align), round_up(w, self.align)), np.float32)
        x[0, 0, :h, :w] = mask
        return np.asarray(predictor(x))[0, 0, :h, :w], predictor, self.predictors.infer_for(factor)

    def __call__(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(repaired mask, probabilities) of `mask`."""
        probs, predictor, infer = self.forward(mask)
        floor = self.min_confidence
        if floor is None:
            floor = choose_min_confidence(mask, predictor, infer).floor
        return self.keep_at(mask, probs, floor), probs

    def keep_at(self, mask: np.ndarray, probs: np.ndarray, floor: float) -> np.ndarray:
        """The repair of `mask` from its probabilities with the card's threshold and keep policy
        and confidence floor `floor`."""
        return keep_added(mask | (probs > self.threshold), mask, self.keep, probs=probs,
                          min_confidence=floor)


def real_mask_arguments(parser: argparse.ArgumentParser, real_required: bool = True
                        ) -> argparse.ArgumentParser:
    """The options of the research scripts that repair masks of the real benchmark: --real,
    --model, --kinds, --split, --only (research/harm_rate.py shares them)."""
    parser.add_argument("--real", required=real_required, default="",
                        help="the real benchmark (distpaint realdata build)")
    parser.add_argument("--model", default="general")
    parser.add_argument("--kinds", nargs="+", default=["rivers"])
    parser.add_argument("--split", default="val")
    parser.add_argument("--only", default="", help="only the masks whose name contains this")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = real_mask_arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]))
    parser.add_argument("--floors", nargs="+", type=float, default=[0.5, 0.55, 0.6, 0.65])
    parser.add_argument("--min-confidence", default=None,
                        help="the repair's own floor (default: the card's; 0 for none; auto)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    repair = Repairer(args.model, args.threads, args.min_confidence)
    bench = open_real(args.real)
    console = Console()
    for kind in args.kinds:
        store = bench.store(args.split, kind)
        table = Table(title=f"{args.model} on {args.split} {kind}: added pieces and clDice")
        for column in ("mask", "clDice in", "gain", "in gaps: n / off truth / covers",
                       "away: n / off truth", *(f"gain, floor {f:g}" for f in args.floors)):
            table.add_column(column, justify="left" if column == "mask" else "right")
        for name in (n for n in store.names() if args.only in n):
            given, truth, gaps = (np.asarray(store.array(name, k)[...], bool) for k in ("mask", "truth", "gaps"))
            out, probs = repair(given)
            truth_skeleton = skeletonize(truth)
            before = cldice(given, truth, truth_skeleton)
            rows = piece_table(out, given, truth, truth_skeleton, gaps, probs)
            inside = [r for r in rows if r["in_gap"]]
            away = [r for r in rows if not r["in_gap"]]
            # the floor as `distpaint infer --min-confidence` applies it (after the policy)
            floors = [cldice(keep_added(out, given, "all", probs=probs, min_confidence=f), truth,
                             truth_skeleton) - before for f in args.floors]
            table.add_row(name, f"{before:.4f}", f"{cldice(out, truth, truth_skeleton) - before:+.4f}",
                          f"{len(inside)} / {sum(r['off_truth'] for r in inside)} / "
                          f"{sum(r['covered'] for r in inside)}",
                          f"{len(away)} / {sum(r['off_truth'] for r in away)}",
                          *(f"{g:+.4f}" for g in floors))
        console.print(table)


if __name__ == "__main__":
    main()
