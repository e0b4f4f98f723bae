"""Question: can a stricter rule for which added pieces a repair keeps, or another threshold,
make a model's repair of thin real lines safer than the default `--keep bridges` at 0.5?

    python research/keep_rules.py --real runs/real --model general --kinds rivers drawings
        [--split val] [--thresholds 0.4 0.5 0.6 0.7] [--cache runs/scratch/keep_rules]
        [--upsample auto] [--rules bridges two-ends skeleton-ends cut-holes]

Motivation: on 1.5-px rivers `general`'s clDice gain is tiny (+0.0001 to +0.003 on the
validation split), so a single misplaced bridge turns it negative (one test river mask harmed).
For every complete mask of the real benchmark's `--split` (validation by default: rules are
chosen there, never on test) the model's probabilities are computed once over the whole mask
(cached as .npz under --cache) and each rule is applied to `input OR p > threshold`:

- `bridges`: the shipped policy (`distpaint.infer.keep.keep_added`, whole mask, no open edges);
- `thin`: bridges, each redrawn at the width of the line it joins (the skeleton of the piece
  with its input neighbourhood, dilated to the input's median half width there, inside the
  piece; the piece is kept whole if the thin version no longer joins what it joined);
- `two-ends`: bridges that touch a dead end of *each* of two input pieces (a cut across a line
  leaves a dead end on both sides; a natural dead end beside another line leaves one);
- `skeleton-ends`: bridges after which the skeleton near the piece has fewer end points than
  before and none on the piece (a bridge that leaves a spur of its own is dropped); shipped since
  as `--keep ends` (`distpaint.infer.keep`), which this rule now calls;
- `cut-holes`: bridges, but a hole fill only where the hole can be a cut inside a line (only a
  line wider than the cut surrounds it: some input pixel within r + 2 px of the hole lies
  farther than r from the background, r the hole's inscribed radius); the inside of a loop of
  thin lines (a river island, the eye of a glyph) is left open.

Hole fills (a piece covering most of a hole of the input) are kept by every other rule.
`--upsample auto|F` repairs as `distpaint infer --upsample` does (through the benchmark's model
method, one forward per threshold, no cache); without it the probabilities at 1x are cached. Prints per
rule and threshold: masks harmed (clDice lowered or pieces added), mean and minimum clDice gain,
skeleton recall in the gaps, relative component difference, false fill and spur length.
"""

from __future__ import annotations

import argparse
import functools
import pathlib

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy import ndimage as ndi
from skimage.morphology import disk, skeletonize

from distpaint.benchmark.methods import model_method
from distpaint.data.real.build import open_real
from distpaint.infer.keep import DEAD_END_REACH, _context, _filled_hole, _holes, _skeleton_ends, keep_added
from distpaint.infer.predictor import resolve_model
from distpaint.infer.tiling import round_up
from distpaint.metrics.evaluation import evaluate

EIGHT = np.ones((3, 3), bool)
CONTEXT = 48
"""Px of input around a piece its dead ends and line width are read from (as keep.py)."""
RULES = ("bridges", "thin", "two-ends", "skeleton-ends", "cut-holes")
KEYS = ("cldice_gain", "skeleton_recall_gaps", "rel_component_diff", "false_fill", "spur_length")


