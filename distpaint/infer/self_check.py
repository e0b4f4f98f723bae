"""Choosing a repair's confidence floor per mask from the mask itself
(`distpaint infer --min-confidence auto`, `general`'s default).

Whether a model's bridges help depends on the mask, not only on the model: on lines 1.5 px wide
and wider `general`'s bridges mostly lie on the lines and raise clDice; on lines 1 px wide that
meander they run a pixel beside the line, or to the wrong neighbour, and lower it, while on 1-px
glyph strokes they still help (docs/REAL_MASKS.md, "Lines 1 px wide"). A fixed floor cannot serve
all three. The mask can tell which it is: away from its own gaps, the damaged input is a truth.
The self-check erases new cuts from the input as the judging protocol cuts
(`distpaint.data.gaps`, kind `cut`: discs and ellipses of radius 4-11 px on the centreline),
`CUT_DENSITY` times as densely, repairs them with the job's own predictor, threshold and keep
policy, and measures against the input what each kept piece that reaches a new cut (within
`NEAR_CUT` px) does to clDice: the centreline it adds on and off the line and the line's
centreline it covers, summed per cut and linearised (clDice = 2PS / (P + S) of the whole
checked area). Where the input has gaps of its own the input is no truth: pieces that reach no
new cut are left out, and so is any centreline where the repair of the uncut window paints too
(on a heavily cut mask the pieces at the new cuts run on into the old gaps). What the repair of
the uncut window paints is weighed as a whole instead: the mask's own gaps, at the protocol's
density, take about as much centreline as the check's cuts took (`GAP_ALLOWANCE`); the rest is
painted where the mask is whole (bridges between islands and coasts, filled islands, joined
natural dead ends: on boundary maps with coastlines most of what the repair adds) and its cost
to the centreline's precision is subtracted (`SelfCheck.unexplained`). Per candidate floor this
gives the expected clDice gain at the protocol's density and its spread from cut to cut. The
chosen floor is the lowest of `CANDIDATE_FLOORS` whose expected gain less `BOUND_SPREADS`
spreads still exceeds `MIN_GAIN`; where none does, the repair keeps no added piece
(`NO_REPAIR`): a mask on which the model cannot show a gain is returned as it came. Measured on
the real validation masks, on other draws of their cuts, on validation rivers of 16 more regions,
on 1-px stand-ins and on boundary maps (`research/harm_rate.py`, `research/boundary_maps.py`,
`research/river_regions.py`; docs/REAL_MASKS.md, "`--min-confidence auto`" and "Validation
widened").

The check reads at most `CHECK_PIXELS` of the mask, in windows of at most `WINDOW` px a side
spread evenly over it (those with foreground), never a whole giant mask; each window is one
forward pass of a batch of two (cut and uncut), with no halo (its edges are the check's image
edges). Cost: two more forward passes over the pixels checked. The cuts come from `seed` and
each window's place, so the choice is deterministic in the input; a resumed job does not check
again but takes the floor its interrupted attempt recorded (`SelfCheck.from_attrs`).

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

__all__ = ["BOUND_SPREADS", "CANDIDATE_FLOORS", "CUT_DENSITY", "GAP_ALLOWANCE", "MIN_GAIN", "NEAR_CUT", "WINDOW",
           "CHECK_PIXELS", "SelfCheck", "Measure", "parse_min_confidence", "measure", "floor_gains",
           "choose_min_confidence", "choose_floor"]

CANDIDATE_FLOORS = (0.55, 0.65, 0.75, 0.85, 0.95)
"""The floors the check chooses from: from `general`'s fixed default (0.55) to one that keeps
only the bridges the model is all but sure of."""
CUT_DENSITY = 2.0
"""New cuts per Mpx, over the protocol's (about 60): the protocol's density leaves the choice
on small masks of 1-px lines to chance (docs/REAL_MASKS.md)."""
MIN_GAIN = 0.002
"""Least expected clDice gain (at the protocol's density, `unexplained` included) on the mask's
own cuts for a floor to be taken. Chosen on validation over other draws of the protocol's cuts
(`research/harm_rate.py`, seeds 1-3: 0.002 harms none of the 1-px river stand-ins, 0.001 harms
4 of 12, the fixed 0.55 10 of 12, and it repairs every draw of the rivers 1.5 and 3 px wide, the
drawings and the 1-px glyphs at 0.55), and again with `GAP_ALLOWANCE` on the validation masks and
boundary-map stand-ins (`research/uncut_allowance.py`: no harm, the most repaired; 0.0025 and
0.003 repair less; docs/REAL_MASKS.md)."""
BOUND_SPREADS = 2.0
"""How many spreads below its expected gain a floor's gain is taken to be when it is weighed
against MIN_GAIN (a lower confidence bound). The spread is measured from cut to cut of the
check's own cuts and misses what varies with the mask's own breaks, so it is too narrow: (measured
- expected) / spread has a standard deviation of 2.2-5 on validation, not 1. Chosen on
validation as the least number of spreads (0, 0.5, 1, 1.5, 2, 3) that harms no draw: with the
expected gain itself (0) the check harmed 6 of 128 re-drawn protocol cuts of 32 rivers from 16
regions outside the benchmark's boxes (research/river_regions.py), 3 of 48 of the African
boundary maps and 9 of 96 of the European and Asian ones (research/boundary_maps.py); with 1.5
spreads 0, 0 and 1; with 2 none, nor any of the benchmark's own validation rivers (64),
drawings (24) or 1-px stand-ins (32) (`research/harm_rate.py`, `research/rule_sweep.py`;
docs/REAL_MASKS.md, "Validation widened")."""
GAP_ALLOWANCE = 1.0
"""How many times the centreline the check's own cuts took to bridge (per cut, at the protocol's
density) the repair of the uncut mask may paint before the rest counts against it as painted
where the mask is whole (false bridges between islands and coasts, filled islands and slivers,
joined natural dead ends). Chosen on validation and boundary-map stand-ins (docs/REAL_MASKS.md,
"What the uncut repair paints")."""
_AROUND = 3
"""Px around a piece of the uncut repair within which the centreline's change counts as its."""
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
    """Expected clDice gain on the mask's own cuts (at the protocol's density), per candidate
    floor."""
    spreads: dict[float, float] = field(default_factory=dict)
    """Standard deviation of that gain from cut to cut (at the protocol's density), per floor."""
    unexplained: dict[float, float] = field(default_factory=dict)
    """The part of the gain (<= 0) from what the repair of the uncut mask paints beyond what its
    own gaps explain, per floor."""
    cuts: int = 0
    """New cuts repaired."""
    pixels: int = 0
    """Pixels of the mask the check read."""

    @classmethod
    def from_attrs(cls, record: dict) -> SelfCheck:
        """The check `as_attrs` recorded (its gains rounded as recorded)."""
        def floors(name: str) -> dict[float, float]:
            return {float(f): float(g) for f, g in record.get(name, {}).items()}

        return cls(float(record["floor"]), floors("gains"), floors("spreads"), floors("unexplained"),
                   int(record.get("cuts", 0)), int(record.get("pixels", 0)))

    def as_attrs(self) -> dict:
        """The record kept in the output's attributes (with the rule the floor was chosen by)."""
        return {"floor": self.floor, "cuts": self.cuts, "pixels": self.pixels,
                "rule": {"bound_spreads": BOUND_SPREADS, "min_gain": MIN_GAIN},
                "gains": {f"{f:g}": round(g, 6) for f, g in self.gains.items()},
                "spreads": {f"{f:g}": round(g, 6) for f, g in self.spreads.items()},
                "unexplained": {f"{f:g}": round(g, 6) for f, g in self.unexplained.items()}}


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


