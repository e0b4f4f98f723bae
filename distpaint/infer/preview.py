"""Preview image of a repair: the input in white, the pixels the model added in red (as in the
paper's Fig. 1), pixels of the input that the output dropped (only with --no-keep-input) in
blue, on black.

Masks larger than `max_side` are reduced by an integer factor f: a preview pixel shows the
strongest class present in its f x f block (added > dropped > input > background), so thin
structures and single added pixels stay visible. The masks are read in bands of rows, so a
50000 x 50000 mask needs a few hundred MB at most. Written atomically (temporary file, rename).

    write_preview("roads.preview.png", given=input_array, added=added_array)
"""

from __future__ import annotations

import contextlib
import math
import os
import pathlib
import uuid
from typing import Any

import numpy as np

from distpaint.errors import InputError

__all__ = ["COLOURS", "preview_factor", "render_preview", "write_preview"]

COLOURS = {
    "background": (0, 0, 0),
    "input": (255, 255, 255),
    "dropped": (0, 128, 255),
    "added": (255, 0, 0),
}
"""RGB of each class of preview pixel."""
_BAND_PIXELS = 1 << 26  # ~64 Mpx of each mask per band


def preview_factor(shape: tuple[int, int], max_side: int) -> int:
    """The reduction factor: the smallest integer f with max(H, W) / f <= max_side."""
    return max(1, math.ceil(max(shape) / max(1, int(max_side))))


def _block_any(band: np.ndarray, f: int) -> np.ndarray:
    """(h, w) bool -> (ceil(h/f), ceil(w/f)): True where the f x f block holds a True."""
    if f == 1:
        return band
    h, w = band.shape
    hp, wp = -(-h // f) * f, -(-w // f) * f
    if (hp, wp) != (h, w):
        padded = np.zeros((hp, wp), bool)
        padded[:h, :w] = band
        band = padded
    return band.reshape(hp // f, f, wp // f, f).any(axis=(1, 3))


def _rows(array: Any, y0: int, y1: int) -> np.ndarray:
    part = array[y0:y1]
    part = np.asarray(part.compute() if hasattr(part, "compute") else part)
    return part if part.dtype == bool else part != 0


def render_preview(given: Any, added: Any, output: Any | None = None,
                   max_side: int = 2048) -> np.ndarray:
    """The preview (h, w, 3) uint8 of 2-D array-likes `given` (the input), `added` and, to
    show dropped input pixels, `output` (None: nothing was dropped)."""
    shape = tuple(int(n) for n in given.shape)
    f = preview_factor(shape, max_side)
    rows = max(f, _BAND_PIXELS // max(1, shape[1]) // f * f)
    out = np.zeros((-(-shape[0] // f), -(-shape[1] // f), 3), np.uint8)
    for y0 in range(0, shape[0], rows):
        y1 = min(y0 + rows, shape[0])
        g, a = _rows(given, y0, y1), _rows(added, y0, y1)
        layers = [("input", _block_any(g, f))]
        if output is not None:
            layers.append(("dropped", _block_any(g & ~_rows(output, y0, y1), f)))
        layers.append(("added", _block_any(a, f)))
        band = out[y0 // f : y0 // f + layers[0][1].shape[0]]
        for name, where in layers:  # later classes paint over earlier ones
            band[where] = COLOURS[name]
    return out


def write_preview(path: str | os.PathLike, given: Any, added: Any, output: Any | None = None,
                  max_side: int = 2048) -> tuple[int, int]:
    """Render the preview and write it to `path` as PNG, atomically; returns its (h, w)."""
    # deferred: `distpaint` imports the job (and so this module) when it starts; imageio only
    # when a preview is written
    import imageio.v3 as iio

    path = pathlib.Path(path)
    image = render_preview(given, added, output, max_side)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # encoded in memory, then written: imageio writing a file on a full disk fails its
        # close, and its plugin's __del__ closes again, printing a traceback
        tmp.write_bytes(iio.imwrite("<bytes>", image, extension=".png"))
        os.replace(tmp, path)
    except OSError as exc:  # a read-only folder, a folder in the way, a full disk: the user's
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise InputError(f"{path}: cannot write the preview: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return image.shape[0], image.shape[1]