def _thin(piece: np.ndarray, local: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """The piece redrawn at the joined line's width (in the context window's frame)."""
    near = ndi.binary_dilation(inside, iterations=4) & local
    centre = skeletonize(inside | near) & inside
    line = skeletonize(local) & near
    half = float(np.median(ndi.distance_transform_edt(local)[line])) if line.any() else 1.0
    radius = max(int(round(half - 1)), 0)
    thin = (ndi.binary_dilation(centre, disk(radius)) if radius else centre) & inside
    joined = ndi.label(ndi.binary_dilation(inside, EIGHT) & local, EIGHT)[1]
    still = ndi.label(ndi.binary_dilation(thin, EIGHT) & local, EIGHT)[1]
    return thin if still >= min(2, joined) else inside


def _two_ends(local: np.ndarray, inside: np.ndarray) -> bool:
    to_piece = ndi.distance_transform_edt(~inside)
    ends = _skeleton_ends(local)
    close = ends & (to_piece <= ndi.distance_transform_edt(local) + DEAD_END_REACH)
    pieces = ndi.label(local, EIGHT)[0]
    joined = set(np.unique(pieces[ndi.binary_dilation(inside, EIGHT) & local])) - {0}
    return len(joined & set(np.unique(pieces[close]))) >= 2


def _hole_is_a_cut(hole: np.ndarray, given: np.ndarray) -> bool:
    """Rule `cut-holes` (module docstring) for one hole of `given`."""
    rows, cols = np.nonzero(hole)
    bbox = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    radius = float(ndi.distance_transform_edt(np.pad(hole[bbox], 1)).max())
    reach = int(np.ceil(radius)) + 2
    margin = reach + int(np.ceil(radius)) + 1  # a distance above r needs no background that near
    h, w = given.shape
    box = (slice(max(bbox[0].start - margin, 0), min(bbox[0].stop + margin, h)),
           slice(max(bbox[1].start - margin, 0), min(bbox[1].stop + margin, w)))
    ring = (ndi.distance_transform_edt(~hole[box]) <= reach) & given[box]
    return bool(np.any(ndi.distance_transform_edt(given[box])[ring] > radius))


def apply_rule(rule: str, output: np.ndarray, given: np.ndarray) -> np.ndarray:
    """The repaired mask under `rule` (module docstring) for model output `output`."""
    if rule == "skeleton-ends":  # shipped as `--keep ends`
        return keep_added(output, given, "ends")
    kept = keep_added(output, given, "bridges")
    if rule == "bridges":
        return kept
    labels, _ = ndi.label(kept & ~given, EIGHT)
    holes, area = _holes(given)
    if rule == "cut-holes":
        for i, box in enumerate(ndi.find_objects(labels), start=1):
            piece = labels[box] == i
            hole = _filled_hole(piece, holes[box], area)
            if hole and not _hole_is_a_cut(holes == hole, given):
                kept[box] &= ~piece
        return kept
    out = given.copy()
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        piece = labels[box] == i
        if _filled_hole(piece, holes[box], area):
            out[box] |= piece
            continue
        local, inside = _context(piece, given, box)
        y0 = box[0].start - max(box[0].start - CONTEXT, 0)
        x0 = box[1].start - max(box[1].start - CONTEXT, 0)
        if rule == "thin":
            out[box] |= _thin(piece, local, inside)[y0:y0 + piece.shape[0], x0:x0 + piece.shape[1]]
        elif rule == "two-ends" and _two_ends(local, inside):
            out[box] |= piece
    return out


def probabilities(model, mask: np.ndarray) -> np.ndarray:
    """The model's probabilities over the whole (small) mask, one forward."""
    h, w = mask.shape
    align = int(model.align)
    x = np.zeros((1, 1, round_up(h, align), round_up(w, align)), np.float32)
    x[0, 0, :h, :w] = mask
    return np.asarray(model(x))[0, 0, :h, :w]


def _raw_repair(model: str, threshold: float, upsample: str, threads: int, mask: np.ndarray) -> np.ndarray:
    """The model's output with every added piece (keep=all) at `threshold`, up-sampled as
    `distpaint infer --upsample` does."""
    return _method(f"{model}:keep=all,threshold={threshold},upsample={upsample}", threads).repair_many(mask[None])[0]


@functools.lru_cache(maxsize=None)
def _method(spec: str, threads: int):
    return model_method(spec, threads=threads)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", required=True, help="the real benchmark (distpaint realdata build)")
    parser.add_argument("--model", default="general")
    parser.add_argument("--kinds", nargs="+", default=["rivers", "drawings"])
    parser.add_argument("--split", default="val")
    parser.add_argument("--thresholds", nargs="+", type=float, default=[0.5])
    parser.add_argument("--rules", nargs="+", choices=RULES, default=list(RULES))
    parser.add_argument("--cache", default="runs/scratch/keep_rules")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--upsample", default=None,
                        help="auto or a factor: repair as `distpaint infer --upsample` (no cache)")
    args = parser.parse_args(argv)
    model = None
    bench = open_real(args.real)
    console = Console()
    for kind in args.kinds:
        store = bench.store(args.split, kind)
        cache = pathlib.Path(args.cache) / pathlib.Path(args.model).name / args.split / kind
        cache.mkdir(parents=True, exist_ok=True)
        rows: dict[tuple[str, float], list[dict]] = {}
        for name in store.names():
            layers = {k: np.asarray(store.array(name, k)[...], bool) for k in ("mask", "truth", "gaps")}
            probs = None
            if args.upsample is None:
                path = cache / f"{name}.npy"
                if not path.exists():
                    model = model or resolve_model(args.model, threads=args.threads)
                    np.save(path, probabilities(model, layers["mask"]).astype(np.float16))
                probs = np.load(path).astype(np.float32)
            for threshold in args.thresholds:
                if probs is None:
                    output = _raw_repair(args.model, threshold, args.upsample, args.threads, layers["mask"])
                else:
                    output = layers["mask"] | (probs > threshold)
                for rule in args.rules:
                    pred = apply_rule(rule, output, layers["mask"])
                    rows.setdefault((rule, threshold), []).append(
                        evaluate(pred, layers["truth"], layers["mask"], layers["gaps"]))
        at = "" if args.upsample is None else f", --upsample {args.upsample}"
        table = Table(title=f"{args.model} on {args.split} {kind} ({len(store.names())} masks{at})")
        for column in ("rule", "threshold", "harmed", "gain mean", "gain min", "recall", "rel. comp.",
                       "false fill", "spur px"):
            table.add_column(column, justify="left" if column == "rule" else "right")
        for (rule, threshold), evals in rows.items():
            mean = {k: float(np.nanmean([e[k] for e in evals])) for k in KEYS}
            harmed = sum(e["no_harm"] < 1 for e in evals)
            table.add_row(rule, f"{threshold:g}", f"{harmed}/{len(evals)}", f"{mean['cldice_gain']:+.4f}",
                          f"{min(e['cldice_gain'] for e in evals):+.4f}", f"{mean['skeleton_recall_gaps']:.3f}",
                          f"{mean['rel_component_diff']:.3f}", f"{mean['false_fill']:.3f}",
                          f"{mean['spur_length']:.1f}")
        console.print(table)


if __name__ == "__main__":
    main()
