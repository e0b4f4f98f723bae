"""Question: where does a model's clDice fall short? The truth's centreline it misses, by the
kind and length of the erased segment it lies in, and the ceiling of a method that can only
bridge visible pieces (a one-off diagnostic; answered in docs/HISTORY.md, roads stage 6).

    python research/cldice_parts.py --data runs/benchset-seed0 --kind roads --models roads
    python research/cldice_parts.py --data runs/benchset-seed0 --models roads roads:passes=2
    python research/cldice_parts.py --smoke-test        # a tiny benchmark set built in a temp folder

Each erased segment (8-connected component of the gaps M) is a *bridge* when it touches the
input at two or more separate places (it joins visible pieces, or closes a loop), a *dead end*
when it touches it at one (an erased stub: nothing in the input says how far it went) and an
*island* when at none. Rows, averaged over the whole masks of the kind:

- `input`: the damaged mask itself;
- `oracle`: the input plus every bridge segment exactly (the truth wherever two visible ends
  exist), so its clDice is the ceiling for a method that closes gaps between visible pieces;
- each model (`bench/quality.py --models` specs, options such as `:passes=2` included).

Per row: cl_precision (share of the output's centreline inside the truth), cl_sensitivity
(share of the truth's centreline inside the output), clDice (their harmonic mean; as
`distpaint.metrics` but on whole-image skeletons), then the share of the truth's centreline
missed inside bridge / dead-end / island segments, that share for bridge segments by their
centreline length, and the output's centreline outside the truth by distance to the truth
(<= 2 px: a stroke drawn beside its true place; > 2 px: invented).
"""

from __future__ import annotations


import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from distpaint.benchmark.methods import model_method
from distpaint.data.benchset import diagnostic_args, diagnostic_store
from distpaint.metrics.topology import cldice_from_counts

_EIGHT = np.ones((3, 3), bool)
_GROUPS = ("bridge", "dead end", "island")
LENGTHS = (0, 20, 40, 80, 160)
"""Lower edges of the bridge-segment centreline-length bins (px)."""


def segment_groups(given: np.ndarray, gaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(labels of the erased segments (0 outside), group per label: 0 bridge, 1 dead end,
    2 island; index 0 unused). A segment's contacts are the separate 8-connected pieces of
    the input pixels 8-adjacent to it."""
    labels, n = ndi.label(gaps, structure=_EIGHT)
    group = np.full(n + 1, -1)
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
        segment = labels[box] == i
        contacts = ndi.label(ndi.binary_dilation(segment, structure=_EIGHT) & given[box],
                             structure=_EIGHT)[1]
        group[i] = 0 if contacts >= 2 else 1 if contacts == 1 else 2
    return labels, group


def oracle(given: np.ndarray, labels: np.ndarray, group: np.ndarray) -> np.ndarray:
    """The input plus every bridge segment."""
    return given | ((labels > 0) & (group[labels] == 0))


def parts(pred: np.ndarray, truth: np.ndarray, labels: np.ndarray, group: np.ndarray) -> dict[str, np.ndarray]:
    """Counts of one mask (see the module docstring)."""
    s_pred, s_truth = skeletonize(pred), skeletonize(truth)
    missed = s_truth & ~pred
    seg_group = np.where(labels > 0, group[labels], -1)
    n = labels.max()
    index = np.arange(1, n + 1)
    length = ndi.sum(s_truth, labels, index)
    lost = ndi.sum(missed, labels, index)
    bridge = group[1:] == 0
    bins = np.digitize(length, LENGTHS) - 1
    outside = s_pred & ~truth
    distance = ndi.distance_transform_edt(~truth)[outside]
    return {
        "pred_skeleton": np.array(s_pred.sum()), "pred_in_truth": np.array((s_pred & truth).sum()),
        "truth_skeleton": np.array(s_truth.sum()), "truth_in_pred": np.array((s_truth & pred).sum()),
        "missed_group": np.array([(missed & (seg_group == g)).sum() for g in range(len(_GROUPS))]),
        "bridge_length": np.bincount(bins[bridge], weights=length[bridge], minlength=len(LENGTHS)),
        "bridge_lost": np.bincount(bins[bridge], weights=lost[bridge], minlength=len(LENGTHS)),
        "outside": np.array([(distance <= 2).sum(), (distance > 2).sum()]),
    }


def _cl(c: dict[str, np.ndarray]) -> tuple[float, float, float]:
    cl = cldice_from_counts(*(float(c[k]) for k in ("pred_skeleton", "pred_in_truth",
                                                    "truth_skeleton", "truth_in_pred")))
    return cl.precision, cl.sensitivity, cl.cldice


def _row(label: str, per_mask: list[dict[str, np.ndarray]]) -> str:
    cl = np.mean([_cl(c) for c in per_mask], axis=0)
    total = {k: sum(c[k] for c in per_mask) for k in per_mask[0]}
    skeleton = max(float(total["truth_skeleton"]), 1.0)
    missed = " / ".join(f"{m / skeleton:.3f}" for m in total["missed_group"])
    by_length = " / ".join(f"{lost / max(n, 1):.2f}" for lost, n in zip(total["bridge_lost"], total["bridge_length"]))
    outside = " / ".join(f"{o / max(float(total['pred_skeleton']), 1.0):.3f}" for o in total["outside"])
    return f"{label:26s} {cl[0]:.4f} {cl[1]:.4f} {cl[2]:.4f} | {missed:>19s} | {by_length:>26s} | {outside}"


def main(argv: list[str] | None = None) -> None:
    args = diagnostic_args(__doc__.split("\n\n")[0], argv, kind="roads", models=["roads"])
    with diagnostic_store(args.data, args.kind, smoke_test=args.smoke_test) as (data, store):
        names = store.names()[:args.limit]
        samples = []
        for name in names:
            given, truth, gaps = (np.asarray(store.array(name, layer)[:], bool)
                                  for layer in ("mask", "truth", "gaps"))
            samples.append((given, truth, *segment_groups(given, gaps)))
        print(f"{data} whole/{args.kind}: {len(names)} masks; bridge-segment length bins from "
              f"{', '.join(map(str, LENGTHS))} px")
        print(f"{'method':26s} cl_prec cl_sens clDice | missed in bridge / dead end / island"
              f" | missed share of bridges by length | outside truth <=2 / >2 px")
        rows = {"input": lambda given, *_: given, "oracle": lambda given, _t, labels, group: oracle(given, labels, group)}
        for spec in args.models:
            method = model_method(spec)
            rows[method.name] = lambda given, *_, method=method: method.repair(given)
        for label, repair in rows.items():
            print(_row(label, [parts(repair(*s), s[1], s[2], s[3]) for s in samples]), flush=True)


if __name__ == "__main__":
    main()
