"""Distributed training on Ray Train: DDP workers, a re-composer actor, checkpoints, MLflow.

    distpaint train --config cpu_small --num-workers 2                  # local Ray, ./runs/<name>
    distpaint train --config paper --num-workers 8 --gpu --storage s3://bucket/runs \\
        --name paper-1 --data /mnt/masks.zarr --mlflow-uri http://mlflow:5000   # on a cluster
    RAY_ADDRESS=ray://head:10001 distpaint train ...                    # join a running cluster

The driver (`train_distributed`):
1. connects to Ray: with `RAY_ADDRESS` set (as inside `ray job submit`) it joins that cluster,
   otherwise it starts a private local Ray (the embedded default) and stops it at the end;
2. prepares the data: the training store given with `--data`, or one synthesised from the
   config's `DataConfig` into the run directory; the validation set (`--val-data`, or one
   synthesised likewise);
3. creates the MLflow run (one per training run, the full config as parameters; default store
   `sqlite:///<run dir>/mlflow.db`), re-opening it when the run resumes;
4. starts the run's re-composer actor (`distpaint.train.actor`, named after the run);
5. runs a `TorchTrainer` (gloo on CPU, nccl on GPU) of `distpaint.train.worker.train_worker`
   with `RunConfig(name, storage_path, FailureConfig(max_failures), CheckpointConfig(keep))`:
   a failed worker restarts the group from the last checkpoint, and re-running the same name
   and storage resumes the run instead of starting over;
6. logs the final checkpoint as an MLflow artifact and ends the MLflow run.

The run directory `<storage>/<name>/` holds Ray's run state, `checkpoints/step_XXXXXXXX/` (the
`distpaint.train.checkpoint` format), `train.zarr` and `val.zarr` when synthesised,
`mlflow.db` and `mlartifacts/`, and the workers' status files `workers/`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distpaint.capacity import cluster_capacity
from distpaint.data import location
from distpaint.data.store import MaskStore
from distpaint.errors import ConfigError, InputError
from distpaint.ray_connect import cluster_address, connect
from distpaint.train.actor import create_recomposer
from distpaint.train.config import TrainConfig, config_to_dict
from distpaint.train.lease import hold_run
from distpaint.train.tracking import default_tracking_uri, driver_tracking_uri, finish_run, flatten, start_run

# Importing this module loads neither Ray (Ray Train with its torch backend takes ~7 s) nor
# torch: the CLI imports it at start-up (`distpaint demo`) and the sweep driver with `distpaint
# tune`. Ray and the torch-side modules (the worker loop, checkpoints, the store and validation
# data) are imported inside the functions that need them.

__all__ = ["DistributedConfig", "RunPaths", "resolve_run", "train_distributed"]


@dataclass
class DistributedConfig:
    """How and where a distributed run runs (the `distpaint train` flags)."""

    num_workers: int = 2
    """Training workers (DDP ranks)."""
    use_gpu: bool = False
    """One GPU per worker and NCCL (else CPU workers and gloo)."""
    storage: str | None = None
    """Ray Train storage path: a local directory (default ./runs) or a pyarrow URI (s3://...)."""
    name: str | None = None
    """Run name; re-running the same name and storage resumes. Default: train-<date-time>."""
    mlflow_uri: str | None = None
    """MLflow tracking URI; default sqlite:///<run dir>/mlflow.db (local storage only)."""
    mlflow: bool = True
    """Log to MLflow at all."""
    register: str | None = None
    """Register the final generator (the run's MLflow artifact `model/`) as a new version of
    this MLflow registered model: `--model models:/NAME/VERSION` then reads it."""
    data: str | None = None
    """Training mask store; default: synthesised from the config into <run dir>/train.zarr."""
    val_data: str | None = None
    """Validation set (store or directory of stores, e.g. benchmark sets); default: synthesised
    into <run dir>/val.zarr; "none" disables validation."""
    val_every: int = 0
    """Validate every this many steps (0: at every checkpoint) and at the end."""
    val_max_side: int = 1024
    """Validation masks are cropped to this side."""
    max_failures: int = 3
    """Worker-group restarts from the last checkpoint before the run fails (-1: no limit)."""
    placement_retries: int | None = None
    """Times Ray Train retries a worker group that could not be placed within
    RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S (60 s) before the run fails (-1: no limit). None: no
    limit when joining RAY_ADDRESS's cluster (an autoscaler may still be adding nodes), 2 on a
    local instance, which never grows: CPUs held elsewhere would otherwise make it wait forever."""
    cpus_per_worker: float = 1.0
    """CPUs Ray reserves per worker (also torch's thread count, at least 1)."""
    worker_resources: dict = field(default_factory=dict)
    """Extra Ray resources per worker (e.g. {"trainer_slot": 1} to spread over nodes)."""
    actor_cpus: float = 0.0
    """CPUs reserved for the re-composer actor (0: it mostly copies memory)."""
    actor_resources: dict = field(default_factory=dict)
    """Extra Ray resources of the re-composer actor (placement on a given node)."""
    sync_timing: bool = False
    """Synchronise the GPU at phase boundaries for an exact step-time breakdown."""
    record_views: bool = False
    """Write every global view D_G scored, with the rank's own patches, to
    `<run dir>/workers/views/` (local storage only; tests and debugging: shows which pixels the
    reward saw). Each file holds a whole view: keep it to short runs."""

    def __post_init__(self) -> None:
        if self.num_workers < 1:
            raise ConfigError(f"--num-workers must be >= 1, got {self.num_workers}")
        if self.max_failures < -1:
            raise ConfigError("--max-failures must be >= -1")
        if self.placement_retries is not None and self.placement_retries < -1:
            raise ConfigError("placement_retries must be >= -1")
        if self.cpus_per_worker <= 0 or self.actor_cpus < 0:
            raise ConfigError("cpus_per_worker must be > 0 and actor_cpus >= 0")
        if self.register is not None and (not self.mlflow or not self.register.strip()):
            raise ConfigError("--register NAME needs MLflow (not --no-mlflow) and a non-empty name")
        if self.val_every < 0 or self.val_max_side < 16:
            raise ConfigError("val_every must be >= 0 and val_max_side >= 16")
        if self.name is not None and (not self.name or "/" in self.name or self.name.startswith(".")):
            raise ConfigError(f"--name {self.name!r}: a run name is a plain directory name")


@dataclass
class RunPaths:
    """Where a run lives."""

    storage: str
    """Ray Train storage path (absolute local path or URI)."""
    name: str
    """Run name."""
    local: Path | None
    """The run directory when storage is local, else None."""


def _is_local(storage: str) -> bool:
    return "://" not in storage or storage.startswith("file://")


def resolve_run(out: str | os.PathLike | None, options: DistributedConfig) -> RunPaths:
    """Storage and name from `--out DIR` (= storage DIR/.., name basename) or `--storage`/`--name`."""
    if out is not None:
        if options.storage is not None or options.name is not None:
            raise ConfigError("give either --out or --storage/--name, not both")
        out = Path(out).resolve()
        return RunPaths(str(out.parent), out.name, out)
    storage = options.storage or "runs"
    name = options.name or time.strftime("train-%Y%m%d-%H%M%S")
    if _is_local(storage):
        base = Path(storage.removeprefix("file://")).resolve()
        return RunPaths(str(base), name, base / name)
    return RunPaths(storage, name, None)


def _connect() -> bool:
    """Join the cluster of RAY_ADDRESS (or the command's --address), or start a private local
    Ray, never another one running on this machine; True if we started one."""
    return connect()


def _check_capacity(options: DistributedConfig) -> None:
    """Refuse a request the cluster can never satisfy (Ray would wait forever): not now, and
    not once its autoscaler has added every node it may (`distpaint.capacity`)."""
    worker = {"CPU": options.cpus_per_worker, **options.worker_resources}
    if options.use_gpu:
        worker.setdefault("GPU", 1)
    bundles = [worker] * options.num_workers + ([{"CPU": options.actor_cpus}] if options.actor_cpus else [])
    cluster_capacity().check(bundles, f"--num-workers {options.num_workers}")


def _prepare_data(cfg: TrainConfig, paths: RunPaths, options: DistributedConfig) -> tuple[str, str | None]:
    # deferred (torch): see the note at the imports
    from distpaint.train.store_data import StoreData, synthesize_store
    from distpaint.train.validation import load_val_samples, synthesize_val_store

    if cfg.data.store and options.data is None:
        # the share of store steps is a feature of the in-process data (LocalData); a Ray run
        # would synthesise its pool with the stored masks as plain samples, ignoring the share
        raise ConfigError(f"data.store ({cfg.data.store}) mixes real masks into --local runs only; "
                          "on Ray pass a store of the masks to train on with --data")
    if options.data is not None:
        # a URL (s3://...) stays as given: every worker opens it the same way
        store = options.data if location.is_url(options.data) else Path(options.data).resolve()
        StoreData(MaskStore.open(store), cfg, 0, options.num_workers)  # fail early on bad input
    elif paths.local is not None:
        store = synthesize_store(cfg, paths.local / "train.zarr", options.num_workers)
    elif location.is_url(paths.storage):  # beside the run's checkpoints: every worker reads it
        store = synthesize_store(cfg, location.join(paths.storage, paths.name, "train.zarr"),
                                 options.num_workers)
    else:
        raise ConfigError(f"--storage {paths.storage}: also pass --data (a store every worker can read)")
    if options.val_data == "none":
        return str(store), None
    if options.val_data is not None:
        val = options.val_data if location.is_url(options.val_data) else Path(options.val_data).resolve()
        load_val_samples(val, options.val_max_side, limit=1)
    elif paths.local is not None:
        val = synthesize_val_store(cfg, paths.local / "val.zarr")
    elif location.is_url(paths.storage):
        val = synthesize_val_store(cfg, location.join(paths.storage, paths.name, "val.zarr"))
    else:
        return str(store), None
    return str(store), str(val)


def _check_resume(cfg: TrainConfig, paths: RunPaths) -> None:
    """Fail before starting workers when the run exists with another config."""
    if paths.local is None:
        return
    # deferred (torch): see the note at the imports
    from distpaint.train.checkpoint import latest_checkpoint, load_config_of
    from distpaint.train.local import _check_same_config

    ckpt = latest_checkpoint(paths.local)
    if ckpt is None:
        return
    try:
        saved = load_config_of(ckpt)
    except InputError:  # an upload cut short by a crash: Ray resumes from a registered one
        return
    _check_same_config(saved, cfg, ckpt)


def _start_tracking(cfg: TrainConfig, paths: RunPaths, options: DistributedConfig, max_steps: int) -> tuple[str, str] | None:
    if not options.mlflow:
        return None
    uri = options.mlflow_uri
    if uri is None:
        if paths.local is None:  # object storage: the store on this machine, artifacts in the bucket
            uri = driver_tracking_uri(paths.storage)
        else:
            paths.local.mkdir(parents=True, exist_ok=True)
            uri = default_tracking_uri(paths.local)
    params = flatten({**config_to_dict(cfg), "max_steps": max_steps})
    params.update(flatten({k: v for k, v in dataclasses.asdict(options).items()
                           if k not in ("storage", "name", "mlflow_uri", "mlflow")}, "dist."))
    tags = {"distpaint.storage": paths.storage, "max_steps": str(max_steps)}
    # object storage: the experiment's artifacts (checkpoint/, model/) in the bucket too
    root = location.join(paths.storage, "mlartifacts") if paths.local is None and location.is_url(paths.storage) else None
    return uri, start_run(uri, paths.local, paths.name, params, tags, artifact_root=root)


def default_placement_retries() -> int:
    """DistributedConfig.placement_retries when unset, decided where RAY_ADDRESS is known (a
    driver; Ray's worker processes never have it): no limit on a cluster, 2 on a local instance."""
    return -1 if cluster_address() else 2


def _placement_retries(options: DistributedConfig) -> int:
    return default_placement_retries() if options.placement_retries is None else options.placement_retries


def _trainer(spec: dict, cfg: TrainConfig, paths: RunPaths, options: DistributedConfig,
             callbacks: list | None = None) -> Any:
    # deferred (Ray, torch): see the note at the imports
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from distpaint.train.worker import train_worker

    resources = {"CPU": options.cpus_per_worker, **options.worker_resources}
    if options.use_gpu:  # one GPU per worker unless worker_resources asks a share (Tune trials)
        resources.setdefault("GPU", 1)
    return TorchTrainer(
        train_worker,
        train_loop_config=spec,
        torch_config=TorchConfig(backend="nccl" if options.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=options.num_workers, use_gpu=options.use_gpu,
                                     resources_per_worker=resources),
        run_config=RunConfig(name=paths.name, storage_path=paths.storage,
                             failure_config=FailureConfig(max_failures=options.max_failures,
                                                          controller_failure_limit=_placement_retries(options)),
                             checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints),
                             callbacks=list(callbacks or [])),
    )


