"""Re-composition of inpainted patches into the whole mask (Algorithm 1, step 8).

The training step puts each rank's Bernoulli-sampled patches with their positions and asks
for the *global view*: the whole-mask window around the step's patches with the patches
pasted back, X_hat, next to the same window of the complete mask Y. D_G scores the pair.

Background of X_hat: the paper recomposes "in the corrupted mask X". With gaps introduced per
patch (Algorithm 1, step 4), X equals Y outside the step's patches, so the in-memory
implementation uses Y as the background unless a corrupted whole mask is registered (a store
whose samples were corrupted as a whole); the Ray actor of the distributed trainer does the
same. The window is the patches' bounding box plus `margin`, at most `max_size` per side
(centred on the box; parts of patches outside it are dropped).

`Recomposer` is the interface (a `typing.Protocol`); `InMemoryRecomposer` is the
single-process implementation. Implementations must only answer `global_view(name, step)`
once all ranks have put their patches for that step (the caller synchronises).

A whole mask is registered either as an array (held in memory) or as `MaskWindows`, anything
that reads a window of it on request: the re-composer actor registers windows of the training
store (`distpaint.train.windows`), so a step reads only its view window, never a whole mask.
Both give the same bytes.

    rec = InMemoryRecomposer(max_size=4096)
    rec.add_mask("m0", truth)
    rec.put("m0", step, patches, ys, xs)
    x_hat, y, origin = rec.global_view("m0", step)
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

__all__ = ["GlobalView", "Recomposer", "MaskWindows", "ArrayWindows", "InMemoryRecomposer", "view_window",
           "compose"]


class GlobalView(NamedTuple):
    """The recomposed window and the complete mask's same window."""

    x_hat: np.ndarray
    """`(h, w)` bool: background with the step's patches pasted in."""
    truth: np.ndarray
    """`(h, w)` bool: the complete mask Y over the same window."""
    origin: tuple[int, int]
    """(row, column) of the window's top-left corner in the whole mask."""


@runtime_checkable
class Recomposer(Protocol):
    """Collects a step's patches from all ranks and serves the recomposed global view."""

    def put(self, name: str, step: int, patches: np.ndarray, ys: np.ndarray, xs: np.ndarray,
            *, rank: int = 0, tag: str = "sample") -> None:
        """Store `patches` `(m, P, P)` bool/uint8 at top-left corners `ys`, `xs` `(m,)` of mask
        `name` for `step`; `tag` separates several compositions of one step (e.g. the sampled
        and the thresholded output for a self-critical baseline)."""

    def global_view(self, name: str, step: int, *, tag: str = "sample") -> GlobalView:
        """X_hat and Y over the window around the patches put for (`name`, `step`, `tag`)."""


