"""Choosing a repair's confidence floor per mask from the mask itself
(`distpaint infer --min-confidence auto`).

Whether a model's bridges help depends on the mask, not only on the model: on lines 3 px wide
`general`'s bridges lie on the lines and raise clDice; on lines 1 px wide that meander they run
a pixel or two beside the line, or to the wrong neighbour, and lower it (docs/REAL_MASKS.md,
"Lines 1 px wide"). A fixed floor cannot serve both. The mask can tell which it is: away from
its own gaps, the damaged input is a truth. The self-check erases new cuts from the input, as
the judging protocol cuts (`distpaint.data.gaps`, kind `cut`: discs and ellipses of radius 4-11
px on the centreline, about 60 per Mpx), repairs them with the job's own predictor, threshold
and keep policy, and scores, for each floor of `CANDIDATE_FLOORS`, the clDice of the input with
the new cuts and the kept pieces that reach them (within `NEAR_CUT` px; pieces elsewhere close
the input's own gaps, which the input cannot judge) against the input. The cuts are
`CUT_DENSITY` times as dense as the protocol's, so that one pass has enough of them, and gains
are divided by it (a gain at the protocol's density). The floor with the largest gain is chosen;
if even that gains under `MIN_GAIN` clDice, the repair keeps no added piece (floor
`NO_REPAIR`): a mask on which the model cannot show a clear gain is returned as it came. Measured on the real validation masks and on 1-px
stand-ins of them (docs/REAL_MASKS.md, "`--min-confidence auto`").

The check reads at most `CHECK_PIXELS` of the mask, in windows of at most `WINDOW` px a side
spread evenly over it (those with foreground), never a whole giant mask; each window is one
forward pass, with no halo (its edges are the check's image edges). Cost: one more forward
pass over the pixels checked (about 1.4x the repair's time on a mask of 1 Mpx, up-sampled). The cuts come from `seed` and each
window's place, so the choice is deterministic in the input: a resumed job chooses again as
the interrupted one did.

    check = choose_min_confidence(mask, predictor, infer_config)
    check.floor   # one of CANDIDATE_FLOORS, or NO_REPAIR
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from distpaint.data.gaps import GapConfig, corrupt
from distpaint.errors import ConfigError
from distpaint.infer.engine import InferConfig, decide
from distpaint.infer.keep import NO_REPAIR, check_min_confidence, confident_pieces, keep_added
from distpaint.infer.predictor import Predictor
from distpaint.infer.tiling import round_up
from distpaint.metrics.topology import cldice_from_counts

__all__ = ["CANDIDATE_FLOORS", "CUT_DENSITY", "MIN_GAIN", "NEAR_CUT", "WINDOW", "CHECK_PIXELS",
           "SelfCheck", "parse_min_confidence", "choose_min_confidence"]

CANDIDATE_FLOORS = (0.55, 0.65, 0.75, 0.85, 0.95)
"""The floors the check chooses from: from `general`'s fixed default (0.55) to one that keeps
only the bridges the model is all but sure of."""
CUT_DENSITY = 2.0
"""New cuts per Mpx, over the protocol's (about 60): the protocol's density leaves the choice
on small masks of 1-px lines to chance (docs/REAL_MASKS.md)."""
MIN_GAIN = 0.001
"""Least clDice gain (at the protocol's density) on the mask's own cuts for the repair to keep
any piece: between the validation rivers drawn 1.5 px wide (0.0024 and up at their best floor)
and their 1-px skeletons (0.0005 and under), where any floor's true gain is within +-0.001
(docs/REAL_MASKS.md)."""
NEAR_CUT = 3
"""Px around a new cut within which a kept piece counts as its repair (the false-fill distance)."""
WINDOW = 1024
"""Longest side of a window the check repairs in one forward pass."""
CHECK_PIXELS = 4 * 1024 * 1024
"""Most pixels of the mask the check reads (about 4 Mpx: masks up to that size are checked whole)."""

_EIGHT = np.ones((3, 3), bool)


def parse_min_confidence(value: Any) -> float | None:
    """`--min-confidence`, a card's `inference.min_confidence` or a quality spec's
    `min_confidence=`: None for `auto` (choose per mask), else the floor, checked."""
    if value == "auto":
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"--min-confidence must be auto or a number in [0, 1], got {value!r}") from None
    return check_min_confidence(value)


@dataclass(frozen=True)
class SelfCheck:
    """What the check chose for one mask."""

    floor: float
    """The floor chosen: one of CANDIDATE_FLOORS, or NO_REPAIR."""
    gains: dict[float, float] = field(default_factory=dict)
    """clDice gain on the mask's own cuts (at the protocol's density), per candidate floor."""
    cuts: int = 0
    """New cuts repaired."""
    pixels: int = 0
    """Pixels of the mask the check read."""

    def as_attrs(self) -> dict:
        """The record kept in the output's attributes."""
        return {"floor": self.floor, "cuts": self.cuts, "pixels": self.pixels,
                "gains": {f"{f:g}": round(g, 6) for f, g in self.gains.items()}}