def train_distributed(cfg: TrainConfig, out: str | os.PathLike | None = None, *, max_steps: int | None = None,
                      options: DistributedConfig | None = None, callbacks: list | None = None) -> dict:
    """Train `cfg` on Ray (see the module docstring); returns a summary: name, run_dir, step,
    checkpoint (path or URI), mlflow (tracking URI, run id), metrics of the last report.
    `callbacks` are Ray Train `UserCallback`s of the TorchTrainer's RunConfig (a Tune sweep
    passes `TuneReportCallback`, so every report reaches the trial: `distpaint.tune`).
    Holds the run's lease (`distpaint.train.lease`: a file on a local disk, an object written
    conditionally on s3://): a second driver on the same run is a ConfigError, and the first is
    left untouched."""
    options = options or DistributedConfig()
    max_steps = cfg.max_steps if max_steps is None else max_steps
    paths = resolve_run(out, options)
    with hold_run(paths.local or location.join(paths.storage, paths.name)):
        return _train_run(cfg, paths, max_steps, options, callbacks)


def _train_run(cfg: TrainConfig, paths: RunPaths, max_steps: int, options: DistributedConfig,
               callbacks: list | None) -> dict:
    """`train_distributed` once the run's lease is held."""
    import ray  # deferred: see the note at the imports

    from distpaint.train.worker import STATUS_DIR, WorkerSpec  # deferred (torch): see the imports

    _check_resume(cfg, paths)
    started = _connect()
    actor = None
    tracking = None
    try:
        if started:
            _check_capacity(options)
        store, val = _prepare_data(cfg, paths, options)
        tracking = _start_tracking(cfg, paths, options, max_steps)
        if cfg.uses_global:
            try:
                actor = create_recomposer(paths.name, store, max_size=cfg.loss.global_max_size,
                                          margin=cfg.loss.global_margin, num_cpus=options.actor_cpus,
                                          resources=options.actor_resources)
                ray.get(actor.stats.remote())  # placed and alive
            except ValueError as exc:  # the name is taken
                raise ConfigError(f"run {paths.name!r} is already being trained by another driver ({exc})") from None
        spec = WorkerSpec(
            config=config_to_dict(cfg), max_steps=max_steps, run_name=paths.name, store=store, val_store=val,
            val_every=options.val_every, val_max_side=options.val_max_side,
            mlflow_uri=tracking[0] if tracking else None, mlflow_run_id=tracking[1] if tracking else None,
            status_dir=str(paths.local / STATUS_DIR) if paths.local is not None else None,
            threads=max(1, int(options.cpus_per_worker)), sync_timing=options.sync_timing,
            record_views=options.record_views,
        )
        result = _trainer(spec.to_dict(), cfg, paths, options, callbacks).fit()
        summary = _finish(result, paths, tracking, options.register)
        tracking = None
        return summary
    finally:
        if tracking is not None:  # fit raised
            finish_run(tracking[0], tracking[1], "FAILED")
        if actor is not None:
            ray.kill(actor)
        if started:
            ray.shutdown()


def _finish(result: Any, paths: RunPaths, tracking: tuple[str, str] | None,
            register: str | None = None) -> dict:
    ckpt = result.checkpoint
    summary = {"name": paths.name, "run_dir": str(paths.local) if paths.local else f"{paths.storage}/{paths.name}",
               "checkpoint": ckpt.path if ckpt is not None else None, "metrics": dict(result.metrics or {}),
               "mlflow": list(tracking) if tracking else None}
    summary["step"] = int(summary["metrics"].get("step", 0))
    if tracking is not None:
        if ckpt is not None:
            with ckpt.as_directory() as folder:
                summary["registered"] = finish_run(tracking[0], tracking[1], "FINISHED",
                                                   checkpoint_dir=folder, register=register)
        else:
            finish_run(tracking[0], tracking[1], "FINISHED")
    return summary
