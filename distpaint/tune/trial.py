"""One trial of a sweep: the Tune trainable that trains a config with the distributed trainer.

Ray Tune cannot tune a `TorchTrainer` directly in Ray 2.60 (`Tuner(trainer)` fails), so each
trial runs this small driver function (with 0.01 CPU, `distpaint.tune.sweep`): it builds the
trial's full `TrainConfig` (the base config with the trial's sampled values, reports every
`report_every` steps) and calls `train_distributed`, the code path of `distpaint train`, with
`TuneReportCallback`, which forwards every report of rank 0 (training losses, the validation
scores `val/*`, `step`, and the path of the checkpoint written with it) to Tune, so ASHA can
stop the trial at a rung.

The trial's training run lives in `<runs storage>/<sweep>-<trial id>/` (checkpoints, worker
status, its own MLflow store): re-running an interrupted sweep restarts an unfinished trial,
and the trainer resumes that run from its latest checkpoint instead of starting over.

    run_trial({"loss.lambda_ce": 500.0}, spec.to_dict())    # inside a Tune trial only
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Any

from distpaint.data import location
from distpaint.train.config import TrainConfig, config_from_dict
from distpaint.train.distributed import DistributedConfig, train_distributed
from distpaint.tune.space import parse_space

__all__ = ["TrialSpec", "trial_run_name", "trial_config", "run_trial"]


@dataclass
class TrialSpec:
    """What every trial needs besides its sampled values (put in the object store once)."""

    sweep: str
    """Sweep name."""
    base: dict
    """The base `TrainConfig` as a dict."""
    space_data: dict
    """The parsed YAML of the space file (re-parsed in the trial)."""
    space_source: str
    """The space file's path (error messages)."""
    max_steps: int
    """Training steps of a trial that is not stopped early."""
    report_every: int
    """Report (validate, checkpoint) every this many steps: the config's `checkpoint_every`."""
    runs_storage: str
    """Storage of the trials' training runs (`<sweep dir>/runs` or a URI)."""
    val_data: str
    """Validation set of every trial (the same for all, so their scores compare)."""
    data: str | None = None
    """Shared training store; None: each trial synthesises its own from its config."""
    workers: int = 1
    """Training workers (DDP ranks) per trial."""
    gpus: float = 0.0
    """GPUs per trial, shared evenly by its workers (0: CPU training with gloo)."""
    cpus_per_worker: float = 0.9
    """CPUs per worker (a fraction, so that the 0.01-CPU trial driver fits beside them)."""
    trial_mlflow: bool = True
    """Keep each training run's own per-step MLflow store in its run directory."""
    max_failures: int = 1
    """Worker-group restarts within a trial."""
    placement_retries: int | None = None
    """Worker-group placement retries within a trial, decided by the sweep's driver (which knows
    whether it joined a cluster; the trial's actor does not): see DistributedConfig."""
    val_max_side: int = 1024
    """Validation masks are cropped to this side."""

    def to_dict(self) -> dict:
        return asdict(self)


def trial_run_name(sweep: str, trial_id: str) -> str:
    """Name of a trial's training run (its directory under the runs storage, and the name of
    its re-composer actor: unique per sweep and trial, stable when the sweep resumes)."""
    return f"{sweep}-{trial_id}"


def trial_config(space, base: TrainConfig, values: dict, report_every: int) -> TrainConfig:
    """The trial's full training config: `base` with the sampled `values`, reporting every
    `report_every` steps."""
    cfg = space.apply(base, values)
    return dataclasses.replace(cfg, checkpoint_every=report_every)


def _report_callback(runs_storage: str) -> Any:
    """`TuneReportCallback` that names the checkpoint of a run on object storage by its URL
    (`s3://bucket/...`): Ray's checkpoint path is the key within its filesystem (`bucket/...`),
    which `--model`, the summary table, the best config's header and MLflow would pass on as a
    local path."""
    from ray.tune.integration.ray_train import TuneReportCallback  # deferred (Ray): see run_trial

    scheme = runs_storage.split("://", 1)[0] if location.is_url(runs_storage) else None

    class ReportCallback(TuneReportCallback):
        def after_report(self, run_context, metrics, checkpoint):
            if checkpoint is not None and scheme and "://" not in checkpoint.path:
                checkpoint = SimpleNamespace(path=f"{scheme}://{checkpoint.path}")
            super().after_report(run_context, metrics, checkpoint)

    return ReportCallback()


def run_trial(config: dict, spec: dict) -> None:
    """Tune trainable (see the module docstring); `config` holds the trial's sampled values."""
    # deferred (Ray): the sweep's driver imports this module before Ray is needed
    from ray import tune

    s = TrialSpec(**spec)
    space = parse_space(s.space_data, s.space_source)
    cfg = trial_config(space, config_from_dict(s.base, "base config"), config, s.report_every)
    trial_id = tune.get_context().get_trial_id()
    options = DistributedConfig(
        num_workers=s.workers, use_gpu=s.gpus > 0, storage=s.runs_storage, name=trial_run_name(s.sweep, trial_id),
        mlflow=s.trial_mlflow, data=s.data, val_data=s.val_data, val_max_side=s.val_max_side,
        max_failures=s.max_failures, placement_retries=s.placement_retries, cpus_per_worker=s.cpus_per_worker,
        worker_resources={"GPU": s.gpus / s.workers} if s.gpus > 0 else {},
    )
    train_distributed(cfg, None, max_steps=s.max_steps, options=options, callbacks=[_report_callback(s.runs_storage)])