@runtime_checkable
class MaskWindows(Protocol):
    """A whole mask read one window at a time."""

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the whole mask."""

    def window(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """`(y1 - y0, x1 - x0)` bool: rows y0:y1, columns x0:x1 (inside the mask), an array the
        caller owns (neither a view of, nor shared with, anything kept)."""


class ArrayWindows:
    """`MaskWindows` of a mask held in memory."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = np.asarray(array, dtype=bool)

    @property
    def shape(self) -> tuple[int, int]:
        return self.array.shape  # type: ignore[return-value]

    def window(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return self.array[y0:y1, x0:x1].copy()


def view_window(shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray, patch: tuple[int, int],
                margin: int, max_size: int) -> tuple[int, int, int, int]:
    """`(y0, y1, x0, x1)`: bounding box of the patches plus `margin`, clipped to `shape`, at
    most `max_size` per side (centred on the box)."""
    bounds = []
    for lo, size, length in ((np.min(ys), np.max(ys) + patch[0], shape[0]),
                             (np.min(xs), np.max(xs) + patch[1], shape[1])):
        a, b = max(0, int(lo) - margin), min(length, int(size) + margin)
        if b - a > max_size:
            centre = (int(lo) + int(size)) // 2
            a = min(max(0, centre - max_size // 2), length - max_size)
            b = a + max_size
        bounds += [a, b]
    return bounds[0], bounds[1], bounds[2], bounds[3]


def compose(background: np.ndarray, patches: np.ndarray, ys: np.ndarray, xs: np.ndarray,
            origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Copy of `background` (a window at `origin` of the whole mask) with `patches` `(m, P, Q)`
    pasted at whole-mask corners `ys`, `xs`; parts outside the window are dropped."""
    out = np.array(background, dtype=bool, copy=True)
    h, w = out.shape
    p, q = patches.shape[1:]
    for patch, y, x in zip(patches, ys, xs):
        r0, c0 = int(y) - origin[0], int(x) - origin[1]
        a0, b0 = max(r0, 0), max(c0, 0)
        a1, b1 = min(r0 + p, h), min(c0 + q, w)
        if a1 > a0 and b1 > b0:
            out[a0:a1, b0:b1] = patch[a0 - r0:a1 - r0, b0 - c0:b1 - c0]
    return out


class InMemoryRecomposer:
    """`Recomposer` of masks registered as arrays or `MaskWindows` (single process: tests,
    `--local` runs, and inside the re-composer actor)."""

    def __init__(self, max_size: int = 4096, margin: int = 256, keep_steps: int = 2) -> None:
        self.max_size = max_size
        self.margin = margin
        self.keep_steps = keep_steps
        self._truth: dict[str, MaskWindows] = {}
        self._background: dict[str, MaskWindows | None] = {}
        self._puts: dict[tuple[str, int, str], list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]] = {}

    def add_mask(self, name: str, truth: np.ndarray | MaskWindows,
                 background: np.ndarray | MaskWindows | None = None) -> None:
        """Register whole mask `name`: its complete version Y and optionally the corrupted X
        to compose into (default: Y, see the module docstring); arrays are held in memory,
        `MaskWindows` are asked for each step's window."""
        truth = truth if isinstance(truth, MaskWindows) else ArrayWindows(truth)
        if background is not None:
            background = background if isinstance(background, MaskWindows) else ArrayWindows(background)
            if tuple(background.shape) != tuple(truth.shape):
                raise ValueError(f"background of {name!r} has shape {tuple(background.shape)}, "
                                 f"truth {tuple(truth.shape)}")
        self._truth[name] = truth
        self._background[name] = background

    def discard(self, name: str) -> None:
        """Forget whole mask `name` (a bounded cache of masks evicts with this)."""
        self._truth.pop(name, None)
        self._background.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._truth

    def put(self, name: str, step: int, patches: np.ndarray, ys: np.ndarray, xs: np.ndarray,
            *, rank: int = 0, tag: str = "sample") -> None:
        if name not in self._truth:
            raise KeyError(f"mask {name!r} was not registered with add_mask")
        patches = np.asarray(patches).astype(bool, copy=False)
        if patches.ndim != 3 or len(patches) != len(ys) or len(ys) != len(xs):
            raise ValueError("patches must be (m, P, Q) with m corners in ys and xs")
        # forget steps that can no longer be asked for
        for key in [k for k in self._puts if k[1] <= step - self.keep_steps]:
            del self._puts[key]
        self._puts.setdefault((name, step, tag), []).append(
            (rank, patches, np.asarray(ys), np.asarray(xs)))

    def global_view(self, name: str, step: int, *, tag: str = "sample") -> GlobalView:
        parts = sorted(self._puts.get((name, step, tag), []), key=lambda part: part[0])
        if not parts:
            raise KeyError(f"no patches were put for mask {name!r}, step {step}, tag {tag!r}")
        patches = np.concatenate([p[1] for p in parts])
        ys = np.concatenate([p[2] for p in parts])
        xs = np.concatenate([p[3] for p in parts])
        truth, background = self._truth[name], self._background[name]
        y0, y1, x0, x1 = view_window(tuple(truth.shape), ys, xs, patches.shape[1:], self.margin, self.max_size)
        y = truth.window(y0, y1, x0, x1)  # one read of the window: Y is X's background too by default
        x = y if background is None else background.window(y0, y1, x0, x1)
        return GlobalView(compose(x, patches, ys, xs, (y0, x0)), y, (y0, x0))
