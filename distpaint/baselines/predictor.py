"""The baselines as inference "models": `distpaint baseline` on files, folders, globs and stores.

A baseline's output at a pixel depends only on the mask within a fixed distance of it, just as
a network's does within its receptive field: closing with radius r on the pixels within 2r,
end-point linking on those within `LinkingConfig.halo`. So a baseline is a `Predictor`
(`distpaint.infer.predictor`) with `align` 1 and `receptive_halo` that distance, returning
probabilities 0 or 1, and `distpaint infer`'s job layer (`distpaint.infer.job.run_job`) runs
it unchanged: the same inputs (files, folders, globs, stores), the same outputs in the input's
format (the repaired mask, the added pixels as `NAME.added.EXT` or a layer `added`, the preview
PNG), the same tiling in constant memory, resuming and refusal to overwrite inputs.

Tiled equals whole: windows are clipped to the image (align 1: no padding), where closing
mirrors and linking sees background exactly as `closing()` and `linking()` on the whole mask
do; inside the image every window reaches `receptive_halo` beyond its tile. Closing is exact;
linking is exact except where greedy pair choices compete across a tile border (as
`linking_dask`). The job runs with `keep="all"` and `keep_input`: the baseline's output is
kept as it is (it already contains the input).

    report = repair_files(["scans/"], "out/", "closing", ClosingConfig(radius=3))
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from distpaint.baselines.closing import ClosingConfig, closing
from distpaint.baselines.linking import LinkingConfig, linking
from distpaint.errors import ConfigError
from distpaint.infer.engine import InferConfig
from distpaint.infer.job import JobConfig, run_job

__all__ = ["METHODS", "BaselinePredictor", "BaselineFactory", "repair_files"]

METHODS: dict[str, tuple[type, Callable[[np.ndarray, Any], np.ndarray]]] = {
    "closing": (ClosingConfig, closing),
    "linking": (LinkingConfig, linking),
}
"""{name: (config class, in-memory repair function mask -> mask)}."""


def _check(method: str, config: Any) -> None:
    if method not in METHODS:
        raise ConfigError(f"unknown baseline {method!r}; choose one of {', '.join(METHODS)}")
    if not isinstance(config, METHODS[method][0]):
        raise ConfigError(f"baseline {method!r} needs a {METHODS[method][0].__name__}")


class BaselinePredictor:
    """A baseline as a `Predictor`: each window (B, 1, h, w) -> 0/1 float32 of the repaired
    window; `align` 1, `receptive_halo` the baseline's context (`config.halo`)."""

    def __init__(self, method: str, config: Any) -> None:
        _check(method, config)
        self.method, self.config = method, config
        self.repair = METHODS[method][1]
        self.align = 1
        self.receptive_halo = int(config.halo)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = np.empty(batch.shape, np.float32)
        for k, window in enumerate(batch):
            out[k, 0] = self.repair(window[0] > 0.5, self.config)
        return out


class BaselineFactory:
    """Picklable `ModelSpec` for `run_job`: builds a `BaselinePredictor`; its `fingerprint`
    names the method and its settings (a job resumes only with the same ones)."""

    def __init__(self, method: str, config: Any) -> None:
        _check(method, config)
        self.method, self.config = method, config
        settings = json.dumps(asdict(config), sort_keys=True, separators=(",", ":"))
        self.fingerprint = f"baseline:{method}:{settings}"

    def __call__(self) -> BaselinePredictor:
        return BaselinePredictor(self.method, self.config)


def repair_files(inputs: list[str | os.PathLike], out: str | os.PathLike, method: str,
                 config: Any, *, overwrite: bool = False, input_threshold: float | None = None,
                 preview_size: int = 2048, tile: int | None = None,
                 progress: Any = None) -> Any:
    """Repair every mask named by `inputs` (files, folders, globs, stores) with baseline
    `method` into `out`, as `distpaint infer` writes (see `distpaint.infer.sources` for where
    outputs go). `tile`: the tile side (default: infer's); the output does not depend on it
    (except for linking's cross-border approximation). Returns the job's `JobReport`; raises
    InputError/ConfigError as `run_job`."""
    infer = InferConfig(tile=tile, keep="all", keep_input=True, threshold=0.5)
    job = JobConfig(overwrite=overwrite, input_threshold=input_threshold,
                    preview_size=preview_size)
    return run_job(list(inputs), BaselineFactory(method, config), out, infer, job, progress)
