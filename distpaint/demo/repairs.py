"""The demo's repairs: each way of repairing the corrupted store is a `StoreRepair`.

A `StoreRepair` is a name (the report's row and the output store's name), a one-line
description and a function that repairs every sample of the corrupted store into a new store
(the `mask` layer, same sample names). The classical baselines (`baseline_repairs`: closing
and linking through `distpaint.baselines.run.repair_store`) and the learned models
(`model_repair`: a shipped model or a checkpoint through `distpaint infer`'s own code path,
`distpaint.infer.job.run_job`) are repairs alike; `distpaint.demo.pipeline` runs them.

Not to be confused with the benchmark's `distpaint.benchmark.methods.Method`, which repairs
single masks (arrays in memory, lazy whole masks) for scoring: a demo repair works on stores,
on disk, through the CLI's code paths.

    repair = model_repair("shipped", "roads", "the shipped roads model")
    repair.repair(pathlib.Path("corrupted.zarr"), pathlib.Path("shipped.zarr"))
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from dataclasses import dataclass

from distpaint.baselines.run import repair_store
from distpaint.demo.config import DemoConfig
from distpaint.infer.engine import InferConfig
from distpaint.infer.job import JobConfig, run_job

__all__ = ["StoreRepair", "baseline_repairs", "model_repair"]


@dataclass(frozen=True)
class StoreRepair:
    """One way of repairing a corrupted store."""

    name: str
    """Row label in the report and name of the repair's store (`stores/<name>.zarr`)."""
    description: str
    """One line for the report."""
    repair: Callable[[pathlib.Path, pathlib.Path], None]
    """repair(corrupted store, output store): writes every sample's repaired `mask`."""


def baseline_repairs(config: DemoConfig) -> list[StoreRepair]:
    """Morphological closing and skeleton end-point linking, with the config's options."""
    def closing(src: pathlib.Path, out: pathlib.Path) -> None:
        repair_store(src, out, "closing", config.closing)

    def linking(src: pathlib.Path, out: pathlib.Path) -> None:
        repair_store(src, out, "linking", config.linking)

    return [
        StoreRepair("closing", f"morphological closing with a disk of radius "
                               f"{config.closing.radius} px (input OR closed)", closing),
        StoreRepair("linking", "bridges between facing skeleton end points up to "
                               f"{config.linking.max_distance:g} px apart", linking),
    ]


def model_repair(name: str, model: str | pathlib.Path, description: str) -> StoreRepair:
    """A shipped model's name or a checkpoint as a `StoreRepair` (`distpaint infer` on the
    whole corrupted store: output = input OR the model's fill, tiles of 1024 px)."""
    def repair(src: pathlib.Path, dst: pathlib.Path) -> None:
        report = run_job([src], str(model), dst, InferConfig(), JobConfig())
        if report.failed:
            raise RuntimeError(f"repair with {name} failed: {report.failed}")

    return StoreRepair(name, description, repair)
