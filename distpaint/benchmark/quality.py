"""The quality benchmark: score repair methods on the benchmark sets, as the paper's Table I.

`run_quality(bench, methods, config)` evaluates every `Method` (`distpaint.benchmark.methods`)
on every sample of the benchmark sets (`distpaint.data.benchset`) at patch level and at
whole-mask level, blind, with `distpaint.metrics.evaluate`, and returns a `QualityResult`:
per (level, kind, method) the per-sample metrics, their mean (std), the repair and scoring
times, and the paired two-tailed t-tests between two chosen methods. `tables`, `markdown`
and `payload` present it; `figure` draws example repairs. Besides the Table I columns they
report the harm metrics (`distpaint.metrics.harm`: spurs, thickening, islands, erased input)
and the share of masks each method did no harm to, per level, kind and method.

- Patch level: patches are read into memory in groups, repaired with `Method.repair_many`
  (batched for models) and scored one by one, groups spread over `workers` threads.
- Whole-mask level: each mask is repaired with `Method.repair_whole` (lazy and tiled, so any
  size fits), written to a scratch store (timed as the repair) and scored tile by tile.

    from distpaint.data.benchset import open_benchset
    from distpaint.benchmark.methods import resolve_methods
    from distpaint.benchmark.quality import QualityConfig, run_quality
    result = run_quality(open_benchset("bench_data"), resolve_methods(["identity", "closing"]),
                         QualityConfig(ttest=("identity", "closing")))

or `python bench/quality.py --json` (builds the sets when absent).
"""

from __future__ import annotations

import math
import pathlib
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import zarr
from rich.table import Table

from distpaint.benchmark.figures import grid, input_rgb, repair_rgb, truth_rgb
from distpaint.benchmark.methods import Method
from distpaint.data.benchset import LEVELS, Benchset
from distpaint.data.real.build import LEVELS as REAL_LEVELS
from distpaint.data.real.build import RealBenchset
from distpaint.data.store import MaskStore
from distpaint.errors import ConfigError
from distpaint.metrics.evaluation import EvalConfig, evaluate
from distpaint.metrics.report import _clean, summary_text
from distpaint.metrics.stats import Summary, TTest, aggregate, compare_results

__all__ = [
    "FORMAT",
    "HARM_METRICS",
    "TABLE_METRICS",
    "TTEST_METRICS",
    "Cell",
    "QualityConfig",
    "QualityResult",
    "figure",
    "markdown",
    "no_harm_share",
    "payload",
    "run_quality",
    "tables",
]

FORMAT = "distpaint-quality"
"""Value of the "format" key of the result JSON."""
TABLE_METRICS = ("mse", "mse_gaps", "rel_pixel_diff", "rel_component_diff",
                 "skeleton_recall_gaps", "cldice", "false_fill")
"""Columns of the Table I style tables (the paper's plus skeleton recall in the gaps, clDice
and false fill: the judging protocol's scores)."""
HARM_METRICS = ("no_harm", "cldice_gain", "components_added", "input_removed", "islands",
                "spur_length", "thickening_share")
"""Columns of the harm tables (`distpaint.metrics.harm`); no_harm is shown as the share of
masks without harm."""
TTEST_METRICS = (*TABLE_METRICS, "component_diff", "spur_length",
                 "thickening_share", "islands")
"""Metrics of the paired t-tests."""
_LABELS = {"mse": "MSE ↓", "mse_gaps": "MSE gaps ↓", "rel_pixel_diff": "rel. pixel diff ↑",
           "rel_component_diff": "rel. comp. diff ↑", "cldice": "clDice ↑",
           "false_fill": "false fill ↓", "skeleton_recall_gaps": "skel. recall gaps ↑",
           "component_diff": "comp. diff ↓", "no_harm": "no harm ↑",
           "cldice_gain": "clDice gain ↑", "components_added": "comps added ↓",
           "input_removed": "input removed ↓", "islands": "islands ↓",
           "spur_length": "spur px ↓", "thickening_share": "thickening share ↓"}


