"""Single-process training loop (development and CPU runs) around `train_step`.

Builds the networks, optimisers, the in-process data (`LocalData`) and an
`InMemoryRecomposer`, then runs Algorithm 1 step by step, appending metrics to
`OUT/metrics.jsonl` and saving checkpoints to `OUT/checkpoints/step_XXXXXXXX/`. Re-running
with the same `OUT` resumes from the newest checkpoint and continues with exactly the losses of
an uninterrupted run (deterministic on CPU).

    distpaint train --config cpu_small --local --max-steps 200 --out runs/dev
    python -c "from distpaint.train.local import train_local; ..."
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Callable

import torch

from distpaint.errors import ConfigError
from distpaint.train.checkpoint import (CHECKPOINTS, RngStates, checkpoint_name, latest_checkpoint,
                                        restore, save_checkpoint)
from distpaint.train.config import TrainConfig, config_to_dict
from distpaint.train.data import LocalData
from distpaint.train.lease import hold_run
from distpaint.train.recompose import InMemoryRecomposer
from distpaint.train.step import StepState, build_models, build_optimizers, train_step

__all__ = ["train_local"]

LogFn = Callable[[int, dict], None]


def _check_same_config(saved: TrainConfig, cfg: TrainConfig, ckpt: Path) -> None:
    a, b = config_to_dict(saved), config_to_dict(cfg)
    a.pop("max_steps"), b.pop("max_steps")
    if a != b:
        diff = sorted(k for k in a if a[k] != b.get(k))
        raise ConfigError(f"{ckpt}: the run was started with a different config (differs in: "
                          f"{', '.join(diff)}); use another --out or the same config")


def _trim_log(log_file: Path, step: int) -> None:
    """Drop log lines past `step` (written after the checkpoint we resume from)."""
    if not log_file.exists():
        return
    lines = [ln for ln in log_file.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
    log_file.write_text("".join(ln + "\n" for ln in lines))


def _prune(out: Path, keep: int) -> None:
    found = sorted((out / CHECKPOINTS).glob("step_*"))
    for old in found[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def train_local(cfg: TrainConfig, out: str | Path, *, max_steps: int | None = None,
                device: str = "cpu", log: LogFn | None = None) -> dict:
    """Train `cfg` in this process up to `max_steps` (default `cfg.max_steps`) into run
    directory `out`, resuming from its newest checkpoint; returns the last step's metrics.
    Holds the run's lease meanwhile: a second driver on `out` is a ConfigError."""
    with hold_run(Path(out)):
        return _train_local(cfg, Path(out), max_steps=max_steps, device=device, log=log)


def _train_local(cfg: TrainConfig, out: Path, *, max_steps: int | None, device: str,
                 log: LogFn | None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    max_steps = cfg.max_steps if max_steps is None else max_steps
    torch.use_deterministic_algorithms(cfg.deterministic, warn_only=True)
    torch.manual_seed(cfg.seed)
    ckpt = latest_checkpoint(out)
    models = build_models(cfg, fresh=ckpt is None)
    for m in (models.g, models.d_local, models.d_global):
        if m is not None:
            m.to(device)
    opts = build_optimizers(models, cfg.optim)
    sampler = torch.Generator(device).manual_seed(cfg.seed + 1)
    state, start, metrics = StepState(), 0, {}
    if ckpt is not None:
        resumed = restore(ckpt, models, opts, map_location=device)
        _check_same_config(resumed.config, cfg, ckpt)
        resumed.rng.apply(sampler)
        state, start, metrics = resumed.state, resumed.step, resumed.metrics
    log_file = out / "metrics.jsonl"
    _trim_log(log_file, start)
    data = LocalData(cfg.data, cfg.seed, cfg.variant)
    recomposer, generation = None, None
    tic = time.perf_counter()
    for step in range(start, max_steps):
        if data.generation(step) != generation:  # a fresh mask pool: recompose from it
            generation = data.generation(step)
            recomposer = InMemoryRecomposer(cfg.loss.global_max_size, cfg.loss.global_margin)
            for name, truth in data.pool_for(step).items():
                recomposer.add_mask(name, truth)
        batch = data.batch(step).to(device)
        metrics = train_step(models, opts, batch, recomposer, cfg, step, sampler, state)
        metrics["step"] = step + 1
        if (step + 1) % cfg.log_every == 0 or step + 1 == max_steps:
            metrics["sec_per_step"] = (time.perf_counter() - tic) / (step + 1 - start)
            with log_file.open("a") as fh:
                fh.write(json.dumps(metrics) + "\n")
            if log is not None:
                log(step + 1, metrics)
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == max_steps:
            save_checkpoint(out / CHECKPOINTS / checkpoint_name(step + 1), config=cfg, models=models,
                            opts=opts, step=step + 1, state=state, rng=RngStates.capture(sampler),
                            metrics=metrics)
            _prune(out, cfg.keep_checkpoints)
    return metrics