_PieceRow = tuple[int, float, float, float, float, float]
"""(cut id, centreline px on the piece, of them on the line, line centreline px covered, mean p,
centreline px on the piece where the uncut repair paints too included)."""
_CheckRow = tuple[tuple[int, int], float, float, float, float, float]
"""A `_PieceRow` of a mask: its cut id made ((window, cut))."""
_PlainRow = tuple[float, float, float]
"""(mean p, centreline px the piece adds around it, change of the line's centreline px there)."""


def _window_pieces(truth: np.ndarray, predictor: Predictor, config: InferConfig, align: int,
                   rng: np.random.Generator
                   ) -> tuple[np.ndarray, list[_PieceRow], list[_PlainRow], int]:
    """One window: new cuts made, repaired as the job repairs. Returns (the damaged window's
    clDice counts against the window, one row per kept piece reaching a cut: (cut id, skeleton
    px on the piece, of them on the line, line centreline px the piece covers, mean
    probability, skeleton px on the piece all told), one row per piece the repair of the uncut
    window adds (`_plain_rows`), the number of cuts)."""
    damaged, gaps = corrupt(truth, GapConfig(kind="cut", density=CUT_DENSITY), rng)
    cuts, n_cuts = ndi.label(gaps, _EIGHT)
    truth_skeleton = skeletonize(truth)
    skeleton = skeletonize(damaged)
    counts = np.array([skeleton.sum(), (skeleton & truth).sum(), truth_skeleton.sum(),
                       (truth_skeleton & damaged).sum()], np.float64)
    if n_cuts == 0:
        return counts, [], [], 0
    h, w = truth.shape
    x = np.zeros((2, 1, round_up(h, align), round_up(w, align)), np.float32)
    x[0, 0, :h, :w], x[1, 0, :h, :w] = damaged, truth
    probs, plain_probs = np.asarray(predictor(x), np.float32)[:, 0, :h, :w]
    kept = keep_added(decide(probs, damaged, (0, h, 0, w), config), damaged, config.pieces) & ~damaged
    # what the repair adds to the window without the new cuts closes gaps the input already
    # had, or paints where the input is whole (a false bridge, a filled island): which, the
    # input cannot tell piece by piece (`floor_gains` weighs them all together)
    plain = keep_added(decide(plain_probs, truth, (0, h, 0, w), config), truth, config.pieces) & ~truth
    plain_rows = _plain_rows(plain, plain_probs, truth, truth_skeleton)
    labels, n = ndi.label(kept, _EIGHT)
    if n == 0:
        return counts, [], plain_rows, n_cuts
    # where the uncut repair paints, the input is no truth: a piece's centreline there is not
    # counted against it (on heavily cut masks the pieces at the new cuts run on into such gaps)
    unjudged = ndi.binary_dilation(plain, _EIGHT)
    near = ndi.binary_dilation(gaps, _EIGHT, iterations=NEAR_CUT)
    repaired_skeleton = skeletonize(damaged | kept)
    _, (iy, ix) = ndi.distance_transform_edt(cuts == 0, return_indices=True)
    nearest_cut = cuts[iy, ix]
    rows = []
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        piece = labels[box] == i
        reach = piece & near[box]
        if not reach.any():  # closes a gap the input had: the input cannot judge it
            continue
        on_piece = repaired_skeleton[box] & piece & ~unjudged[box]
        rows.append((int(np.bincount(nearest_cut[box][reach]).argmax()), float(on_piece.sum()),
                     float((on_piece & truth[box]).sum()), float((truth_skeleton[box] & piece).sum()),
                     float(probs[box][piece].mean()), float((repaired_skeleton[box] & piece).sum())))
    return counts, rows, plain_rows, n_cuts