@dataclass
class QualityConfig:
    """What to evaluate and how."""

    levels: tuple[str, ...] = LEVELS
    """Levels to evaluate: 'patch', 'whole' of a synthetic benchmark set; 'val', 'test',
    'val-mix', 'test-mix' of the real benchmark (whole masks)."""
    kinds: tuple[str, ...] | None = None
    """Kinds to evaluate; None: every kind of the set."""
    limit: int | None = None
    """At most this many samples per (level, kind), the first by name (quick runs); None: all."""
    traits: bool = False
    """Also compute the root traits (slower; Table IV)."""
    workers: int = 2
    """Threads over patch groups (and tiles of whole masks)."""
    batch: int = 16
    """Patches per group (one batched repair per method and group)."""
    ttest: tuple[str, str] | None = None
    """(A, B): method names compared with a paired two-tailed t-test per (level, kind)."""
    crop: int = 512
    """Side of the whole-mask example crops in the figure."""

    def __post_init__(self) -> None:
        self.levels = tuple(self.levels)
        known = (*LEVELS, *REAL_LEVELS)
        if not self.levels or any(level not in known for level in self.levels):
            raise ConfigError(f"levels must be among {', '.join(known)}, got {list(self.levels)}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1, got {self.limit}")
        if self.workers < 1 or self.batch < 1 or self.crop < 16:
            raise ConfigError("workers and batch must be >= 1 and crop >= 16")
        if self.ttest is not None:
            self.ttest = tuple(self.ttest)
            if len(self.ttest) != 2 or self.ttest[0] == self.ttest[1]:
                raise ConfigError(f"ttest needs two different method names, got {self.ttest}")


@dataclass
class Cell:
    """Results of one method on one (level, kind) set."""

    samples: dict[str, dict[str, float]] = field(default_factory=dict)
    """{sample: {metric: value}}."""
    repair_seconds: float = 0.0
    """Time spent repairing (summed over worker threads at patch level)."""
    eval_seconds: float = 0.0
    """Time spent scoring (summed over worker threads at patch level)."""
    megapixels: float = 0.0
    """Pixels repaired, in millions."""

    @property
    def summary(self) -> dict[str, Summary]:
        """{metric: mean, std, n} over the samples."""
        return aggregate(self.samples)


@dataclass
class QualityResult:
    """Everything `run_quality` measured."""

    cells: dict[str, dict[str, dict[str, Cell]]]
    """{level: {kind: {method: Cell}}}."""
    methods: dict[str, str]
    """{method: description}, in evaluation order."""
    ttests: dict[str, dict[str, list[TTest]]]
    """{level: {kind: [TTest per metric]}} between config.ttest's A and B (empty if none)."""
    examples: dict[str, dict[str, dict[str, Any]]]
    """{level: {kind: {"name", "input", "truth", "gaps", "preds": {method: mask}}}} crops."""
    bench: dict[str, Any]
    """{"path", "digest", "config"} of the benchmark set."""
    config: QualityConfig
    """The config used."""
    seconds: float = 0.0
    """Wall time of the whole run."""


# ---- patch level ---------------------------------------------------------------------------
def _read(store: MaskStore, name: str) -> dict[str, np.ndarray]:
    return {layer: np.asarray(store.array(name, src)[...], dtype=bool)
            for layer, src in (("input", "mask"), ("truth", "truth"), ("gaps", "gaps"))}


