"""Evaluate a repaired mask against the truth: every metric in one tiled pass.

`evaluate(pred, truth, input=None, gaps=None)` returns {metric: value} for the metrics in
`METRICS` (pixel, components, topology, false fill, harm, traits; see `pixel`, `topology`,
`harm` and `traits` for the definitions). It reads each tile of each mask once, skeletonises each mask
once per tile, and merges exact per-tile summaries, so a 20000x20000 pair from a mask store
is evaluated in bounded memory. `evaluate_store` runs it over every sample of a store.

Inputs and what they enable:

- pred and truth (required): MSE, pixel difference, components, Betti errors, clDice, traits.
- input (the corrupted mask) and/or gaps (the gap mask M): one is derived from the other when
  missing, because the corruption removes exactly M from the truth (M = truth & ~input,
  input = truth & ~M). With them: MSE in the gaps, skeleton recall in the gaps, false fill,
  the relative improvements of the input -> pred change (identity 0, truth 1) and the harm
  metrics (spurs, thickening, islands, erased input, the per-mask `no_harm` verdict).

Usage::

    from distpaint.metrics.evaluation import evaluate, evaluate_store
    metrics = evaluate(pred, truth, input=corrupted)
    batch = evaluate_store("pred.zarr", "corrupted.zarr")   # BatchResult, see stats.aggregate
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np

from distpaint.data.store import MaskStore
from distpaint.errors import ConfigError, InputError
from distpaint.metrics.harm import (
    DEFAULT_HARM_TOLERANCE,
    TileAdded,
    harm_tile,
    merge_added,
    no_harm,
)
from distpaint.metrics.pixel import (
    DEFAULT_FILL_TOLERANCE,
    false_fill_counts,
    paper_relative_improvement,
    relative_improvement,
)
from distpaint.metrics.tiles import Tile, as_lazy, choose_tile, common_shape, map_tiles
from distpaint.metrics.topology import (
    DEFAULT_HALO,
    TileComponents,
    cldice_from_counts,
    count_components,
    euler_from_tiles,
    skeleton_window,
    summarize_components,
)
from distpaint.metrics.traits import TRAITS, TileTraits, merge_traits, tile_traits

__all__ = [
    "METRICS",
    "BatchResult",
    "EvalConfig",
    "MetricInfo",
    "evaluate",
    "evaluate_store",
    "metric_info",
    "store_sample_layers",
]


@dataclass
class EvalConfig:
    """How `evaluate` tiles the masks and which optional metrics it computes."""

    halo: int = DEFAULT_HALO
    """Context pixels around each tile for skeletons and dilations (masks above
    `tiles.IN_MEMORY_PIXELS` only; smaller ones are one tile)."""
    fill_tolerance: int = DEFAULT_FILL_TOLERANCE
    """Added pixels within this distance of a gap pixel are not false fill."""
    harm_tolerance: int = DEFAULT_HARM_TOLERANCE
    """Added pixels within this distance of a gap pixel are repair, not harm (spur_length,
    thickening; see `harm`)."""
    traits: bool = True
    """Compute the root traits (length, tips, branches, hull area)."""
    tile: int | None = None
    """Tile side in pixels; default: whole mask when small, else 2048 aligned to chunks."""
    workers: int | None = None
    """Threads evaluating tiles; default: one per core."""

    def __post_init__(self) -> None:
        if self.halo < 1:
            raise ConfigError(f"halo must be >= 1 pixel, got {self.halo}")
        if not 0 <= self.fill_tolerance <= self.halo:
            raise ConfigError(
                f"fill_tolerance must be between 0 and halo ({self.halo}), got "
                f"{self.fill_tolerance}"
            )
        if not 0 <= self.harm_tolerance < self.halo:
            raise ConfigError(
                f"harm_tolerance must be between 0 and halo - 1 ({self.halo - 1}), got "
                f"{self.harm_tolerance}"
            )
        if self.tile is not None and self.tile < 16:
            raise ConfigError(f"tile must be at least 16 pixels, got {self.tile}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")


# ---- the metric registry -------------------------------------------------------------------
@dataclass(frozen=True)
class MetricInfo:
    """One reported metric."""

    key: str
    """Key in the result dict and the JSON."""
    group: str
    """Table section: pixel, components, topology, fill, harm, traits."""
    better: str
    """'lower', 'higher', 'zero' (signed, 0 is perfect) or '' (a plain count)."""
    doc: str
    """One-line definition."""
    needs: str = ""
    """'input' when it exists only with the corrupted input / gaps."""


def _m(key: str, group: str, better: str, doc: str, needs: str = "") -> MetricInfo:
    return MetricInfo(key, group, better, doc, needs)


def _trait_metrics() -> list[MetricInfo]:
    out = []
    for t in TRAITS:
        out += [
            _m(f"{t}_pred", "traits", "", f"{t} of the prediction"),
            _m(f"{t}_truth", "traits", "", f"{t} of the truth"),
            _m(f"{t}_rel_error", "traits", "zero", f"({t}(pred) - {t}(truth)) / {t}(truth)"),
            _m(f"{t}_input", "traits", "", f"{t} of the corrupted input", "input"),
            _m(f"{t}_change", "traits", "",
               f"({t}(pred) - {t}(input)) / {t}(input), the paper's Table IV change", "input"),
            _m(f"{t}_rel_improvement", "traits", "higher",
               f"relative improvement of |{t} - {t}(truth)|: 0 identity, 1 truth", "input"),
        ]
    return out


METRICS: tuple[MetricInfo, ...] = (
    _m("mse", "pixel", "lower", "mean (pred - truth)^2 over the whole mask"),
    _m("mse_gaps", "pixel", "lower", "mean (pred - truth)^2 over the gap pixels M", "input"),
    _m("pixel_diff", "pixel", "lower", "pixels where pred != truth"),
    _m("pixel_diff_input", "pixel", "", "pixels where input != truth", "input"),
    _m("rel_pixel_diff", "pixel", "higher",
       "signed relative improvement of pixel_diff: 0 identity, 1 truth, < 0 worse", "input"),
    _m("paper_rel_pixel_diff", "pixel", "higher",
       "the paper's |m - m_after| / m for pixel_diff (also rewards getting worse)", "input"),
    _m("components_pred", "components", "", "8-connected components of pred"),
    _m("components_truth", "components", "", "8-connected components of truth"),
    _m("component_diff", "components", "lower", "|components(pred) - components(truth)|"),
    _m("components_input", "components", "", "8-connected components of the input", "input"),
    _m("rel_component_diff", "components", "higher",
       "signed relative improvement of component_diff", "input"),
    _m("paper_rel_component_diff", "components", "higher",
       "the paper's |m - m_after| / m for component_diff", "input"),
    _m("cldice", "topology", "higher", "clDice of skeletons (Shit et al. 2021)"),
    _m("cl_precision", "topology", "higher", "|S(pred) & truth| / |S(pred)|"),
    _m("cl_sensitivity", "topology", "higher", "|S(truth) & pred| / |S(truth)|"),
    _m("betti0_error", "topology", "lower", "|B0(pred) - B0(truth)| (= component_diff)"),
    _m("betti1_error", "topology", "lower", "|B1(pred) - B1(truth)|, holes"),
    _m("holes_pred", "topology", "", "B1 of pred: holes (4-connected background)"),
    _m("holes_truth", "topology", "", "B1 of truth"),
    _m("holes_input", "topology", "", "B1 of the input", "input"),
    _m("rel_betti1_error", "topology", "higher",
       "signed relative improvement of betti1_error", "input"),
    _m("skeleton_recall_gaps", "topology", "higher",
       "share of the true centreline inside M covered by pred", "input"),
    _m("added_pixels", "fill", "", "pixels added by the method: pred & ~input", "input"),
    _m("false_fill", "fill", "lower",
       "share of added pixels farther than the tolerance from every gap", "input"),
    _m("cldice_input", "harm", "", "clDice of the input against the truth", "input"),
    _m("cldice_gain", "harm", "higher", "cldice - cldice_input (< 0: the repair did harm)",
       "input"),
    _m("components_added", "harm", "lower",
       "components(pred) - components(input): > 0 pieces added, < 0 pieces joined", "input"),
    _m("input_removed", "harm", "lower", "input pixels erased by the repair: input & ~pred",
       "input"),
    _m("islands", "harm", "lower", "added 8-connected pieces touching no input pixel", "input"),
    _m("island_pixels", "harm", "lower", "pixels of the islands", "input"),
    _m("spur_length", "harm", "lower",
       "skeleton pixels of pred added away from the gaps in attached pieces (spurs)", "input"),
    _m("thickening", "harm", "lower",
       "added pixels away from the gaps 8-adjacent to the input, not on a spur", "input"),
    _m("thickening_share", "harm", "lower", "thickening / added_pixels (0 if none added)",
       "input"),
    _m("no_harm", "harm", "higher",
       "1 if cldice >= cldice_input, components <= input's and no input pixel erased; "
       "mean = share of masks without harm", "input"),
    *_trait_metrics(),
)
"""Every metric `evaluate` can report, in report order."""
_BY_KEY = {m.key: m for m in METRICS}


def metric_info(key: str) -> MetricInfo:
    """The registry entry of `key` (ConfigError listing the names if unknown)."""
    if key not in _BY_KEY:
        raise ConfigError(f"unknown metric {key!r}; known: {', '.join(_BY_KEY)}")
    return _BY_KEY[key]


# ---- the tile kernel -----------------------------------------------------------------------
@dataclass
class _TileResult:
    counts: dict[str, int] = field(default_factory=dict)
    components: dict[str, TileComponents] = field(default_factory=dict)
    traits: dict[str, TileTraits] = field(default_factory=dict)
    added: TileAdded | None = None


def _kernel(windows: dict[str, np.ndarray], tile: Tile, config: EvalConfig) -> _TileResult:
    c, nz = tile.core, np.count_nonzero
    pred, truth = windows["pred"], windows["truth"]
    inp, gaps = windows.get("input"), windows.get("gaps")
    res = _TileResult()
    diff = c(pred) ^ c(truth)
    res.counts["diff"] = nz(diff)
    skel = {"pred": skeleton_window(pred), "truth": skeleton_window(truth)}
    sp, st = c(skel["pred"]), c(skel["truth"])
    res.counts.update(s_pred=nz(sp), s_pred_in_truth=nz(sp & c(truth)),
                      s_truth=nz(st), s_truth_in_pred=nz(st & c(pred)))
    if inp is not None:
        gc = c(gaps)
        res.counts.update(gap_pixels=nz(gc), gap_diff=nz(diff & gc),
                          diff_input=nz(c(inp) ^ c(truth)),
                          s_truth_gaps=nz(st & gc), s_truth_gaps_pred=nz(st & gc & c(pred)))
        res.counts["added"], res.counts["added_outside"] = false_fill_counts(
            c(pred), c(inp), gaps, tile, config.fill_tolerance)
        skel["input"] = skeleton_window(inp)
        si = c(skel["input"])
        res.counts.update(s_input=nz(si), s_input_in_truth=nz(si & c(truth)),
                          s_truth_in_input=nz(st & c(inp)))
        harm_counts, res.added = harm_tile(pred, inp, gaps, skel["pred"], tile,
                                           config.harm_tolerance)
        res.counts.update(harm_counts)
    for key, window in (("pred", pred), ("truth", truth), ("input", inp)):
        if window is None:
            continue
        res.components[key] = summarize_components(c(window))
        if config.traits:
            res.traits[key] = tile_traits(window, skel[key], tile)
    return res


# ---- assembling the metrics ----------------------------------------------------------------
def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def _finish(grid: list[list[_TileResult]], shape: tuple[int, int], with_input: bool,
            with_traits: bool) -> dict[str, float]:
    flat = [r for row in grid for r in row]
    n = {k: int(sum(r.counts[k] for r in flat)) for k in flat[0].counts}
    keys = ["pred", "truth"] + (["input"] if with_input else [])
    comp_grid = {k: [[r.components[k] for r in row] for row in grid] for k in keys}
    b0 = {k: count_components(g) for k, g in comp_grid.items()}
    b1 = {k: b0[k] - euler_from_tiles(g) for k, g in comp_grid.items()}
    cl = cldice_from_counts(n["s_pred"], n["s_pred_in_truth"], n["s_truth"], n["s_truth_in_pred"])
    out: dict[str, float] = {
        "mse": n["diff"] / (shape[0] * shape[1]),
        "pixel_diff": n["diff"],
        "components_pred": b0["pred"],
        "components_truth": b0["truth"],
        "component_diff": abs(b0["pred"] - b0["truth"]),
        "cldice": cl.cldice,
        "cl_precision": cl.precision,
        "cl_sensitivity": cl.sensitivity,
        "betti0_error": abs(b0["pred"] - b0["truth"]),
        "betti1_error": abs(b1["pred"] - b1["truth"]),
        "holes_pred": b1["pred"],
        "holes_truth": b1["truth"],
    }
    if with_input:
        comp_in = abs(b0["input"] - b0["truth"])
        holes_in = abs(b1["input"] - b1["truth"])
        out.update(
            mse_gaps=_ratio(n["gap_diff"], n["gap_pixels"]),
            pixel_diff_input=n["diff_input"],
            rel_pixel_diff=relative_improvement(n["diff_input"], n["diff"]),
            paper_rel_pixel_diff=paper_relative_improvement(n["diff_input"], n["diff"]),
            components_input=b0["input"],
            rel_component_diff=relative_improvement(comp_in, out["component_diff"]),
            paper_rel_component_diff=paper_relative_improvement(comp_in, out["component_diff"]),
            holes_input=b1["input"],
            rel_betti1_error=relative_improvement(holes_in, out["betti1_error"]),
            skeleton_recall_gaps=_ratio(n["s_truth_gaps_pred"], n["s_truth_gaps"]),
            added_pixels=n["added"],
            false_fill=float(n["added_outside"] / n["added"]) if n["added"] else 0.0,
        )
        out.update(_harm_values(grid, n, out, cl.cldice))
    if with_traits:
        out.update(_trait_values(grid, keys))
    return {m.key: out[m.key] for m in METRICS if m.key in out}


def _harm_values(grid: list[list[_TileResult]], n: dict[str, int], out: dict[str, float],
                 cl_pred: float) -> dict[str, float]:
    cl_in = cldice_from_counts(n["s_input"], n["s_input_in_truth"], n["s_truth"],
                               n["s_truth_in_input"]).cldice
    islands, island_pixels, spur = merge_added([[r.added for r in row] for row in grid])
    added_comps = out["components_pred"] - out["components_input"]
    return {
        "cldice_input": cl_in,
        "cldice_gain": cl_pred - cl_in,
        "components_added": added_comps,
        "input_removed": n["input_removed"],
        "islands": islands,
        "island_pixels": island_pixels,
        "spur_length": spur,
        "thickening": n["thickening"],
        "thickening_share": float(n["thickening"] / n["added"]) if n["added"] else 0.0,
        "no_harm": no_harm(cl_pred, cl_in, out["components_pred"], out["components_input"],
                           n["input_removed"]),
    }


def _trait_values(grid: list[list[_TileResult]], keys: Sequence[str]) -> dict[str, float]:
    values = {k: merge_traits([[r.traits[k] for r in row] for row in grid]).as_dict()
              for k in keys}
    out: dict[str, float] = {}
    for t in TRAITS:
        p, g = values["pred"][t], values["truth"][t]
        out.update({f"{t}_pred": p, f"{t}_truth": g, f"{t}_rel_error": _ratio(p - g, g)})
        if "input" in values:
            i = values["input"][t]
            out.update({
                f"{t}_input": i,
                f"{t}_change": _ratio(p - i, i),
                f"{t}_rel_improvement": relative_improvement(abs(i - g), abs(p - g)),
            })
    return out


def _complete_inputs(truth: Any, inp: Any, gaps: Any) -> tuple[Any, Any]:
    """Derive the missing one of (input, gaps) from the other: the corruption removes exactly
    the gap pixels from the truth."""
    if inp is None and gaps is None:
        return None, None
    t = as_lazy(truth).astype(bool)
    if gaps is None:
        return inp, t & ~as_lazy(inp).astype(bool)
    if inp is None:
        return t & ~as_lazy(gaps).astype(bool), gaps
    return inp, gaps


def evaluate(pred: Any, truth: Any, input: Any = None, gaps: Any = None,  # noqa: A002
             config: EvalConfig | None = None) -> dict[str, float]:
    """Every metric of `METRICS` that the given masks allow, as {key: value}.

    Args:
        pred: the repaired mask (H, W); NumPy, Zarr or Dask; bool or 0/non-0.
        truth: the complete mask (H, W).
        input: the corrupted mask the method was given (enables relative improvements).
        gaps: the gap mask M (pixels removed from the truth); derived as truth & ~input if
            missing, and input as truth & ~gaps if only gaps are given.
        config: tiling and options; default `EvalConfig()`.
    Returns:
        Metric values (ints for counts, floats otherwise; NaN where undefined, e.g. a relative
        improvement when the input had no error of that kind).
    """
    config = config or EvalConfig()
    arrays = {"pred": pred, "truth": truth, "input": input, "gaps": gaps}
    shape = common_shape(arrays)
    inp, gaps = _complete_inputs(truth, input, gaps)
    arrays.update(input=inp, gaps=gaps)
    tile = choose_tile(shape, arrays, config.tile)
    grid = map_tiles(partial(_kernel, config=config), arrays, halo=config.halo, tile=tile,
                     workers=config.workers)
    return _finish(grid, shape, inp is not None, config.traits)


# ---- stores --------------------------------------------------------------------------------
def store_sample_layers(truth_store: Any, name: str) -> dict[str, Any]:
    """{truth, input, gaps} Dask layers of a reference sample: a corrupted sample (with a
    `truth` layer) gives truth = truth, input = mask, gaps = gaps if stored; a plain sample
    gives truth = mask and no input."""
    layers = truth_store.layers(name)
    if "truth" in layers:
        return {
            "truth": truth_store.dask(name, "truth"),
            "input": truth_store.dask(name, "mask"),
            "gaps": truth_store.dask(name, "gaps") if "gaps" in layers else None,
        }
    return {"truth": truth_store.dask(name, "mask"), "input": None, "gaps": None}


@dataclass
class BatchResult:
    """Per-sample metrics of a batch evaluation."""

    samples: dict[str, dict[str, float]]
    """{sample name: {metric: value}}."""
    seconds: dict[str, float]
    """{sample name: wall time of its evaluation}."""
    config: dict = field(default_factory=dict)
    """The EvalConfig used, as a dict."""


def _open(store: Any) -> Any:
    return store if isinstance(store, MaskStore) else MaskStore.open(store)


def evaluate_store(pred_store: Any, truth_store: Any, names: Sequence[str] | None = None,
                   config: EvalConfig | None = None, progress: Any = None) -> BatchResult:
    """Evaluate every sample of `truth_store` (paths or `MaskStore`s) against the sample of the
    same name in `pred_store` (its `mask` layer). InputError if predictions are missing.
    `progress(name, metrics)` is called after each sample."""
    config = config or EvalConfig()
    preds, refs = _open(pred_store), _open(truth_store)
    names = list(names) if names is not None else refs.names()
    if not names:
        raise InputError(f"{refs.path}: the reference store holds no samples")
    missing = [n for n in names if n not in preds.names()]
    if missing:
        raise InputError(f"{preds.path}: no prediction for sample(s) {', '.join(missing[:10])}"
                         f"{' ...' if len(missing) > 10 else ''}")
    result = BatchResult({}, {}, asdict(config))
    for name in names:
        start = time.perf_counter()
        layers = store_sample_layers(refs, name)
        metrics = evaluate(preds.dask(name, "mask"), layers["truth"], layers["input"],
                           layers["gaps"], config)
        result.samples[name] = metrics
        result.seconds[name] = time.perf_counter() - start
        if progress is not None:
            progress(name, metrics)
    return result

