"""Metrics for repaired thin-structure masks: pixel (paper section V-A), topology (components,
Betti numbers, clDice, skeleton recall), false fill and root traits; all blind, all tiled for
masks larger than memory.

Usage::

    from distpaint.metrics import evaluate
    metrics = evaluate(pred, truth, input=corrupted)   # {metric: value}, see METRICS

or on the command line: `distpaint evaluate --pred P --truth T --input I --json out.json`.
"""

from distpaint.metrics.evaluation import METRICS, BatchResult, EvalConfig, evaluate, evaluate_store
from distpaint.metrics.pixel import (
    false_fill,
    mse,
    mse_in_gaps,
    paper_relative_improvement,
    pixel_difference,
    relative_improvement,
)
from distpaint.metrics.stats import aggregate, compare_results, paired_ttest
from distpaint.metrics.topology import (
    betti_errors,
    betti_numbers,
    cldice,
    euler_number,
    n_components,
    skeleton_recall,
)
from distpaint.metrics.traits import Traits, traits

__all__ = [
    "METRICS",
    "BatchResult",
    "EvalConfig",
    "Traits",
    "aggregate",
    "betti_errors",
    "betti_numbers",
    "cldice",
    "compare_results",
    "euler_number",
    "evaluate",
    "evaluate_store",
    "false_fill",
    "mse",
    "mse_in_gaps",
    "n_components",
    "paired_ttest",
    "paper_relative_improvement",
    "pixel_difference",
    "relative_improvement",
    "skeleton_recall",
    "traits",
]