def _plain_rows(plain: np.ndarray, probs: np.ndarray, truth: np.ndarray,
                truth_skeleton: np.ndarray) -> list[_PlainRow]:
    """One row per piece of `plain` (what the repair adds to the uncut window `truth`): its mean
    probability, and how the window's centreline changes within `_AROUND` px of it: the px
    added, and the change of those on the line (negative where a filled island or sliver moves
    the line's own centreline off it)."""
    labels, n = ndi.label(plain, _EIGHT)
    if n == 0:
        return []
    after = skeletonize(truth | plain)
    rows = []
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        box = tuple(slice(max(s.start - _AROUND - 1, 0), s.stop + _AROUND + 1) for s in box)
        piece = labels[box] == i
        around = ndi.binary_dilation(piece, _EIGHT, iterations=_AROUND)
        before_here, after_here = truth_skeleton[box] & around, after[box] & around
        rows.append((float(probs[box][piece].mean()), float(after_here.sum()) - float(before_here.sum()),
                     float((after_here & truth[box]).sum()) - float((before_here & truth[box]).sum())))
    return rows


@dataclass
class Measure:
    """What the check measured on one mask, before any floor is chosen (`measure`)."""

    counts: np.ndarray
    """clDice counts of the cut windows against the uncut ones: (centreline px, of them on the
    line, the line's centreline px, of them covered)."""
    rows: list[_CheckRow]
    """One row per kept piece reaching a new cut: ((window, cut), centreline px judged, of them
    on the line, line centreline covered, mean probability, centreline px all told)."""
    plain: list[_PlainRow]
    """One row per piece the repair of the uncut windows adds (`_plain_rows`)."""
    cuts: int
    """New cuts made."""
    pixels: int
    """Pixels of the mask read."""


