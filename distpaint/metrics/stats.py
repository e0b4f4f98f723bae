"""Aggregates over samples and the paired two-tailed t-test between two methods.

- `aggregate(samples)`: per metric, the mean and the sample standard deviation (ddof=1, as in
  the paper's tables "mean (std)") over the samples where the metric is defined (NaN values,
  e.g. a relative improvement on a sample whose input had no error, are skipped and the
  number of samples used is reported as n).
- `paired_ttest(a, b)`: `scipy.stats.ttest_rel` on the values of the samples present in both
  results with a defined value in both (paper section V-B: "a paired two-tailed t-test").

Usage::

    from distpaint.metrics.stats import aggregate, compare_results
    rows = compare_results(result_a["samples"], result_b["samples"])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["Summary", "TTest", "aggregate", "compare_results", "paired_ttest", "summarize"]


@dataclass(frozen=True)
class Summary:
    """Mean and spread of one metric over samples."""

    mean: float
    """Mean over the samples where the metric is defined (NaN if none)."""
    std: float
    """Sample standard deviation, ddof=1 (NaN with fewer than two values)."""
    n: int
    """Number of samples with a defined value."""


def summarize(values: Sequence[float]) -> Summary:
    """Summary of `values`, NaN skipped."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=np.float64)
    if len(v) == 0:
        return Summary(float("nan"), float("nan"), 0)
    return Summary(float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan"), len(v))


def aggregate(samples: Mapping[str, Mapping[str, float]]) -> dict[str, Summary]:
    """{metric: Summary} over the per-sample metric dicts, metrics in first-seen order."""
    keys: list[str] = []
    for metrics in samples.values():
        keys += [k for k in metrics if k not in keys]
    return {k: summarize([m.get(k, float("nan")) for m in samples.values()]) for k in keys}


@dataclass(frozen=True)
class TTest:
    """Paired two-tailed t-test of one metric between methods A and B."""

    metric: str
    """Metric key."""
    n: int
    """Samples paired (present and defined in both)."""
    mean_a: float
    """Mean of A over the paired samples."""
    mean_b: float
    """Mean of B over the paired samples."""
    t: float
    """t statistic of A - B (NaN when undefined: fewer than 2 pairs, or the differences A - B
    are the same on every sample so their variance is 0)."""
    p: float
    """Two-tailed p-value (NaN when undefined)."""


def _defined(x: float | None) -> bool:
    return x is not None and not math.isnan(x)


def paired_ttest(metric: str, a: Mapping[str, float], b: Mapping[str, float]) -> TTest:
    """Paired two-tailed t-test of {sample: value} maps `a` and `b` on their common samples."""
    names = sorted(n for n in a if n in b and _defined(a[n]) and _defined(b[n]))
    va = np.array([a[n] for n in names], dtype=np.float64)
    vb = np.array([b[n] for n in names], dtype=np.float64)
    mean_a = float(va.mean()) if len(va) else float("nan")
    mean_b = float(vb.mean()) if len(vb) else float("nan")
    diff = va - vb
    scale = max(float(np.abs(va).max(initial=0)), float(np.abs(vb).max(initial=0)), 1e-300)
    if len(names) < 2 or np.ptp(diff) <= 1e-9 * scale:
        # constant differences (identical methods, or an exact shift): t is 0/0 or +-inf,
        # which says nothing about significance; reported as undefined
        return TTest(metric, len(names), mean_a, mean_b, float("nan"), float("nan"))
    res = stats.ttest_rel(va, vb)
    return TTest(metric, len(names), mean_a, mean_b, float(res.statistic), float(res.pvalue))


def compare_results(a: Mapping[str, Mapping[str, float]], b: Mapping[str, Mapping[str, float]],
                    metrics: Sequence[str] | None = None) -> list[TTest]:
    """One `TTest` per metric (default: every metric present in both) between per-sample
    results {sample: {metric: value}} of methods A and B."""
    if metrics is None:
        seen_b = {k for m in b.values() for k in m}
        metrics = list(dict.fromkeys(k for m in a.values() for k in m if k in seen_b))
    return [paired_ttest(k, {n: m.get(k, float("nan")) for n, m in a.items()},
                         {n: m.get(k, float("nan")) for n, m in b.items()}) for k in metrics]
