"""Test-time refinements of a predictor: dihedral views and repeated passes (`--views`, `--passes`).

Both wrap any `Predictor` and are themselves predictors, so the tiled engine, the Ray actors
and the quality benchmark use them unchanged, and tiled inference stays exactly equal to
whole-image inference:

- views (test-time augmentation): the probabilities are the mean over V of the 8 flips and
  transposes of the window (V in 1, 2, 4, 8), each mapped back. The tiled engine's windows
  start and end on multiples of the model's alignment, so a flipped window is still a true
  sub-image of the flipped (padded) image at every resolution of the network: exact.
- passes (iterative repair): pass k runs the model on `input OR (pass k-1's probability >
  threshold)`, so a gap the first pass narrowed can be closed by the next. The receptive
  radius of the composition is `passes` times the model's, which is the halo it asks for.
  With `bridges_only`, the result is the first pass's plus only those pieces the later
  passes add that join it at two or more places (`distpaint.infer.bridges`; judged per
  window, exact for pieces that fit in the halo).

Neither is the paper's (it runs G once); both are off by default and measured with
`bench/quality.py --models plain=roads refined=roads:views=2,passes=2` (figures in the README's
Quality section). Cost: views x passes forward passes per tile.

    predictor = refine(resolve_model("roads"), views=4, passes=2, threshold=0.5)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from distpaint.errors import ConfigError
from distpaint.infer.bridges import bridges_only as keep_bridges
from distpaint.infer.predictor import Predictor

__all__ = ["VIEWS", "PASSES", "AugmentedPredictor", "RepeatedPredictor", "bridges_of",
           "check_refinement", "refine", "refinement_of"]

VIEWS = (1, 2, 4, 8)
"""Allowed numbers of dihedral views."""
PASSES = range(1, 9)
"""Allowed numbers of passes."""

Transform = Callable[[np.ndarray], np.ndarray]


def _flip_y(a: np.ndarray) -> np.ndarray:
    return a[..., ::-1, :]


def _flip_x(a: np.ndarray) -> np.ndarray:
    return a[..., ::-1]


def _rot180(a: np.ndarray) -> np.ndarray:
    return a[..., ::-1, ::-1]


def _transpose(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


def _identity(a: np.ndarray) -> np.ndarray:
    return a


def _dihedral() -> list[tuple[Transform, Transform]]:
    """(forward, inverse) of the 8 symmetries of the square, ordered so that the first V are
    the most useful V: identity, rotation by 180 degrees (2), the two flips (4), then the
    transposed four (8)."""
    base = [(_identity, _identity), (_rot180, _rot180), (_flip_y, _flip_y), (_flip_x, _flip_x)]
    transposed = [(lambda a, f=f: _transpose(f(a)), lambda a, g=g: g(_transpose(a)))
                  for f, g in base]
    return base + transposed


class AugmentedPredictor:
    """Mean probabilities over `views` dihedral views of each window."""

    def __init__(self, base: Predictor, views: int) -> None:
        check_refinement(views, 1)
        self.base, self.views = base, views
        self.align = int(base.align)
        self.receptive_halo = int(base.receptive_halo)
        self.refinement = (views, refinement_of(base)[1])
        self._transforms = _dihedral()[:views]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        total = None
        for forward, inverse in self._transforms:
            # transposing swaps h and w: both are multiples of `align`, so the grids still match
            p = inverse(np.asarray(self.base(np.ascontiguousarray(forward(batch)))))
            total = p.astype(np.float32) if total is None else total + p
        return total / np.float32(self.views)


class RepeatedPredictor:
    """`passes` passes of `base`, each on the input OR the previous pass's pixels; with
    `bridges_only`, the first pass's probabilities except where a later pass bridges."""

    def __init__(self, base: Predictor, passes: int, threshold: float,
                 bridges_only: bool = False) -> None:
        check_refinement(1, passes, bridges_only)
        self.base, self.passes, self.threshold = base, passes, float(threshold)
        self.bridges_only = bool(bridges_only)
        self.align = int(base.align)
        # pass k's pixel depends on pass k-1's pixels within one receptive radius
        self.receptive_halo = int(base.receptive_halo) * passes
        self.refinement = (refinement_of(base)[0], passes)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        probs = first = np.asarray(self.base(batch))
        for _ in range(self.passes - 1):
            probs = np.asarray(self.base(np.maximum(batch, (probs > self.threshold)
                                                    .astype(batch.dtype))))
        if not self.bridges_only:
            return probs
        out = first.copy()
        for b in range(batch.shape[0]):
            given = (batch[b, 0] > 0.5) | (first[b, 0] > self.threshold)
            # every window edge is open here: the predictor does not know where the image ends
            kept = keep_bridges(given, probs[b, 0] > self.threshold, open_edges=(True,) * 4) & ~given
            out[b, 0][kept] = probs[b, 0][kept]
        return out


def refinement_of(predictor: Predictor) -> tuple[int, int]:
    """(views, passes) that `predictor` applies: (1, 1) for a plain model."""
    return tuple(getattr(predictor, "refinement", (1, 1)))  # type: ignore[return-value]


def check_refinement(views: int, passes: int, bridges_only: bool = False) -> None:
    """ConfigError unless `views` is one of VIEWS, `passes` one of PASSES, and
    `bridges_only` a bool that is only set with two or more passes."""
    if isinstance(views, bool) or views not in VIEWS:
        raise ConfigError(f"--views must be one of {', '.join(map(str, VIEWS))}, got {views!r}")
    if isinstance(passes, bool) or not isinstance(passes, int) or passes not in PASSES:
        raise ConfigError(f"--passes must be an integer from 1 to {PASSES[-1]}, got {passes!r}")
    if not isinstance(bridges_only, bool):
        raise ConfigError(f"bridges_only must be true or false, got {bridges_only!r}")
    if bridges_only and passes < 2:
        raise ConfigError("--bridges-only keeps what later passes bridge: it needs --passes 2 or more")


def refine(predictor: Predictor, *, views: int = 1, passes: int = 1,
           threshold: float = 0.5, bridges_only: bool = False) -> Predictor:
    """`predictor` with `views` dihedral views inside each of `passes` passes (the identity
    for 1 and 1). `threshold` decides the pixels handed from one pass to the next;
    `bridges_only` keeps of the later passes only what bridges (`distpaint.infer.bridges`)."""
    check_refinement(views, passes, bridges_only)
    if views != 1:
        predictor = AugmentedPredictor(predictor, views)
    if passes != 1:
        predictor = RepeatedPredictor(predictor, passes, threshold, bridges_only)
    return predictor


def bridges_of(predictor: Predictor) -> bool:
    """Whether `predictor` keeps only the bridges of its later passes."""
    return bool(getattr(predictor, "bridges_only", False))
