"""The demo's report folder: metrics as Markdown and JSON, before/after PNGs.

    report/
      metrics.md        what was run, one table of the headline metrics per method (mean and
                        std over samples), the images of every sample
      metrics.json      {"format": "distpaint-demo-report", "config", "seconds", "methods":
                        {method: evaluation payload as `distpaint evaluate --json` writes it}}
      images/<sample>/before.png      the corrupted input (white), the gaps M (grey)
      images/<sample>/truth.png       the complete mask
      images/<sample>/<method>.png    the input (white) and the pixels the method added (red)

Images of masks larger than `preview_max_side` are reduced by an integer factor, a preview
pixel being set when any pixel of its block is, so thin structures stay visible.

    from distpaint.demo.report import write_report
    write_report(report_dir, corrupted_store, {"closing": store, ...}, results, config, seconds)
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Mapping
from typing import Any

import dask.array as da
import numpy as np

from distpaint.data.store import MaskStore
from distpaint.metrics.evaluation import BatchResult, metric_info
from distpaint.metrics.report import build_payload, summary_text, write_json
from distpaint.metrics.stats import Summary, aggregate

__all__ = ["HEADLINE", "REPORT_FORMAT", "preview", "overlay", "write_report"]

REPORT_FORMAT = "distpaint-demo-report"
"""Value of the "format" key of metrics.json."""
HEADLINE = (
    "pixel_diff", "rel_pixel_diff", "mse_gaps", "skeleton_recall_gaps", "component_diff",
    "cldice", "betti1_error", "added_pixels", "false_fill",
)
"""Metrics shown in the Markdown table (every metric is in metrics.json)."""
WHITE, GREY, RED = (255, 255, 255), (90, 90, 90), (230, 20, 20)
_ARROWS = {"lower": " ↓", "higher": " ↑", "zero": " →0", "": ""}


def preview(layer: Any, max_side: int) -> np.ndarray:
    """(h, w) bool numpy view of a lazy (H, W) mask, any-pooled by the smallest integer factor
    f with max(H, W) / f <= max_side: h = ceil(H / f), w = ceil(W / f) (f = 1 if it fits)."""
    factor = max(1, math.ceil(max(layer.shape) / max_side))
    if factor == 1:
        return np.asarray(layer.compute(), dtype=bool)
    # pad the ragged edge with background so that its pixels are shown too
    padded = da.pad(layer.astype(bool), [(0, -n % factor) for n in layer.shape])
    return np.asarray(da.coarsen(np.any, padded, {0: factor, 1: factor}).compute(), bool)


def overlay(base: np.ndarray, extra: np.ndarray | None = None, colour=RED,
            under: np.ndarray | None = None) -> np.ndarray:
    """(h, w, 3) uint8: `under` grey, then `base` white, then `extra` & ~base in `colour`."""
    rgb = np.zeros((*base.shape, 3), np.uint8)
    if under is not None:
        rgb[under] = GREY
    rgb[base] = WHITE
    if extra is not None:
        rgb[extra & ~base] = colour
    return rgb


def _write_png(path: pathlib.Path, rgb: np.ndarray) -> None:
    import imageio.v3 as iio  # deferred: the CLI imports this module at start-up (commands.demo)

    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, rgb, extension=".png")


def write_images(images: pathlib.Path, corrupted: MaskStore, methods: Mapping[str, MaskStore],
                 max_side: int) -> dict[str, dict[str, str]]:
    """Write every sample's PNGs; returns {sample: {view: path relative to the report}}."""
    written: dict[str, dict[str, str]] = {}
    for name in corrupted.names():
        inp = preview(corrupted.dask(name, "mask"), max_side)
        views = {
            "before": overlay(inp, under=preview(corrupted.dask(name, "gaps"), max_side)),
            "truth": overlay(preview(corrupted.dask(name, "truth"), max_side)),
        }
        for method, store in methods.items():
            views[method] = overlay(inp, preview(store.dask(name, "mask"), max_side))
        written[name] = {}
        for view, rgb in views.items():
            path = images / name / f"{view}.png"
            _write_png(path, rgb)
            written[name][view] = path.relative_to(images.parent).as_posix()
    return written


def markdown(config: Mapping[str, Any], summaries: Mapping[str, Mapping[str, Summary]],
             images: Mapping[str, Mapping[str, str]], seconds: Mapping[str, float],
             descriptions: Mapping[str, str]) -> str:
    """The text of metrics.md."""
    n = len(images)
    lines = [
        "# distpaint demo report", "",
        f"{n} synthetic {config['kind']} mask(s) of {config['size']} x {config['size']} px "
        f"(seed {config['seed']}), corrupted with `{config['gaps']}` gaps "
        f"(density {config['gap_density']}), repaired by each method below and scored against "
        "the complete masks. Mean ± standard deviation over the samples; ↑ higher is better, "
        "↓ lower is better. All metrics, per sample, are in `metrics.json`.", "",
        "| method | " + " | ".join(f"{k}{_ARROWS[metric_info(k).better]}" for k in HEADLINE) + " |",
        "|---|" + "---:|" * len(HEADLINE),
    ]
    for method, summary in summaries.items():
        lines.append(f"| {method} | " + " | ".join(summary_text(summary.get(k)) for k in HEADLINE) + " |")
    lines += ["", "## Methods", ""]
    lines += [f"- **{m}**: {descriptions.get(m, '')}" for m in summaries]
    lines += ["", "## Metrics", ""]
    lines += [f"- `{k}`: {metric_info(k).doc}" for k in HEADLINE]
    lines += ["", "## Images", "",
              "`before`: the corrupted input in white, the removed pixels (gaps) in grey. "
              "One image per method: the input in white and the pixels the method added in "
              "red. `truth`: the complete mask.", ""]
    for name, views in images.items():
        lines += [f"### {name}", "", "| " + " | ".join(views) + " |", "|" + "---|" * len(views),
                  "| " + " | ".join(f"![{v}]({p})" for v, p in views.items()) + " |", ""]
    lines += ["## Timing", ""]
    lines += [f"- {stage}: {secs:.1f} s" for stage, secs in seconds.items()]
    return "\n".join(lines) + "\n"


def write_report(report: pathlib.Path, corrupted: MaskStore, stores: Mapping[str, MaskStore],
                 results: Mapping[str, BatchResult], config: Mapping[str, Any],
                 seconds: Mapping[str, float], descriptions: Mapping[str, str],
                 max_side: int) -> dict[str, dict[str, Summary]]:
    """Write metrics.md, metrics.json and the images into `report`; returns the summaries
    {method: {metric: Summary}}. `results` and `stores` are keyed by method; `stores` holds
    the repaired stores whose images are drawn (the unrepaired input has none of its own)."""
    images = write_images(report / "images", corrupted, stores, max_side)
    summaries = {m: aggregate(r.samples) for m, r in results.items()}
    payload = {
        "format": REPORT_FORMAT,
        "version": 1,
        "config": dict(config),
        "seconds": dict(seconds),
        "images": images,
        "methods": {
            m: build_payload(r.samples, r.seconds, r.config,
                             {"pred_store": str(stores[m].path) if m in stores else str(corrupted.path),
                              "truth_store": str(corrupted.path)})
            for m, r in results.items()
        },
    }
    write_json(report / "metrics.json", payload)
    text = markdown(config, summaries, images, seconds, descriptions)
    (report / "metrics.md").write_text(text)
    return summaries
