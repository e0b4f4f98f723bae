"""Evaluation results as JSON files and rich tables.

JSON layout (one file per evaluation run, written by `distpaint evaluate --json OUT`)::

    {"format": "distpaint-evaluation", "version": 1,
     "inputs": {...what was evaluated...}, "config": {...EvalConfig...},
     "samples": {name: {metric: value}},       # NaN (undefined) is written as null
     "seconds": {name: wall time},
     "aggregate": {metric: {"mean": .., "std": .., "n": ..}}}

`distpaint compare A.json B.json` reads two such files with `read_samples` and pairs samples
by name.

Usage::

    from distpaint.metrics.report import build_payload, write_json, metrics_table
    write_json("eval.json", build_payload({"s1": metrics}, {"s1": 1.2}, {}, {}))
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from rich.table import Table

from distpaint.errors import InputError
from distpaint.metrics.evaluation import METRICS, MetricInfo
from distpaint.metrics.stats import Summary, TTest, aggregate

__all__ = [
    "FORMAT",
    "VERSION",
    "aggregate_table",
    "build_payload",
    "compare_table",
    "format_value",
    "metrics_table",
    "read_samples",
    "write_json",
]

FORMAT = "distpaint-evaluation"
"""Value of the "format" key of result files."""
VERSION = 1
"""Layout version of result files."""
_ARROW = {"lower": "↓", "higher": "↑", "zero": "→0", "": ""}
_INFO = {m.key: m for m in METRICS}


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, NumPy scalars -> Python numbers, dataclasses -> dicts."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, Summary):
        return _clean(asdict(value))
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def build_payload(samples: Mapping[str, Mapping[str, float]], seconds: Mapping[str, float],
                  config: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict:
    """The JSON document of an evaluation run (see the module docstring)."""
    return _clean({
        "format": FORMAT,
        "version": VERSION,
        "inputs": dict(inputs),
        "config": dict(config),
        "samples": samples,
        "seconds": seconds,
        "aggregate": aggregate(samples),
    })


def write_json(path: str | os.PathLike, payload: Mapping[str, Any]) -> None:
    """Write `payload` to `path` (parents created), atomically via a temporary file."""
    path = pathlib.Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(payload, indent=1, allow_nan=False) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise InputError(f"{path}: cannot write the results: {exc}") from None


def read_samples(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """{sample: {metric: value}} of a result file, null read back as NaN."""
    path = pathlib.Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such result file") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable JSON result file: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(
            doc.get("samples"), dict):
        raise InputError(f"{path}: not a distpaint evaluation result (written by "
                         "`distpaint evaluate --json`)")
    return {
        name: {k: float("nan") if v is None else float(v) for k, v in metrics.items()}
        for name, metrics in doc["samples"].items()
    }


def format_value(value: float) -> str:
    """Counts as integers, other values with 4 significant digits, NaN as 'n/a'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.4g}"


def summary_text(s: Summary | None, fmt=format_value, spread: str = "{mean} ± {std}") -> str:
    """A Summary as table text: 'n/a' when empty, the mean alone for one sample (or no std),
    else `spread` filled with the mean and std formatted by `fmt`."""
    if s is None or s.n == 0:
        return "n/a"
    if s.n < 2 or math.isnan(s.std):
        return format_value(s.mean)
    return spread.format(mean=fmt(s.mean), std=fmt(s.std))


def _label(key: str) -> str:
    info: MetricInfo | None = _INFO.get(key)
    return f"{key} {_ARROW[info.better]}" if info else key


def metrics_table(metrics: Mapping[str, float], title: str = "") -> Table:
    """One sample's metrics: group, metric (arrow: which way is better), value."""
    table = Table(title=title or None, show_lines=False)
    table.add_column("group", style="dim")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(_INFO[key].group if key in _INFO else "", _label(key), format_value(value))
    return table


def aggregate_table(summary: Mapping[str, Summary], title: str = "") -> Table:
    """Batch results: metric, mean, std, n."""
    table = Table(title=title or None)
    for name, justify in (("group", "left"), ("metric", "left"), ("mean", "right"),
                          ("std", "right"), ("n", "right")):
        table.add_column(name, justify=justify, style="dim" if name == "group" else None)
    for key, s in summary.items():
        table.add_row(_INFO[key].group if key in _INFO else "", _label(key), format_value(s.mean),
                      format_value(s.std), str(s.n))
    return table


def compare_table(tests: Sequence[TTest], label_a: str, label_b: str) -> Table:
    """Paired t-tests: metric, n, mean A, mean B, t, p."""
    table = Table(title=f"paired two-tailed t-test: A = {label_a}, B = {label_b}")
    table.add_column("metric")
    for name in ("n", "mean A", "mean B", "t", "p"):
        table.add_column(name, justify="right")
    for t in tests:
        p = "n/a" if math.isnan(t.p) else f"{t.p:.3g}"
        table.add_row(_label(t.metric), str(t.n), format_value(t.mean_a), format_value(t.mean_b),
                      "n/a" if math.isnan(t.t) else f"{t.t:.3f}", p)
    return table
