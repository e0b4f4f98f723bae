"""Trivial "models" for the inference tests (MONAI's sliding-window test, STYLE.md): functions of
known receptive field and alignment wrapped as `Predictor`s, so that every tiling path (the
in-memory reference, the streaming engine, the job layer, the Ray actors) can be checked against
the same function applied to the whole image, with no network involved.

They are plain picklable classes, so Ray actors can build them (the test module registers this
module with cloudpickle to be pickled by value: the workers need not import tests/).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def dilate3(x: np.ndarray) -> np.ndarray:
    """3x3 max filter, zero beyond the border: receptive radius 1, align 1. Foreground
    probability 1 on the dilation, 0 elsewhere."""
    return ndimage.maximum_filter(x, size=3, mode="constant", cval=0.0)


def pool16(x: np.ndarray) -> np.ndarray:
    """Reflect-padded 5x5 mean, 16x16 average pooling, nearest up-sampling, plus a pixel term:
    align 16, receptive radius 2 (one 16 px halo), values in [0, 1]; reflection at every window
    border makes a halo-less or misaligned tiling wrong."""
    y = ndimage.uniform_filter(x, size=5, mode="reflect")
    h, w = y.shape
    pooled = y.reshape(h // 16, 16, w // 16, 16).mean(axis=(1, 3))
    return 0.6 * np.repeat(np.repeat(pooled, 16, axis=0), 16, axis=1) + 0.4 * y


def fires_on_empty(x: np.ndarray) -> np.ndarray:
    """A model that adds pixels where there is no input at all: vertical stripes (3 columns in
    every 16, a pattern equivariant to the 16-aligned shifts between windows) at 0.7 where the
    5x5 neighbourhood is empty, `pool16` elsewhere; radius 2, align 16."""
    near = ndimage.maximum_filter(x, size=5, mode="constant", cval=0.0)
    h, w = x.shape
    stripes = (np.arange(w)[None, :] % 16 < 3) * np.ones((h, 1))
    return np.where(near > 0, pool16(x), 0.7 * stripes).astype(np.float32)


def islands(x: np.ndarray) -> np.ndarray:
    """`dilate3` at 0.9 plus a 3x3 blob at 0.8 in every 16x16 cell (rows and columns 6-8 of
    the cell, equivariant to 16-aligned shifts): blobs next to the input join its fill, the
    others are islands; receptive radius 1, align 16."""
    h, w = x.shape
    cell = lambda n: (np.arange(n) % 16 >= 6) & (np.arange(n) % 16 <= 8)  # noqa: E731
    blobs = cell(h)[:, None] & cell(w)[None, :]
    return np.maximum(0.9 * dilate3(x), 0.8 * blobs).astype(np.float32)


def dilate3_unsure(x: np.ndarray) -> np.ndarray:
    """`dilate3` at 0.9 where the 5x5 neighbourhood holds 8 or more input pixels (beside a line
    3 px wide or more), 0.6 elsewhere (beside a 1-px line: at most 5): pieces of different mean
    confidence; receptive radius 2, align 1."""
    near = ndimage.uniform_filter(x, size=5, mode="constant", cval=0.0) * 25
    return (np.where(near >= 7.5, 0.9, 0.6) * dilate3(x)).astype(np.float32)


def closes(x: np.ndarray) -> np.ndarray:
    """A model that closes gaps: the input at 1, its binary closing by a 25 px square (which
    bridges cuts up to 24 px long) at 0.9; receptive radius 24, align 1."""
    given = x > 0.5
    closed = ndimage.binary_closing(given, structure=np.ones((25, 25), bool))
    return np.where(given, 1.0, 0.9 * closed).astype(np.float32)


FUNCTIONS = {"dilate3": (dilate3, 1, 1), "dilate3_unsure": (dilate3_unsure, 1, 2), "pool16": (pool16, 16, 16),
             "fires_on_empty": (fires_on_empty, 16, 16), "islands": (islands, 16, 16), "closes": (closes, 1, 24)}
"""name -> (function, align, halo)."""


class FnPredictor:
    """`Predictor` applying a named function of `FUNCTIONS` to each window of a batch; counts
    its calls (per process) to show which tiles reached the model."""

    def __init__(self, name: str, interrupt_at: int | None = None) -> None:
        self.name, self.interrupt_at = name, interrupt_at
        self.fn, self.align, self.receptive_halo = FUNCTIONS[name]
        self.calls = 0
        self.windows: list[tuple[int, int]] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.interrupt_at is not None and self.calls >= self.interrupt_at:
            raise KeyboardInterrupt  # Ctrl-C in the middle of a job
        self.windows += [tuple(b.shape[-2:]) for b in batch]
        return np.stack([self.fn(b[0])[None] for b in batch]).astype(np.float32)


class FnFactory:
    """Picklable factory for `job.run_job(model=...)` and Ray actors; `interrupt_at` makes the
    predictor raise KeyboardInterrupt at that call (same fingerprint: the job resumes)."""

    def __init__(self, name: str, interrupt_at: int | None = None) -> None:
        self.name, self.interrupt_at = name, interrupt_at
        self.fingerprint = f"fn:{name}"

    def __call__(self) -> FnPredictor:
        return FnPredictor(self.name, self.interrupt_at)


def whole_reference(image: np.ndarray, name: str, threshold: float = 0.5,
                    keep_input: bool = True, views: int = 1, passes: int = 1) -> np.ndarray:
    """The function on the whole image (zero-padded to its alignment), with the test-time
    refinements `views` and `passes` applied to the whole image, binarised as the engine
    does: probability > threshold, OR the input with keep-input."""
    from distpaint.infer.refine import refine
    from distpaint.infer.tiling import whole_apply

    align = FUNCTIONS[name][1]
    predictor = refine(FnPredictor(name), views=views, passes=passes, threshold=threshold)
    fg = whole_apply(image.astype(np.float32), lambda x: predictor(x[None, None])[0, 0],
                     align) > np.float32(threshold)
    return fg | image if keep_input else fg


def tiny_checkpoint_dir(base) -> str:
    """A checkpoint of the `tiny` recipe trained for 4 steps (about 5 s), made once per test
    session under `base` (pytest's base temp dir) and shared by the inference test files: the
    real checkpoint format and generator, as `distpaint train --config tiny --local` writes."""
    import pathlib

    run = pathlib.Path(base) / "tiny-run"
    ckpt = run / "checkpoints" / "step_00000004"
    if not (ckpt / "model.pt").is_file():
        from distpaint.train.config import load_config, packaged_config
        from distpaint.train.local import train_local

        train_local(load_config(packaged_config("tiny")), run, max_steps=4, log=lambda *a: None)
    assert (ckpt / "model.pt").is_file()
    return str(ckpt)
