"""What a sweep leaves behind: the summary table, the metric-vs-parameter plot, the best config.

- `summary_rows(trials, space, metric, mode, max_steps)`: one row per trial (its sampled values,
  the metric at its last report and its best over all reports, the other validation scores,
  steps trained, whether ASHA stopped it, its checkpoint), best first;
- `write_table(rows, folder)`: `summary.csv` and `summary.md`;
- `plot_metric(rows, space, metric, path)`: a PNG with one panel per searched parameter (the
  metric at each trial's last report against the parameter's value; log axis for log-uniform
  parameters, one position per value for choices; hollow markers: stopped early, star: best);
- `write_best_config(cfg, path, header)`: the best trial's full config as YAML that
  `distpaint train --config` reads unchanged (checked by reading it back).

Trials are plain dicts (`TrialOutcome`), built from Tune's `ResultGrid` by
`distpaint.tune.sweep`, so this module needs neither Ray nor MLflow (matplotlib for the plot).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distpaint.errors import ConfigError
from distpaint.train.config import TrainConfig, config_to_dict, dump_config, load_config

__all__ = ["TrialOutcome", "summary_rows", "write_table", "markdown_table", "plot_metric", "write_best_config",
           "better"]

_OTHER_SCORES = ("val/rel_component_diff", "val/cldice", "val/mse_gaps")


@dataclass
class TrialOutcome:
    """A finished (or stopped, or failed) trial."""

    trial_id: str
    """Tune's trial id."""
    values: dict
    """Its sampled values {path: value} (plain Python)."""
    last: dict
    """The metrics of its last report (empty if it never reported)."""
    history: list[dict] = field(default_factory=list)
    """Every report's metrics, in order."""
    error: str | None = None
    """The error that ended it, if any."""
    run_dir: str | None = None
    """Its training run's directory."""
    unfinished: bool = False
    """The sweep was interrupted before the trial ended (it resumes with the sweep)."""


def better(a: float, b: float, mode: str) -> bool:
    """Whether score `a` beats `b` (NaN never wins)."""
    if not math.isfinite(a):
        return False
    if not math.isfinite(b):
        return True
    return a > b if mode == "max" else a < b


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def summary_rows(trials: list[TrialOutcome], space, metric: str, mode: str, max_steps: int) -> list[dict]:
    """One row per trial, best (by the metric at its last report) first."""
    rows = []
    for t in trials:
        steps = int(_num(t.last.get("step", 0)) if t.last else 0)
        history = [_num(h.get(metric)) for h in t.history if metric in h]
        finite = [v for v in history if math.isfinite(v)]
        best = (max(finite) if mode == "max" else min(finite)) if finite else float("nan")
        status = ("error" if t.error else "unfinished" if t.unfinished
                  else "completed" if steps >= max_steps else "stopped early")
        row = {"trial": t.trial_id}
        for p in space.params:
            row[p.path] = p.label(t.values.get(p.path)) if p.path in t.values else ""
        row[metric] = _num(t.last.get(metric))
        row[f"best {metric}"] = best
        for key in _OTHER_SCORES:
            if key != metric:
                row[key] = _num(t.last.get(key))
        row.update(steps=steps, status=status, time_s=_num(t.last.get("time_total_s")),
                   checkpoint=t.last.get("checkpoint_path") or "", run_dir=t.run_dir or "")
        row["_values"] = dict(t.values)
        row["_error"] = t.error
        rows.append(row)
    sign = -1.0 if mode == "max" else 1.0

    def key(r: dict) -> tuple:
        v = r[metric]
        return (0, sign * v) if math.isfinite(v) else (1, 0.0)

    return sorted(rows, key=key)


def _columns(rows: list[dict]) -> list[str]:
    return [c for c in rows[0] if not c.startswith("_")] if rows else []


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def markdown_table(rows: list[dict], drop: tuple[str, ...] = ("checkpoint", "run_dir")) -> str:
    """The rows as a Markdown table (paths left out: they are in the CSV)."""
    cols = [c for c in _columns(rows) if c not in drop]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_table(rows: list[dict], folder: str | os.PathLike) -> tuple[Path, Path]:
    """`summary.csv` (every column) and `summary.md` in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cols = _columns(rows)
    csv_path, md_path = folder / "summary.csv", folder / "summary.md"
    tmp = csv_path.with_name(f".summary.csv.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({c: r[c] for c in cols} for r in rows)
    os.replace(tmp, csv_path)
    _atomic_write(md_path, markdown_table(rows))
    return csv_path, md_path


def plot_metric(rows: list[dict], space, metric: str, path: str | os.PathLike, title: str = "") -> Path:
    """PNG of the metric (last report) against each searched parameter (see module docstring)."""
    # deferred: matplotlib takes ~0.6 s to import, only the plot needs it, and the Agg backend
    # must be chosen before pyplot is imported
    import matplotlib

    matplotlib.use("Agg")  # no display on cluster nodes
    import matplotlib.pyplot as plt  # deferred: as above, after the backend is chosen
    from matplotlib.ticker import NullFormatter  # deferred: as above

    path = Path(path)
    params = space.params
    cols = min(3, len(params))
    nrows = math.ceil(len(params) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    scored = [r for r in rows if math.isfinite(r[metric])]
    best = scored[0] if scored else None
    for ax, p in zip(axes.ravel(), params):
        if p.categorical:
            labels = [p.label(v) for v in p.args]
            pos = {lab: i for i, lab in enumerate(labels)}
            ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
            ax.set_xlim(-0.5, len(labels) - 0.5)
        for r in scored:
            value = r["_values"].get(p.path)
            x = pos[p.label(value)] if p.categorical else float(value)
            done = r["status"] == "completed"
            ax.scatter([x], [r[metric]], s=40, edgecolors="tab:blue",
                       facecolors="tab:blue" if done else "none", zorder=2)
            # the step of the last report: early-stopped trials were scored earlier in training
            ax.annotate(str(r["steps"]), (x, r[metric]), xytext=(4, 3), textcoords="offset points",
                        fontsize=7, color="0.35")
        if best is not None:
            value = best["_values"].get(p.path)
            x = pos[p.label(value)] if p.categorical else float(value)
            ax.scatter([x], [best[metric]], marker="*", s=220, color="tab:red", zorder=3, label="best")
        if not p.categorical:  # the searched range, so panels of one space compare across sweeps
            low, high = float(p.args[0]), float(p.args[-1])
            if p.log:
                ax.set_xscale("log")
                ax.set_xlim(low / 1.25, high * 1.25)
                ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on short ranges
            else:
                pad = 0.05 * (high - low) or 0.5
                ax.set_xlim(low - pad, high + pad)
        ax.set_xlabel(p.path)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(params):]:
        ax.axis("off")
    fig.suptitle(title or f"{metric} at each trial's last report (label: its step; hollow: stopped early; star: best)",
                 fontsize=10)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def write_best_config(cfg: TrainConfig, path: str | os.PathLike, header: str = "") -> Path:
    """The config as YAML (comment `header` on top), read back to check that `distpaint train
    --config` accepts it unchanged."""
    path = Path(path)
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(comment + dump_config(cfg))
    if config_to_dict(load_config(tmp)) != config_to_dict(cfg):
        tmp.unlink()
        raise ConfigError(f"{path}: the written config does not read back equal (a bug)")
    os.replace(tmp, path)
    return path