def _windows(shape: tuple[int, int]) -> list[tuple[slice, slice]]:
    """The mask split into a grid of near-equal windows of at most WINDOW px a side."""
    rows, cols = (math.ceil(n / WINDOW) for n in shape)
    ys = np.linspace(0, shape[0], rows + 1).round().astype(int)
    xs = np.linspace(0, shape[1], cols + 1).round().astype(int)
    return [(slice(ys[i], ys[i + 1]), slice(xs[j], xs[j + 1]))
            for i in range(rows) for j in range(cols)]


def _checked_windows(mask: Any) -> list[tuple[int, np.ndarray]]:
    """(index in the grid, window) of the windows with foreground the check reads: all of them
    up to CHECK_PIXELS, else as many as fit, spread evenly over the grid (an empty one's place
    taken by the next window with foreground; at most 4x as many windows read as used, unless
    none of them holds any)."""
    grid = _windows(tuple(int(n) for n in mask.shape))
    area = max((w[0].stop - w[0].start) * (w[1].stop - w[1].start) for w in grid)
    budget = max(1, CHECK_PIXELS // area)
    spread = np.linspace(0, len(grid), min(budget, len(grid)), endpoint=False).astype(int)
    order = list(dict.fromkeys([*spread.tolist(), *range(len(grid))]))  # the spread first
    chosen = []
    for read, index in enumerate(order):
        if read >= 4 * budget and chosen:  # a sparse giant mask: not every window is read
            break
        block = np.asarray(mask[grid[index]], dtype=bool)
        if block.any():
            chosen.append((index, block))
            if len(chosen) == budget:
                break
    return chosen


def _counts(out: np.ndarray, truth: np.ndarray, truth_skeleton: np.ndarray) -> np.ndarray:
    """clDice's four skeleton counts (`cldice_from_counts`' order) of `out` against `truth`."""
    skeleton = skeletonize(out)
    return np.array([skeleton.sum(), (skeleton & truth).sum(), truth_skeleton.sum(),
                     (truth_skeleton & out).sum()], np.int64)


def _cldice(counts: np.ndarray) -> float:
    return cldice_from_counts(*(int(c) for c in counts)).cldice


def choose_min_confidence(mask: Any, predictor: Predictor, config: InferConfig,
                          seed: int = 0) -> SelfCheck:
    """The floor for `mask` (a 2-D bool NumPy, Zarr or Dask array) repaired by `predictor`
    (up-sampled and refined as the job will run it) with `config`'s threshold and keep policy
    (module docstring)."""
    align = int(predictor.align)
    windows = _checked_windows(mask)
    totals = np.zeros((len(CANDIDATE_FLOORS) + 1, 4), np.int64)  # [before | each floor, counts]
    cuts = 0
    for index, truth in windows:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
        damaged, gaps = corrupt(truth, GapConfig(kind="cut", density=CUT_DENSITY), rng)
        if not gaps.any():
            continue
        cuts += int(ndi.label(gaps, _EIGHT)[1])
        h, w = truth.shape
        x = np.zeros((1, 1, round_up(h, align), round_up(w, align)), np.float32)
        x[0, 0, :h, :w] = damaged
        probs = np.asarray(predictor(x), np.float32)[0, 0, :h, :w]
        kept = keep_added(decide(probs, damaged, (0, h, 0, w), config), damaged, config.pieces) & ~damaged
        labels, n = ndi.label(kept, _EIGHT)
        reaches = np.zeros(n + 1, bool)
        reaches[np.unique(labels[ndi.binary_dilation(gaps, _EIGHT, iterations=NEAR_CUT)])] = True
        reaches[0] = False
        repaired = reaches[labels]
        truth_skeleton = skeletonize(truth)
        totals[0] += _counts(damaged, truth, truth_skeleton)
        for k, floor in enumerate(CANDIDATE_FLOORS, start=1):
            totals[k] += _counts(damaged | confident_pieces(repaired, probs, floor), truth, truth_skeleton)
    pixels = sum(block.size for _, block in windows)
    if cuts == 0:  # no centreline to cut: nothing the repair could do either
        return SelfCheck(NO_REPAIR, {}, 0, pixels)
    before = _cldice(totals[0])
    gains = {floor: (_cldice(totals[k]) - before) / CUT_DENSITY
             for k, floor in enumerate(CANDIDATE_FLOORS, start=1)}
    best = max(CANDIDATE_FLOORS, key=lambda f: (gains[f], -f))  # ties: the lower floor
    return SelfCheck(best if gains[best] >= MIN_GAIN else NO_REPAIR, gains, cuts, pixels)