def _patch_group(store: MaskStore, names: Sequence[str], methods: Sequence[Method],
                 eval_config: EvalConfig, keep: str | None) -> dict:
    data = [_read(store, n) for n in names]
    inputs = np.stack([d["input"] for d in data])  # (B, P, P)
    out: dict[str, Any] = {"cells": {}, "example": None}
    if keep in names:
        out["example"] = {"name": keep, **data[list(names).index(keep)], "preds": {}}
    for method in methods:
        t0 = time.perf_counter()
        preds = method.repair_many(inputs)
        t1 = time.perf_counter()
        if preds.shape != inputs.shape:
            raise ConfigError(f"method {method.name} returned shape {preds.shape} for "
                              f"{inputs.shape}")
        samples = {n: evaluate(p, d["truth"], d["input"], d["gaps"], eval_config)
                   for n, p, d in zip(names, preds, data, strict=True)}
        out["cells"][method.name] = (samples, t1 - t0, time.perf_counter() - t1,
                                     inputs.size / 1e6)
        if out["example"] is not None:
            out["example"]["preds"][method.name] = preds[list(names).index(keep)]
    return out


def _example_name(store: MaskStore, names: Sequence[str]) -> str:
    """The sample whose removed fraction is the median of the evaluated ones (a typical case,
    read from the benchmark attrs), else the first."""
    fractions = [store.attrs(n).get("removed_fraction") for n in names[:64]]
    if any(f is None for f in fractions):
        return names[0]
    return names[int(np.argsort(fractions)[len(fractions) // 2])]


def evaluate_patches(store: MaskStore, methods: Sequence[Method], config: QualityConfig,
                     names: Sequence[str]) -> tuple[dict[str, Cell], dict]:
    """Cells {method: Cell} of the patch samples `names` of `store`, and one example."""
    eval_config = EvalConfig(traits=config.traits, workers=1)
    keep = _example_name(store, names)
    groups = [names[i : i + config.batch] for i in range(0, len(names), config.batch)]
    cells = {m.name: Cell() for m in methods}
    example: dict = {}
    with ThreadPoolExecutor(config.workers, thread_name_prefix="distpaint-quality") as pool:
        for out in pool.map(lambda g: _patch_group(store, g, methods, eval_config, keep), groups):
            for method, (samples, repair_s, eval_s, mpx) in out["cells"].items():
                cell = cells[method]
                cell.samples.update(samples)
                cell.repair_seconds += repair_s
                cell.eval_seconds += eval_s
                cell.megapixels += mpx
            example = out["example"] or example
    return cells, example


# ---- whole-mask level ----------------------------------------------------------------------
def _repair_whole(method: Method, mask: Any, scratch: Any) -> Any:
    """The repaired whole mask as an array `evaluate` can read tile by tile."""
    if method.repair_whole is None:
        return method.repair(np.asarray(mask.compute(), dtype=bool))
    pred = method.repair_whole(mask, scratch)
    if isinstance(pred, np.ndarray | zarr.Array):
        return pred
    store = MaskStore.create(scratch / "pred.zarr")  # materialised block by block: timed
    store.write("pred", {"mask": pred}, chunks=int(max(mask.chunksize)))
    return store.array("pred")


def _hot_window(gaps: np.ndarray, crop: int) -> tuple[slice, slice]:
    """The crop x crop window, on a crop/2 grid, holding the most gap pixels."""
    h, w = gaps.shape
    if h <= crop and w <= crop:
        return slice(0, h), slice(0, w)
    integral = np.pad(np.cumsum(np.cumsum(gaps, 0, dtype=np.int64), 1), ((1, 0), (1, 0)))
    step = max(1, crop // 2)
    ys = list(range(0, max(1, h - crop + 1), step))
    xs = list(range(0, max(1, w - crop + 1), step))
    best, where = -1, (0, 0)
    for y in ys:
        for x in xs:
            y1, x1 = min(y + crop, h), min(x + crop, w)
            n = integral[y1, x1] - integral[y, x1] - integral[y1, x] + integral[y, x]
            if n > best:
                best, where = int(n), (y, x)
    return slice(where[0], where[0] + crop), slice(where[1], where[1] + crop)


def evaluate_wholes(store: MaskStore, methods: Sequence[Method], config: QualityConfig,
                    names: Sequence[str]) -> tuple[dict[str, Cell], dict]:
    """Cells {method: Cell} of the whole masks `names` of `store`, and one example crop (the
    window of the first mask with the most gap pixels)."""
    eval_config = EvalConfig(traits=config.traits, workers=config.workers)
    cells = {m.name: Cell() for m in methods}
    example: dict = {}
    for i, name in enumerate(names):
        inp, truth, gaps = (store.dask(name, layer) for layer in ("mask", "truth", "gaps"))
        if i == 0:
            window = _hot_window(np.asarray(store.array(name, "gaps")[...]), config.crop) \
                if inp.size <= 8192**2 else (slice(0, config.crop), slice(0, config.crop))
            example = {"name": name, "window": [[window[0].start, window[0].stop],
                                                [window[1].start, window[1].stop]],
                       **{k: np.asarray(store.array(name, src)[window], dtype=bool)
                          for k, src in (("input", "mask"), ("truth", "truth"), ("gaps", "gaps"))},
                       "preds": {}}
        for method in methods:
            cell = cells[method.name]
            with tempfile.TemporaryDirectory(prefix="distpaint-quality-") as tmp:
                t0 = time.perf_counter()
                pred = _repair_whole(method, inp, pathlib.Path(tmp))
                t1 = time.perf_counter()
                cell.samples[name] = evaluate(pred, truth, inp, gaps, eval_config)
                cell.eval_seconds += time.perf_counter() - t1
                cell.repair_seconds += t1 - t0
                cell.megapixels += inp.size / 1e6
                if i == 0:
                    example["preds"][method.name] = np.asarray(pred[window], dtype=bool)
    return cells, example


# ---- the run -------------------------------------------------------------------------------
def run_quality(bench: Benchset | RealBenchset, methods: Sequence[Method], config: QualityConfig | None = None,
                log: Callable[[str], None] = print) -> QualityResult:
    """Evaluate `methods` on `bench` (see the module docstring)."""
    config = config or QualityConfig()
    names = [m.name for m in methods]
    if len(set(names)) != len(names) or not names:
        raise ConfigError(f"method names must be unique and at least one, got {names}")
    if config.ttest is not None and not set(config.ttest) <= set(names):
        raise ConfigError(f"--ttest {' '.join(config.ttest)}: not among the methods "
                          f"({', '.join(names)})")
    start = time.perf_counter()
    cells: dict[str, dict[str, dict[str, Cell]]] = {}
    examples: dict[str, dict[str, dict]] = {}
    ttests: dict[str, dict[str, list[TTest]]] = {}
    for level in config.levels:
        if level not in bench.levels():
            raise ConfigError(f"{bench.path}: has no {level}-level set")
        kinds = bench.kinds(level) if config.kinds is None else list(config.kinds)
        cells[level], examples[level], ttests[level] = {}, {}, {}
        for kind in kinds:
            store = bench.store(level, kind)
            sample_names = store.names()[: config.limit]
            tic = time.perf_counter()
            run = evaluate_patches if level == "patch" else evaluate_wholes
            cells[level][kind], examples[level][kind] = run(store, methods, config, sample_names)
            log(f"{level}/{kind}: {len(sample_names)} sample(s) x {len(methods)} method(s) in "
                f"{time.perf_counter() - tic:.1f} s")
            if config.ttest is not None:
                a, b = config.ttest
                ttests[level][kind] = compare_results(cells[level][kind][a].samples,
                                                      cells[level][kind][b].samples,
                                                      list(TTEST_METRICS))
    bench_info = {"path": str(bench.path), "digest": bench.digest, "config": bench.manifest["config"]}
    return QualityResult(cells, {m.name: m.description for m in methods}, ttests, examples,
                         bench_info, config, time.perf_counter() - start)


# ---- presenting ----------------------------------------------------------------------------
def _cell_text(s: Summary | None) -> str:
    return summary_text(s, _short, "{mean} ({std})")


def no_harm_share(cell: Cell) -> dict[str, Any]:
    """{"share", "masks", "n"}: the share of samples the method did no harm to (mean of
    `no_harm`), how many, out of how many scored (share None when none)."""
    values = [m["no_harm"] for m in cell.samples.values()
              if "no_harm" in m and not math.isnan(m["no_harm"])]
    ok = int(sum(v == 1.0 for v in values))
    return {"share": ok / len(values) if values else None, "masks": ok, "n": len(values)}


def _share_text(cell: Cell) -> str:
    share = no_harm_share(cell)
    if not share["n"]:
        return "n/a"
    return f"{100 * share['share']:.0f}% ({share['masks']}/{share['n']})"


def _harm_cells(cell: Cell) -> list[str]:
    summary = cell.summary
    return [_share_text(cell) if k == "no_harm" else _cell_text(summary.get(k))
            for k in HARM_METRICS]


def _short(v: float) -> str:
    if v == 0:
        return "0"
    return f"{v:.4f}" if abs(v) >= 1e-3 else f"{v:.2e}"


def tables(result: QualityResult) -> list[Any]:
    """Rich tables: one per (level, kind) with a row per method (mean (std) over samples),
    and the t-tests."""
    out = []
    for level, kinds in result.cells.items():
        for kind, by_method in kinds.items():
            n = len(next(iter(by_method.values())).samples)
            table = Table(title=f"{level} level, {kind} (N = {n}): mean (std)")
            table.add_column("method")
            for key in TABLE_METRICS:
                table.add_column(_LABELS[key], justify="right")
            table.add_column("Mpx/s", justify="right")
            for method, cell in by_method.items():
                summary = cell.summary
                speed = cell.megapixels / cell.repair_seconds if cell.repair_seconds else math.inf
                table.add_row(method, *(_cell_text(summary.get(k)) for k in TABLE_METRICS),
                              f"{speed:.1f}")
            out.append(table)
        table = Table(title=f"{level} level: harm, mean (std); no harm = share of masks")
        for column in ("kind", "method", *(_LABELS[k] for k in HARM_METRICS)):
            table.add_column(column, justify="left" if column in ("kind", "method") else "right")
        for kind, by_method in kinds.items():
            for method, cell in by_method.items():
                table.add_row(kind, method, *_harm_cells(cell))
        out.append(table)
    for level, kinds in result.ttests.items():
        if not kinds:
            continue
        a, b = result.config.ttest  # type: ignore[misc]
        table = Table(title=f"{level} level: paired two-tailed t-test, A = {a}, B = {b}")
        for column in ("kind", "metric", "n", "mean A", "mean B", "t", "p"):
            table.add_column(column, justify="left" if column in ("kind", "metric") else "right")
        for kind, tests in kinds.items():
            for t in tests:
                table.add_row(kind, _LABELS.get(t.metric, t.metric), str(t.n), _short(t.mean_a),
                              _short(t.mean_b), "n/a" if math.isnan(t.t) else f"{t.t:.2f}",
                              "n/a" if math.isnan(t.p) else f"{t.p:.2g}")
        out.append(table)
    return out


def markdown(result: QualityResult) -> str:
    """The tables as Markdown (for notes and reports)."""
    lines = [f"Benchmark set `{result.bench['path']}` (seed {result.bench['config']['seed']}, "
             f"digest {result.bench['digest'][:12]}); mean (std) over samples.", ""]
    for level, kinds in result.cells.items():
        for kind, by_method in kinds.items():
            n = len(next(iter(by_method.values())).samples)
            lines += [f"**{level} level, {kind}** (N = {n})", "",
                      "| method | " + " | ".join(_LABELS[k] for k in TABLE_METRICS) + " | Mpx/s |",
                      "|---|" + "---:|" * (len(TABLE_METRICS) + 1)]
            for method, cell in by_method.items():
                summary = cell.summary
                speed = cell.megapixels / cell.repair_seconds if cell.repair_seconds else math.inf
                lines.append(f"| {method} | " + " | ".join(_cell_text(summary.get(k))
                                                          for k in TABLE_METRICS)
                             + f" | {speed:.1f} |")
            lines.append("")
        lines += [f"**{level} level: harm** (mean (std); no harm = share of masks)", "",
                  "| kind | method | " + " | ".join(_LABELS[k] for k in HARM_METRICS) + " |",
                  "|---|---|" + "---:|" * len(HARM_METRICS)]
        for kind, by_method in kinds.items():
            for method, cell in by_method.items():
                lines.append(f"| {kind} | {method} | " + " | ".join(_harm_cells(cell)) + " |")
        lines.append("")
    for level, kinds in result.ttests.items():
        if not kinds:
            continue
        a, b = result.config.ttest  # type: ignore[misc]
        lines += [f"**{level} level: paired two-tailed t-test, A = {a}, B = {b}**", "",
                  "| kind | metric | n | mean A | mean B | t | p |", "|---|---|---:|---:|---:|---:|---:|"]
        for kind, tests in kinds.items():
            for t in tests:
                lines.append(f"| {kind} | {_LABELS.get(t.metric, t.metric)} | {t.n} | "
                             f"{_short(t.mean_a)} | {_short(t.mean_b)} | "
                             f"{'n/a' if math.isnan(t.t) else f'{t.t:.2f}'} | "
                             f"{'n/a' if math.isnan(t.p) else f'{t.p:.2g}'} |")
        lines.append("")
    return "\n".join(lines)


def payload(result: QualityResult, *, samples: bool = True) -> dict:
    """The result as a JSON-able dict (NaN as null); `samples=False` leaves out the per-sample
    values (the aggregates, times and t-tests stay)."""
    results: dict[str, Any] = {}
    for level, kinds in result.cells.items():
        results[level] = {}
        for kind, by_method in kinds.items():
            results[level][kind] = {}
            for method, cell in by_method.items():
                entry = {
                    "n": len(cell.samples),
                    "aggregate": cell.summary,
                    "repair_seconds": round(cell.repair_seconds, 3),
                    "eval_seconds": round(cell.eval_seconds, 3),
                    "repair_mpx_per_s": round(cell.megapixels / cell.repair_seconds, 3)
                    if cell.repair_seconds else None,
                    "no_harm": no_harm_share(cell),
                }
                if samples:
                    entry["samples"] = cell.samples
                results[level][kind][method] = entry
    ttests = {level: {kind: [asdict(t) for t in tests] for kind, tests in kinds.items()}
              for level, kinds in result.ttests.items() if kinds}
    config = asdict(result.config)
    return _clean({
        "format": FORMAT,
        "version": 1,
        "benchset": result.bench,
        "methods": result.methods,
        "config": config,
        "table_metrics": list(TABLE_METRICS),
        "harm_metrics": list(HARM_METRICS),
        "results": results,
        "ttest": {"a": result.config.ttest[0], "b": result.config.ttest[1], "tests": ttests}
        if result.config.ttest else None,
        "seconds": round(result.seconds, 1),
    })


def figure(result: QualityResult, level: str) -> np.ndarray:
    """RGB grid of the example repairs of `level`: one row per kind; columns input (gaps in
    grey), truth, then every method (added red, removed blue, still missing grey)."""
    rows: list[tuple[str, list[tuple[str, np.ndarray]]]] = []
    for kind, ex in result.examples.get(level, {}).items():
        if not ex:
            continue
        panels = [("input + gaps", input_rgb(ex["input"], ex["gaps"])),
                  ("truth", truth_rgb(ex["truth"]))]
        panels += [(m, repair_rgb(ex["input"], pred, ex["truth"])) for m, pred in ex["preds"].items()]
        rows.append((kind, panels))
    if not rows:
        raise ConfigError(f"no {level}-level examples to draw")
    side = max(p.shape[0] for _, panels in rows for _, p in panels)
    scale = max(1, 512 // side)
    title = (f"{level}-level example repairs" if level == "patch" else
             "whole-mask example repairs (crops around the densest gaps)")
    return grid(rows, scale=scale, title=title)

