"""The demo pipeline: synthesise -> corrupt -> train -> repair with every repair -> evaluate ->
report.

Each row of the report is a `StoreRepair` (`distpaint.demo.repairs`): a name, a one-line
description, and a function that repairs every sample of the corrupted store into a new store
(the `mask` layer, same sample names). The classical baselines (`baseline_repairs`), the
shipped model (row `shipped`) and the GAN-GL the demo trains on local Ray (row `trained`,
`distpaint.demo.models`) are repairs alike. The unrepaired input is always evaluated too, as
the row every repair must beat.

    from distpaint.demo import DemoConfig, run_demo
    result = run_demo(DemoConfig(out="demo_out", size=1024, count=2))
    print(result.report)            # demo_out/report, holding metrics.md
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from distpaint.data.gaps import GapConfig, corrupt_store
from distpaint.data.store import MaskStore
from distpaint.data.synth.writer import write_synth
from distpaint.demo.config import DemoConfig
from distpaint.demo.models import train_demo_model
from distpaint.demo.outdir import claim
from distpaint.demo.repairs import StoreRepair, baseline_repairs, model_repair
from distpaint.demo.report import write_report
from distpaint.errors import ConfigError
from distpaint.metrics.evaluation import EvalConfig, evaluate_store
from distpaint.metrics.stats import Summary

__all__ = ["INPUT", "SHIPPED", "TRAINED", "DemoResult", "run_demo"]

INPUT = "input"
"""Name of the reference row: the corrupted input, unrepaired."""
SHIPPED = "shipped"
"""Row of the shipped model (`DemoConfig.model`)."""
TRAINED = "trained"
"""Row of the model the demo trains."""


@dataclass
class DemoResult:
    """Where the demo wrote its outputs and what it measured."""

    out: pathlib.Path
    """The demo folder."""
    report: pathlib.Path
    """The report folder inside it (metrics.md, metrics.json, images/)."""
    stores: dict[str, pathlib.Path]
    """{"truth", "corrupted", <repair>...: store path}."""
    summaries: dict[str, dict[str, Summary]]
    """{repair (and "input"): {metric: mean/std/n over the samples}}."""
    seconds: dict[str, float]
    """Wall time of each stage."""
    run: Any = None
    """The demo's training run (`distpaint.demo.models.DemoRun`), None without one."""


def run_demo(config: DemoConfig | None = None, repairs: Sequence[StoreRepair] | None = None,
             log: Callable[[str], None] = print) -> DemoResult:
    """Run the whole demo into `config.out` (see the package docstring); `repairs` defaults to
    the baselines, and the shipped model (`config.model`) and the model trained by the demo
    (`config.train_steps` > 0) are added to them. `log` receives one line per stage."""
    config = DemoConfig() if config is None else config
    repairs = baseline_repairs(config) if repairs is None else list(repairs)
    learned = ([SHIPPED] if config.model else []) + ([TRAINED] if config.train_steps else [])
    names = [m.name for m in repairs] + learned
    if len(set(names)) != len(names) or INPUT in names or {"truth", "corrupted", "train"} & set(names):
        raise ConfigError(f"demo repair names must be unique and not {INPUT}, truth, train or "
                          f"corrupted, got {names}")
    seconds: dict[str, float] = {}

    def stage(label: str, fn: Callable[[], object]) -> None:
        start = time.perf_counter()
        fn()
        seconds[label] = round(time.perf_counter() - start, 2)
        log(f"{label}: {seconds[label]:.1f} s")

    with claim(config.out) as out:
        stores = {"truth": out / "stores" / "truth.zarr", "corrupted": out / "stores" / "corrupted.zarr"}
        stores.update({name: out / "stores" / f"{name}.zarr" for name in names})
        stage(f"synthesise {config.count} {config.kind} mask(s) of {config.size}^2",
              lambda: write_synth(MaskStore.create(stores["truth"]), config.kind,
                                  (config.size, config.size), config.seed, config.count,
                                  measure=False))
        gaps = GapConfig(kind=config.gaps, density=config.gap_density)
        stage(f"corrupt with {config.gaps} gaps",
              lambda: corrupt_store(stores["truth"], stores["corrupted"], gaps, config.seed + 1))
        run = None
        if config.model:
            repairs.append(model_repair(SHIPPED, config.model, f"the shipped model `{config.model}` "
                                        "(distpaint infer --model " f"{config.model})"))
        if config.train_steps:
            holder = {}
            stage(f"train GAN-GL for {config.train_steps} steps on {config.workers} Ray workers",
                  lambda: holder.__setitem__("run", train_demo_model(config, out, log)))
            run = holder["run"]
            repairs.append(model_repair(TRAINED, run.checkpoint, f"GAN-GL trained by this demo for "
                                        f"{run.steps} steps ({config.recipe} recipe, "
                                        f"{config.workers} workers)"))
        for m in repairs:
            stage(f"repair with {m.name}", lambda m=m: m.repair(stores["corrupted"], stores[m.name]))
        # Root traits are meaningless for roads and cost a skeleton per mask: off by default.
        eval_config = EvalConfig(traits=config.kind == "roots")
        results = {}
        for name in [INPUT, *names]:
            pred = stores["corrupted" if name == INPUT else name]
            stage(f"evaluate {name}",
                  lambda name=name, pred=pred: results.__setitem__(
                      name, evaluate_store(pred, stores["corrupted"], config=eval_config)))
        corrupted = MaskStore.open(stores["corrupted"])
        repaired = {n: MaskStore.open(stores[n]) for n in names}
        descriptions = {INPUT: "the corrupted mask, unrepaired (the row to beat)",
                        **{m.name: m.description for m in repairs}}
        start = time.perf_counter()
        summaries = write_report(out / "report", corrupted, repaired, results, config.to_dict(),
                                 seconds, descriptions, config.preview_max_side)
        log(f"report: {time.perf_counter() - start:.1f} s")
    return DemoResult(out, out / "report", stores, summaries, seconds, run)
