"""Pictures of repairs: colour-coded panels and a labelled grid of them, as PNG.

Colours of a repair panel (`repair_rgb`): the input pixels the method kept are white, the
pixels it added red, the input pixels it removed blue, and the truth pixels still missing
dark grey (on black). The input panel (`input_rgb`) shows the input white and the gaps (the
truth pixels removed, what a method should restore) in the same dark grey, so the two read
alike. `grid` lays panels out in rows with titles, using Pillow (imageio's image backend).

    from distpaint.benchmark.figures import grid, input_rgb, repair_rgb, write_png
    rows = [("roads", [("input", input_rgb(inp, gaps)), ("closing", repair_rgb(inp, pred, truth))])]
    write_png("repairs.png", grid(rows, scale=2))
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence

import imageio.v3 as iio
import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["ADDED", "LEGEND", "MISSING", "REMOVED", "grid", "input_rgb", "repair_rgb",
           "truth_rgb", "write_png"]

KEPT, ADDED, REMOVED, MISSING = (255, 255, 255), (235, 30, 30), (40, 110, 255), (85, 85, 85)
LEGEND = ("white: input kept   red: added by the method   blue: input removed by the method   "
          "grey: truth still missing")
_BG, _TEXT, _PAD = (24, 24, 24), (230, 230, 230), 6


def repair_rgb(inp: np.ndarray, pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8 panel of one repair (see the module docstring for the colours)."""
    inp, pred, truth = (np.asarray(a, dtype=bool) for a in (inp, pred, truth))
    rgb = np.zeros((*inp.shape, 3), np.uint8)
    rgb[truth & ~pred] = MISSING
    rgb[inp & pred] = KEPT
    rgb[pred & ~inp] = ADDED
    rgb[inp & ~pred] = REMOVED
    return rgb


def input_rgb(inp: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8: the corrupted input white, its gaps dark grey."""
    rgb = np.zeros((*inp.shape, 3), np.uint8)
    rgb[np.asarray(gaps, bool)] = MISSING
    rgb[np.asarray(inp, bool)] = KEPT
    return rgb


def truth_rgb(truth: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8: the complete mask white."""
    rgb = np.zeros((*truth.shape, 3), np.uint8)
    rgb[np.asarray(truth, bool)] = KEPT
    return rgb


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def grid(rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]]]], *, scale: int = 1,
         title: str = "", legend: str = LEGEND) -> np.ndarray:
    """(H, W, 3) uint8 image of `rows` = [(row label, [(panel title, rgb panel), ...]), ...]:
    panels enlarged `scale` times (nearest), titles above each panel, the label left of each
    row, an optional title on top and the legend at the bottom."""
    if not rows or not all(panels for _, panels in rows):
        raise ValueError("grid needs at least one row of panels")
    ph = max(p.shape[0] for _, panels in rows for _, p in panels) * scale
    pw = max(p.shape[1] for _, panels in rows for _, p in panels) * scale
    ncols = max(len(panels) for _, panels in rows)
    font, line = _font(14), 18
    label_w = 90
    top = (line + _PAD) if title else _PAD
    cell_h = line + ph + _PAD
    width = label_w + ncols * (pw + _PAD) + _PAD
    height = top + len(rows) * cell_h + line + _PAD
    canvas = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((_PAD, _PAD // 2), title, fill=_TEXT, font=font)
    for r, (label, panels) in enumerate(rows):
        y = top + r * cell_h
        draw.text((_PAD, y + line + ph // 2 - line // 2), label, fill=_TEXT, font=font)
        for c, (name, panel) in enumerate(panels):
            x = label_w + c * (pw + _PAD)
            draw.text((x, y), name, fill=_TEXT, font=font)
            big = np.kron(panel, np.ones((scale, scale, 1), np.uint8)) if scale > 1 else panel
            canvas.paste(Image.fromarray(np.ascontiguousarray(big)), (x, y + line))
    draw.text((_PAD, height - line - _PAD // 2), legend, fill=_TEXT, font=_font(12))
    return np.asarray(canvas)


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 image as PNG (parents created, atomically)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    iio.imwrite(tmp, rgb, extension=".png")
    os.replace(tmp, path)
