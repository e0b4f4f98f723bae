"""Train every stage of a chained recipe from scratch (`distpaint reproduce`).

    distpaint reproduce roads --out runs/roads                  # all eight stages of `roads`
    distpaint reproduce roads --out runs/roads --through more   # stages 1-7: `roads-synthetic`

A recipe's stages (`stages:` in the YAML, `distpaint.train.config.recipe_stages`) run in order,
each in this process (`train_local`) into `<out>/<stage name>`: stage k's G starts from stage
k-1's result (`model.init_generator` set to it; fresh discriminators and optimisers), and its
result is the mean of its last `average` checkpoints, written to `<out>/<stage name>/average`
(`distpaint average`), or its last checkpoint when `average` is 0. The shipped models' cards
name this command (`distpaint.weights.ship`).

Resumable: a stage whose result exists is skipped; a stage that was killed resumes from its
newest checkpoint (the run directory's usual resume), then averages. The data a stage reads
from stores (`data.store`, e.g. the real masks of `distpaint realdata build`) must exist before
it starts; a missing one is an error naming the stage and the store, before any training.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from distpaint.errors import ConfigError
from distpaint.train.average import average_checkpoints, run_checkpoints
from distpaint.train.checkpoint import latest_checkpoint
from distpaint.train.config import Stage, config_from_dict, find_stage, recipe_stages
from distpaint.train.local import train_local

__all__ = ["reproduce", "stage_result"]

AVERAGE = "average"
"""Sub-directory of a stage's run directory holding its averaged result."""


def stage_result(out: Path, stage: Stage) -> Path:
    """Where stage `stage`'s result lies under reproduction folder `out` (what the next stage
    starts from): its average, or its newest checkpoint when it averages none."""
    run = out / stage.name
    if stage.average:
        return run / AVERAGE
    return latest_checkpoint(run) or run / "checkpoints"


def _missing_stores(stage: Stage) -> list[str]:
    spec = str(stage.data.get("data", {}).get("store", "") or "")
    return [s.strip() for s in spec.split(",") if s.strip() and "://" not in s and not Path(s.strip()).exists()]


def reproduce(recipe: str | Path, out: str | Path, *, through: int | str | None = None, device: str = "cpu",
              log: Callable[[str], None] = print,
              train_log: Callable[[int, dict], None] | None = None) -> Path:
    """Train (and average) every stage of `recipe` up to `through` (default: the last) into
    folder `out`; returns the last stage's result (see the module docstring)."""
    out = Path(out)
    stages = recipe_stages(recipe)
    last = find_stage(recipe, through).number if through is not None else len(stages)
    stages = stages[:last]
    for stage in stages:  # check every stage's stores first: not hours in, at stage 8
        missing = _missing_stores(stage)
        if missing:
            raise ConfigError(f"{recipe}: stage {stage.name} reads {', '.join(missing)}, which does not exist "
                              "(the recipe's header says how to build it, e.g. distpaint realdata build)")
    previous: Path | None = None
    for stage in stages:
        run = out / stage.name
        if stage.average and (run / AVERAGE / "model.pt").is_file():
            log(f"stage {stage.number} {stage.name}: done ({run / AVERAGE})")
            previous = run / AVERAGE
            continue
        data = {**stage.data, "model": {**stage.data.get("model", {})}}
        if previous is not None:
            data["model"]["init_generator"] = str(previous)
        cfg = config_from_dict(data, f"{recipe} (stage {stage.name})")
        start = latest_checkpoint(run)
        log(f"stage {stage.number} {stage.name}: training {cfg.max_steps} steps into {run}"
            + (f" from {previous}" if previous is not None else "")
            + (f" (resuming at {start.name})" if start is not None else ""))
        train_local(cfg, run, device=device, log=train_log)
        if stage.average:
            sources = run_checkpoints(run)[-stage.average:]
            average_checkpoints(sources, run / AVERAGE)
            log(f"stage {stage.number} {stage.name}: averaged {len(sources)} checkpoint(s) into {run / AVERAGE}")
        previous = stage_result(out, stage)
    assert previous is not None  # recipe_stages never returns an empty list
    return previous