def measure(mask: Any, predictor: Predictor, config: InferConfig, seed: int = 0) -> Measure:
    """The check's measurements on `mask` (a 2-D bool NumPy, Zarr or Dask array) repaired by
    `predictor` (up-sampled and refined as the job will run it) with `config`'s threshold and
    keep policy (module docstring)."""
    align = int(predictor.align)
    windows = _checked_windows(mask)
    found = Measure(np.zeros(4), [], [], 0, sum(block.size for _, block in windows))
    for index, truth in windows:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
        window_counts, window_rows, plain_rows, n_cuts = _window_pieces(truth, predictor, config, align, rng)
        found.counts += window_counts
        found.rows += [((index, cut), *rest) for cut, *rest in window_rows]
        found.plain += plain_rows
        found.cuts += n_cuts
    return found


def floor_gains(found: Measure, allowance: float | None = None
                ) -> tuple[dict[float, float], dict[float, float], dict[float, float]]:
    """(expected gain, its spread, the unexplained part of it) per candidate floor, from the
    measurements, with `allowance` (default GAP_ALLOWANCE) for the uncut repair."""
    allowance = GAP_ALLOWANCE if allowance is None else allowance
    # clDice = 2PS / (P + S) of precision P = a / b and sensitivity S = c / d, linearised: a
    # piece adding db centreline px (da on the line) and covering dc px of the line's
    # centreline changes it by dC/dP (da - P db) / b + dC/dS dc / d
    b, a, d, c = found.counts
    precision, sensitivity = (a / b if b else 1.0), (c / d if d else 1.0)
    total = (precision + sensitivity) ** 2 or 1.0
    by_precision, by_sensitivity = 2 * sensitivity ** 2 / total, 2 * precision ** 2 / total
    judged_cuts = found.cuts / CUT_DENSITY  # as many as the protocol makes on the pixels checked
    gains, spreads, unexplained = {}, {}, {}
    for floor in CANDIDATE_FLOORS:
        per_cut: dict[tuple[int, int], float] = {}
        bridged = 0.0
        for cut, db, da, dc, mean_p, drawn in found.rows:
            if mean_p >= floor:
                per_cut[cut] = per_cut.get(cut, 0.0) + by_precision * (da - precision * db) / max(b, 1.0) \
                    + by_sensitivity * dc / max(d, 1.0)
                bridged += drawn
        values = np.zeros(found.cuts)
        values[:len(per_cut)] = list(per_cut.values())  # the cuts no kept piece reaches: 0
        # the uncut repair: the input's own gaps, as many as the protocol cuts, take as much
        # centreline as the check's cuts took (`allowance` times it); the rest is painted where
        # the input is whole and costs precision like a false bridge, with its share of the
        # line's own centreline moved (a bridge over a real gap moves it too: a cut road's
        # forked centreline ends are joined)
        added = sum(r[1] for r in found.plain if r[0] >= floor)
        on_line = sum(r[2] for r in found.plain if r[0] >= floor)
        excess = max(0.0, added - allowance * bridged * judged_cuts / found.cuts)
        share = excess / added if added > 0 else 0.0
        unexplained[floor] = float(min(0.0, by_precision * (share * on_line - precision * excess)
                                       / max(b, 1.0)))
        gains[floor] = float(judged_cuts * values.mean()) + unexplained[floor]
        spreads[floor] = float(np.sqrt(judged_cuts) * values.std(ddof=1))
    return gains, spreads, unexplained


def choose_min_confidence(mask: Any, predictor: Predictor, config: InferConfig,
                          seed: int = 0) -> SelfCheck:
    """The floor for `mask` repaired by `predictor` with `config` (`measure`; module docstring)."""
    found = measure(mask, predictor, config, seed)
    if found.cuts < 2:  # no centreline to cut: nothing the repair could do either
        return SelfCheck(NO_REPAIR, {}, {}, {}, found.cuts, found.pixels)
    gains, spreads, unexplained = floor_gains(found)
    return SelfCheck(choose_floor(gains, spreads), gains, spreads, unexplained, found.cuts, found.pixels)


def choose_floor(gains: dict[float, float], spreads: dict[float, float],
                 z: float | None = None, min_gain: float | None = None) -> float:
    """The lowest floor whose expected gain less `z` spreads (default BOUND_SPREADS: a lower
    confidence bound; 0: the expected gain itself) exceeds `min_gain` (default MIN_GAIN), else
    NO_REPAIR: the lowest floor keeps the most, and a higher one is taken only where the lower
    ones are not expected to gain enough."""
    z = BOUND_SPREADS if z is None else z
    min_gain = MIN_GAIN if min_gain is None else min_gain
    return next((f for f in sorted(gains) if gains[f] - z * spreads[f] > min_gain), NO_REPAIR)
