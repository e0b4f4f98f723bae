"""Question: where does a model's false fill lie? Added pixels outside the gaps, by distance to
the input and by what their added component touches (thickening, spurs, islands or bridges; a
one-off diagnostic, answered in docs/HISTORY.md).

    python research/false_fill_parts.py --data runs/benchset-seed0 --kind sketch --models general
    python research/false_fill_parts.py --data runs/benchset-seed1 --models a=RUN_A/average b=RUN_B/average
    python research/false_fill_parts.py --smoke-test        # a tiny benchmark set built in a temp folder

For each model (`bench/quality.py --models` specs: a shipped name, a checkpoint, `LABEL=...`,
options such as `:drop_islands=1`) and each whole mask of the kind, the added pixels (output &
~input) farther than the false-fill tolerance from every gap are the false fill (as in
`distpaint.metrics.false_fill`). They are counted by their distance to the nearest input
pixel (1 px = a layer painted beside an existing stroke: thickening) and by the 8-connected
added component they belong to: an island (touches no input component), one input component
(a spur or a thickened side), or two or more (a bridge). Pooled over the masks of the kind.
"""

from __future__ import annotations


import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import disk

from distpaint.benchmark.methods import model_method
from distpaint.data.benchset import diagnostic_args, diagnostic_store
from distpaint.metrics.pixel import DEFAULT_FILL_TOLERANCE

_EIGHT = np.ones((3, 3), bool)
_GROUPS = ("island", "one component", "bridge")


def touched_components(added: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Per pixel of `added`: how many 8-connected components of `given` its added component
    touches (8-adjacency), capped at 2; -1 outside `added`."""
    labels_added, n_added = ndi.label(added, structure=_EIGHT)
    labels_given, _ = ndi.label(given, structure=_EIGHT)
    pairs = set()
    h, w = added.shape
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            a = labels_added[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
            b = labels_given[max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)]
            both = (a > 0) & (b > 0)
            pairs.update(zip(a[both].tolist(), b[both].tolist()))
    count = np.zeros(n_added + 1, int)
    for a, _ in pairs:
        count[a] += 1
    out = np.minimum(count, 2)[labels_added]
    out[labels_added == 0] = -1
    return out


def parts(repaired: np.ndarray, given: np.ndarray, gaps: np.ndarray, tolerance: int) -> dict[str, np.ndarray]:
    """Counts of one mask: added, false (outside the gaps), false by distance to the input
    (1, 2, 3, >= 4 px) and false by the touched-component group (island, one, bridge)."""
    added = repaired & ~given
    false = added & ~ndi.binary_dilation(gaps, structure=disk(tolerance))
    distance = ndi.distance_transform_edt(~given)[false]
    by_distance = np.array([np.sum(np.rint(distance) == d) for d in (1, 2, 3)] + [np.sum(np.rint(distance) >= 4)])
    group = touched_components(added, given)[false]
    return {"added": np.array(added.sum()), "false": np.array(false.sum()), "distance": by_distance,
            "group": np.array([np.sum(group == g) for g in range(3)])}


def _shares(counts: np.ndarray, whole: int) -> str:
    """`counts` as shares of `whole`, "a / b / c"."""
    return " / ".join(f"{x / whole:.2f}" for x in counts)


def main(argv: list[str] | None = None) -> None:
    args = diagnostic_args(__doc__.split("\n\n")[0], argv, kind="sketch", models=["general"],
                           extra=lambda p: p.add_argument("--tolerance", type=int, default=DEFAULT_FILL_TOLERANCE))
    with diagnostic_store(args.data, args.kind, smoke_test=args.smoke_test) as (data, store):
        names = store.names()[:args.limit]
        print(f"{data} whole/{args.kind}: {len(names)} masks, tolerance {args.tolerance} px")
        print(f"{'model':24s} {'false fill':>10s} | false px at distance 1 / 2 / 3 / >=4 px from the input"
              f" | in an island / one-component / bridge")
        for spec in args.models:
            method = model_method(spec)
            total: dict[str, np.ndarray] = {}
            for name in names:
                given = np.asarray(store.array(name, "mask")[:], bool)
                counts = parts(method.repair(given), given, np.asarray(store.array(name, "gaps")[:], bool),
                               args.tolerance)
                total = {k: total.get(k, 0) + v for k, v in counts.items()}
            false = max(int(total["false"]), 1)
            print(f"{method.name:24s} {total['false'] / max(int(total['added']), 1):10.3f} | "
                  f"{_shares(total['distance'], false):>27s} | {_shares(total['group'], false)}")


if __name__ == "__main__":
    main()
