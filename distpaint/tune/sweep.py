"""Hyper-parameter sweeps on Ray Tune: every trial trains with the distributed trainer.

    distpaint tune --space tune_spaces/lambdas.yaml --config cpu_small --num-samples 8 \\
        --max-steps 300 --workers-per-trial 1                    # local Ray, ./runs/tune-<date>
    RAY_ADDRESS=head:6379 distpaint tune --space tune_spaces/full.yaml --config paper \\
        --num-samples 32 --workers-per-trial 4 --gpus-per-trial 4 --search optuna ...

`run_sweep(space_file, base_cfg, SweepConfig(...))`:

1. validates everything before Ray starts: the space file against the base config
   (`distpaint.tune.space`), the metric, the scheduler and searcher, the step counts; a
   sweep directory that already holds a sweep with other settings is refused;
2. connects to Ray (`RAY_ADDRESS`, else a private local instance) and derives how many trials
   run at once from the cluster's resources: a trial is a 0.01-CPU driver plus
   `workers_per_trial` workers of `cpus_per_worker` CPUs (and `gpus_per_trial / workers` GPUs);
3. prepares the data once for all trials: a validation set in the benchmark-set format
   (`distpaint.data.benchset`, patch level, kinds of the base config, seed `val_seed`: not the
   seed benchmarks are reported on) unless `--val-data` is given, so every trial is scored on
   the same masks; the training store when no searched parameter changes the masks it holds;
4. opens the sweep's MLflow parent run (`distpaint.tune.tracking`);
5. runs (or, when `Tuner.can_restore` finds the sweep's state, resumes) a `Tuner` of
   `distpaint.tune.trial.run_trial` with ASHA (time attribute: the training step; rungs from
   `grace_steps`, `reduction_factor`) or FIFO, random search or Optuna, and the MLflow callback;
6. writes the summary table, the plot and the best trial's config (`distpaint.tune.report`)
   into the sweep directory and the parent run, and returns a `SweepResult`.

Sweep directory `<storage>/<name>/`: Ray Tune's state (`tuner.pkl`, `experiment_state-*.json`,
`trial_<id>/`), `sweep.json` (the settings, compared on resume), `valset/` (the validation set),
`data/train.zarr` (the shared training store), `runs/<name>-<trial id>/` (each trial's training
run: checkpoints, worker status, its own MLflow store), `mlflow.db` + `mlartifacts/`,
`summary.csv`, `summary.md`, `metric_vs_params.png`, `best_config.yaml`.

On object storage (`--storage s3://bucket/sweeps`) the sweep directory is the same, in the
bucket: the validation set and the shared training store are written there (every trial, on
any node, reads them), the report is uploaded there (and kept in `--report-dir` if given), and
the MLflow experiment created for it keeps its artifacts in `<sweep dir>/mlartifacts`; the
tracking store itself is `--mlflow-uri` (a tracking server, or a database the driver reaches),
else `distpaint.train.tracking.driver_tracking_uri`: an SQLite file on the driver's machine.
Trials keep no MLflow store of their own there (an SQLite file cannot live in a bucket).
"""

from __future__ import annotations

import json
import math
import os
import signal
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from distpaint.capacity import cluster_capacity
from distpaint.data import location
from distpaint.data.benchset import BenchsetConfig, make_benchset, open_benchset
from distpaint.errors import ConfigError, InputError
from distpaint.ray_connect import cluster_address
from distpaint.train.config import TrainConfig, config_to_dict
from distpaint.train.distributed import _connect, default_placement_retries
from distpaint.train.tracking import driver_tracking_uri, finish_run, find_run, flatten
from distpaint.tune.report import (TrialOutcome, plot_metric, summary_rows, write_best_config,
                                   write_table)
from distpaint.tune.space import SearchSpace, load_space
from distpaint.tune.trial import TrialSpec, run_trial, trial_run_name

# Importing this module loads neither Ray, MLflow nor torch (`distpaint tune` checks a sweep's
# settings before Ray starts): Ray Tune, the Ray-only modules `distpaint.tune.placement` and
# `distpaint.tune.tracking`, MLflow and the torch-side training modules are imported inside
# the functions that need them.

__all__ = ["SweepConfig", "SweepResult", "run_sweep", "METRICS", "TRIAL_DRIVER_CPU"]

METRICS = {"val/rel_component_diff": "max", "val/cldice": "max", "val/mse_gaps": "min"}
"""Metrics a sweep can optimise (the validation scores every report carries) and their mode."""
TRIAL_DRIVER_CPU = 0.01
"""CPUs of a trial's driver function (it only waits on its TorchTrainer)."""
_POOL_FREE = ("model.", "optim.", "loss.", "data.gaps", "data.gap_density", "data.min_foreground", "deterministic")
"""Searched paths that leave the training store's masks unchanged (one store serves all trials)."""
_RESUME_KEYS = ("num_samples", "scheduler", "search", "max_steps", "report_every", "grace_steps",
                "reduction_factor", "metric", "mode", "workers_per_trial", "gpus_per_trial", "seed",
                "val_data", "data")


@dataclass
class SweepConfig:
    """How a sweep runs (the `distpaint tune` flags)."""

    num_samples: int = 8
    """Trials to sample (times the size of any grid)."""
    scheduler: str = "asha"
    """asha (stop bad trials at rungs) or fifo (every trial runs to max_steps)."""
    search: str = "random"
    """random (Tune's variant generator) or optuna (TPE; no grid parameters)."""
    max_steps: int | None = None
    """Training steps of a trial not stopped early (default: the base config's max_steps)."""
    report_every: int = 0
    """Validate, checkpoint and report every this many steps (0: max_steps // 6, at most the
    base config's checkpoint_every)."""
    grace_steps: int = 0
    """ASHA: steps every trial trains before it can be stopped (0: report_every)."""
    reduction_factor: float = 2.0
    """ASHA: at each rung (grace * rf^k steps) trials below the top 1/rf stop."""
    metric: str = "val/rel_component_diff"
    """Score to optimise (see METRICS)."""
    mode: str | None = None
    """max or min (default: the metric's direction)."""
    workers_per_trial: int = 1
    """Training workers (DDP ranks) of each trial."""
    gpus_per_trial: float = 0.0
    """GPUs of each trial, shared by its workers (0: CPU)."""
    cpus_per_worker: float = 0.9
    """CPUs per worker: a fraction (< 1) or a whole number; with 0.9 a trial's 0.01-CPU driver
    fits beside its workers, so an N-CPU machine runs N one-worker trials at once."""
    max_concurrent: int = 0
    """Trials running at once (0: as many as the cluster's CPUs and GPUs hold)."""
    name: str | None = None
    """Sweep name; re-running the same name and storage resumes. Default tune-<date-time>."""
    storage: str | None = None
    """Where sweeps live: a local directory (default ./runs) or a URI (s3://...)."""
    report_dir: str | None = None
    """Local folder of the summary, plot and best config (default: the sweep directory; with
    remote storage they are uploaded into the sweep directory in any case)."""
    mlflow_uri: str | None = None
    """MLflow tracking URI; default sqlite:///<sweep dir>/mlflow.db."""
    mlflow: bool = True
    """Log the sweep to MLflow."""
    trial_mlflow: bool = True
    """Each trial's training run keeps its own per-step MLflow store in its run directory."""
    data: str | None = None
    """Training store shared by every trial (default: synthesised from the base config)."""
    val_data: str | None = None
    """Validation set: a store, a directory of stores, or a benchmark set (its patch level);
    default: a benchmark-format set built with `val_seed` in the sweep directory."""
    val_seed: int = 1
    """Seed of the default validation set (keep it apart from the seed you report on, 0)."""
    val_samples: int = 16
    """Patches in the default validation set (split over the base config's kinds)."""
    seed: int = 0
    """Seed of the searcher (random search and Optuna draw the same trials again)."""
    max_failures: int = 1
    """Worker-group restarts within a trial (from its last checkpoint)."""
    verbose: int = 1
    """Ray Tune's console output: 0 silent, 1 status updates, 2 every result."""

    def __post_init__(self) -> None:
        if self.num_samples < 1:
            raise ConfigError(f"--num-samples must be >= 1, got {self.num_samples}")
        if self.scheduler not in ("asha", "fifo"):
            raise ConfigError(f"--scheduler must be asha or fifo, got {self.scheduler!r}")
        if self.search not in ("random", "optuna"):
            raise ConfigError(f"--search must be random or optuna, got {self.search!r}")
        if self.metric not in METRICS:
            raise ConfigError(f"--metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        self.mode = self.mode or METRICS[self.metric]
        if self.mode not in ("max", "min"):
            raise ConfigError(f"--mode must be max or min, got {self.mode!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"--max-steps must be >= 1, got {self.max_steps}")
        if self.report_every < 0 or self.grace_steps < 0 or self.max_concurrent < 0:
            raise ConfigError("--report-every, --grace-steps and --max-concurrent must be >= 0")
        if self.reduction_factor <= 1:
            raise ConfigError(f"--reduction-factor must be > 1, got {self.reduction_factor}")
        if self.workers_per_trial < 1:
            raise ConfigError(f"--workers-per-trial must be >= 1, got {self.workers_per_trial}")
        if self.gpus_per_trial < 0 or (self.gpus_per_trial > 0 and self.gpus_per_trial > self.workers_per_trial):
            raise ConfigError(f"--gpus-per-trial {self.gpus_per_trial:g}: between 0 and --workers-per-trial "
                              f"{self.workers_per_trial} (a worker drives at most one GPU)")
        if self.cpus_per_worker <= 0 or (self.cpus_per_worker > 1 and self.cpus_per_worker != int(self.cpus_per_worker)):
            raise ConfigError(f"--cpus-per-worker {self.cpus_per_worker:g}: a fraction below 1 or a whole "
                              "number (Ray's rule for resource amounts)")
        if self.name is not None and (not self.name or "/" in self.name or self.name.startswith(".")):
            raise ConfigError(f"--name {self.name!r}: a sweep name is a plain directory name")
        if self.val_samples < 1:
            raise ConfigError("val_samples must be >= 1")


@dataclass
class SweepResult:
    """What a sweep produced."""

    name: str
    sweep_dir: str
    """Tune's experiment directory (path or URI)."""
    rows: list[dict]
    """Summary rows, best first (`distpaint.tune.report.summary_rows`)."""
    complete: bool
    """False when the sweep was interrupted (re-run the same command to resume)."""
    best: dict | None = None
    """The best row (None if no trial reported a finite score)."""
    best_config: str | None = None
    """Path of best_config.yaml."""
    checkpoint: str | None = None
    """The best trial's checkpoint (its last report)."""
    table: list[str] = field(default_factory=list)
    """summary.csv and summary.md."""
    plot: str | None = None
    """metric_vs_params.png."""
    mlflow: tuple[str, str] | None = None
    """(tracking URI, parent run id)."""
    concurrency: int = 0
    """Trials that ran at once."""
    seconds: float = 0.0
    """Wall time of this invocation."""


def _is_local(storage: str) -> bool:
    return "://" not in storage or storage.startswith("file://")


def _auto_steps(options: SweepConfig, base: TrainConfig) -> tuple[int, int, int]:
    max_steps = options.max_steps or base.max_steps
    if max_steps < 1:
        raise ConfigError("the sweep needs --max-steps >= 1 (the base config has max_steps 0)")
    report = options.report_every or max(1, min(base.checkpoint_every, max_steps // 6))
    grace = options.grace_steps or report
    if report > max_steps or grace > max_steps:
        raise ConfigError(f"--report-every {report} and --grace-steps {grace} must be <= --max-steps {max_steps}")
    return max_steps, report, grace


def _pool_shared(space: SearchSpace) -> bool:
    """Whether every trial trains on the masks the base config synthesises."""
    return all(any(p == f or p.startswith(f) for f in _POOL_FREE) for p in space.paths)


def _resolve_val(path: str) -> str:
    """A validation set given by the user: a benchmark set means its patch level."""
    from distpaint.train.validation import load_val_samples  # deferred (torch): see the imports

    if location.is_url(path):  # a store, or a folder of stores, on object storage
        if location.is_file(location.join(path, "manifest.json")):  # a benchmark set uploaded whole
            path = location.join(path, "patch")
        load_val_samples(path, 64, limit=1)
        return path
    p = Path(path).resolve()
    if (p / "manifest.json").is_file():
        bench = open_benchset(p)
        level = "patch" if "patch" in bench.levels() else bench.levels()[0]
        p = p / level
    load_val_samples(p, limit=1)  # InputError naming the path if it holds no corrupted samples
    return str(p)


def _build_val(base: TrainConfig, folder: str, options: SweepConfig, log: Callable[[str], None]) -> str:
    """The default validation set: benchmark-format patches of the base config's kinds, at
    `folder` (a path or, for a sweep on object storage, a URL every trial reads)."""
    kinds = tuple(dict.fromkeys(base.data.kinds))  # distinct, in order
    config = BenchsetConfig(seed=options.val_seed, kinds=kinds, patches=max(1, math.ceil(options.val_samples / len(kinds))),
                            whole_count=0)
    if not location.is_url(folder):
        make_benchset(folder, config, log=log)
        return str(Path(folder) / "patch")
    # no benchmark set builder for object storage: build it in a local scratch folder and
    # upload it, each store with its zarr.json last and the manifest after every store, so an
    # upload cut short is done again and a set with a manifest is complete
    if not location.is_file(location.join(folder, "manifest.json")):
        with tempfile.TemporaryDirectory(prefix="distpaint-valset-") as scratch:
            local = Path(scratch) / "valset"
            make_benchset(local, config, log=log)
            for store in sorted((local / "patch").iterdir()):
                location.upload_group(store, location.join(folder, "patch", store.name))
            location.put_file(local / "manifest.json", location.join(folder, "manifest.json"))
    return location.join(folder, "patch")


def _settings(space: SearchSpace, base: TrainConfig, options: SweepConfig, steps: tuple[int, int, int],
              val: str | None) -> dict:
    data = {k: getattr(options, k) for k in _RESUME_KEYS}
    data.update(max_steps=steps[0], report_every=steps[1], grace_steps=steps[2], val_data=val)
    return {"space": [asdict(p) | {"args": list(p.args)} for p in space.params], "base": config_to_dict(base),
            "options": data}


def _check_settings(path: str, settings: dict) -> None:
    """Write sweep.json (a path or a URL), or refuse to resume a sweep that ran with other
    settings."""
    try:
        saved = json.loads(location.read_bytes(path))
    except FileNotFoundError:
        saved = None
    except ValueError as exc:
        raise InputError(f"{path}: not a sweep's settings ({exc})") from None
    if saved is not None:
        plain = json.loads(json.dumps(settings))
        diff = [f"options.{k}" for k in plain["options"] if saved.get("options", {}).get(k) != plain["options"][k]]
        diff += [k for k in ("space", "base") if saved.get(k) != plain[k]]
        if diff:
            raise ConfigError(f"{path.rsplit('/', 1)[0]}: holds a sweep with other settings (differs in: "
                              f"{', '.join(diff)}); use another --name, or the same space, config and flags to resume it")
        return
    if not location.is_url(path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:  # whole or not at all: renamed into place on disk, one PUT on an object store
        location.write_bytes(path, json.dumps(settings, indent=1, sort_keys=True).encode())
    except FileNotFoundError as exc:  # s3fs's answer for a missing bucket
        raise InputError(f"{path}: cannot write ({exc})") from None


def _capacity(options: SweepConfig, started: bool) -> int:
    """Trials at once: the cluster's CPUs (and GPUs) over one trial's needs; on an autoscaling
    cluster, the most it can have once its autoscaler has added its nodes
    (`distpaint.capacity`). A trial that can never be placed is refused: on a local instance
    (which never grows) or where the autoscaler's node types are known."""
    capacity = cluster_capacity()
    total = capacity.most()
    cpu = options.workers_per_trial * options.cpus_per_worker + TRIAL_DRIVER_CPU
    # an unbounded node type gives infinite resources: count trials up to a million
    fits = math.floor(min(total.get("CPU", 0) / cpu, 1e6) + 1e-9)
    if options.gpus_per_trial > 0:
        fits = min(fits, math.floor(min(total.get("GPU", 0) / options.gpus_per_trial, 1e6) + 1e-9))
    worker = {"CPU": options.cpus_per_worker, "GPU": options.gpus_per_trial / options.workers_per_trial}
    if (started or capacity.autoscaling) and (fits < 1 or not capacity.fits_one_node(worker)):
        raise ConfigError(f"a trial needs {cpu:g} CPU and {options.gpus_per_trial:g} GPU; "
                          f"{capacity.describe(['CPU', 'GPU'])}")
    return max(1, options.max_concurrent or fits)


def _trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


def _tune_config(space: SearchSpace, options: SweepConfig, steps: tuple[int, int, int], concurrency: int) -> Any:
    # deferred (Ray): see the note at the imports
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    if options.search == "optuna":
        from ray.tune.search.optuna import OptunaSearch  # deferred: Optuna only for --search optuna

        search = OptunaSearch(seed=options.seed)
    else:
        # Tune ignores max_concurrent_trials for a variant generator passed in: give it here
        search = BasicVariantGenerator(random_state=options.seed, max_concurrent=concurrency)
    if options.scheduler == "asha":
        scheduler = ASHAScheduler(time_attr="step", max_t=steps[0], grace_period=steps[2],
                                  reduction_factor=options.reduction_factor)
    else:
        scheduler = FIFOScheduler()
    return tune.TuneConfig(metric=options.metric, mode=options.mode, search_alg=search, scheduler=scheduler,
                           num_samples=options.num_samples,
                           max_concurrent_trials=concurrency if options.search == "optuna" else None,
                           trial_dirname_creator=_trial_dirname)


def _outcomes(results: Any, space: SearchSpace, runs_dir: str, name: str) -> list:
    out = []
    for r in results:
        trial_id = (r.metrics or {}).get("trial_id") or Path(r.path).name.removeprefix("trial_")
        try:
            values = space.overrides(r.config or {})
        except ConfigError:  # a trial that never started has no sampled config
            values = {}
        df = r.metrics_dataframe
        history = df.to_dict("records") if df is not None else []
        out.append(TrialOutcome(trial_id, values, dict(r.metrics or {}), history,
                                error=str(r.error).splitlines()[0] if r.error else None,
                                run_dir=f"{runs_dir}/{trial_run_name(name, trial_id)}"))
    return out


def _mark_stopped_runs(rows: list[dict]) -> None:
    """Trials ASHA stopped were killed mid-fit: close their own MLflow runs as KILLED."""
    for r in rows:
        db = Path(r["run_dir"]) / "mlflow.db" if r["run_dir"] else None
        if r["status"] != "stopped early" or db is None or not db.is_file():
            continue
        uri = f"sqlite:///{db}"
        run = find_run(uri, Path(r["run_dir"]).name)
        if run is not None and run.info.status != "KILLED":
            from mlflow.tracking import MlflowClient  # deferred: see the note at the imports

            MlflowClient(uri).set_tag(run.info.run_id, "distpaint.stopped_early", "true")
            finish_run(uri, run.info.run_id, "KILLED")


def run_sweep(space_file: str | os.PathLike, base: TrainConfig, options: SweepConfig | None = None, *,
              base_source: str = "", log: Callable[[str], None] = print) -> SweepResult:
    """Run or resume a sweep (see the module docstring)."""
    tic = time.perf_counter()
    options = options or SweepConfig()
    space = load_space(space_file, base)  # every error in the file, before anything starts
    if options.search == "optuna" and space.has_grid:
        bad = next(p.path for p in space.params if p.kind == "grid")
        raise ConfigError(f"{space.source}: parameters.{bad}: grid needs --search random (Optuna samples; use choice)")
    steps = _auto_steps(options, base)
    storage = options.storage or "runs"
    name = options.name or time.strftime("tune-%Y%m%d-%H%M%S")
    local = _is_local(storage)
    if local:
        storage = str(Path(storage.removeprefix("file://")).resolve())
        sweep_dir: Path | None = Path(storage) / name
    else:
        # object storage: the data, the validation set and the report go into the sweep
        # directory in the bucket (every trial reads it); the tracking store cannot
        sweep_dir = None
    report_dir = Path(options.report_dir).resolve() if options.report_dir else sweep_dir
    experiment = f"{storage}/{name}"
    val = _resolve_val(options.val_data) if options.val_data else None
    data = (str(Path(options.data).resolve()) if options.data and local and not location.is_url(options.data)
            else options.data)
    settings = _settings(space, base, options, steps, val or "default")
    _check_settings(f"{experiment}/sweep.json", settings)

    if not cluster_address():
        # every report is a barrier that waits for the next worker health check (2 s by default)
        os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
    started = _connect()
    import ray  # deferred: see the note at the imports

    try:
        concurrency = _capacity(options, started)
        if val is None:
            val = _build_val(base, f"{experiment}/valset", options, log)
        if data is None and _pool_shared(space):
            from distpaint.train.store_data import synthesize_store  # deferred (torch): see the imports

            if sweep_dir is not None:
                (sweep_dir / "data").mkdir(parents=True, exist_ok=True)
            data = str(synthesize_store(base, f"{experiment}/data/train.zarr", options.workers_per_trial))
        runs_storage = f"{experiment}/runs"
        spec = TrialSpec(sweep=name, base=config_to_dict(base), space_data=_space_data(space),
                         space_source=space.source, max_steps=steps[0], report_every=steps[1],
                         runs_storage=runs_storage, val_data=val, data=data, workers=options.workers_per_trial,
                         gpus=options.gpus_per_trial, cpus_per_worker=options.cpus_per_worker,
                         trial_mlflow=options.trial_mlflow and local, max_failures=options.max_failures,
                         placement_retries=default_placement_retries())
        tracking = _start_parent(space, base, base_source, options, steps, name, sweep_dir, spec) if options.mlflow else None
        results = _fit(space, options, steps, concurrency, spec, experiment, tracking, log)
        statuses = _saved_statuses(experiment)
        return _finish(results, statuses, space, base, options, steps, spec, report_dir, tracking,
                       concurrency, experiment, time.perf_counter() - tic, log)
    finally:
        if started:
            ray.shutdown()


def _space_data(space: SearchSpace) -> dict:
    """The space as YAML data again (what `parse_space` reads in the trials)."""
    return {"description": space.description,
            "parameters": {p.path: {p.kind: list(p.args)} for p in space.params}}


def _start_parent(space: SearchSpace, base: TrainConfig, base_source: str, options: SweepConfig,
                  steps: tuple[int, int, int], name: str, sweep_dir: Path | None, spec: TrialSpec) -> tuple[str, str]:
    from distpaint.tune.tracking import default_tracking_uri, start_parent  # deferred (Ray): see the imports

    # object storage: the tracking store on this machine (an SQLite file cannot live in a
    # bucket), the experiment's artifacts in the bucket (below)
    uri = options.mlflow_uri or (default_tracking_uri(sweep_dir) if sweep_dir is not None
                                 else driver_tracking_uri(spec.runs_storage.rsplit("/", 1)[0]))
    # object storage: a tracking store that keeps files gets the experiment's artifacts in the
    # bucket too (not in ./mlruns of the driver, which a job's working dir loses)
    root = None if sweep_dir is not None else location.join(spec.runs_storage.rsplit("/", 1)[0], "mlartifacts")
    params = {"space": space.source, "searched": ",".join(space.paths), "base_config": base_source,
              "num_samples": options.num_samples, "scheduler": options.scheduler, "search": options.search,
              "metric": options.metric, "mode": options.mode, "max_steps": steps[0], "report_every": steps[1],
              "grace_steps": steps[2], "reduction_factor": options.reduction_factor,
              "workers_per_trial": options.workers_per_trial, "gpus_per_trial": options.gpus_per_trial,
              "val_data": spec.val_data, "data": spec.data or "per trial", "seed": options.seed}
    for p in space.params:
        params[f"space.{p.path}"] = f"{p.kind} {list(p.args)}"
    params.update(flatten(config_to_dict(base), "base."))
    return uri, start_parent(uri, sweep_dir, name, {k: str(v) for k, v in params.items()}, artifact_root=root)


def _fit(space: SearchSpace, options: SweepConfig, steps: tuple[int, int, int], concurrency: int,
         spec: TrialSpec, experiment: str, tracking: tuple[str, str] | None, log: Callable[[str], None]) -> Any:
    # deferred (Ray): see the note at the imports
    from ray import tune

    from distpaint.tune.placement import GroupReleaser

    trainable = tune.with_resources(tune.with_parameters(run_trial, spec=spec.to_dict()), {"cpu": TRIAL_DRIVER_CPU})
    if tune.Tuner.can_restore(experiment):
        log(f"resuming sweep {experiment}")
        tuner = tune.Tuner.restore(experiment, trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        callbacks = [GroupReleaser()]
        if tracking is not None:
            from distpaint.tune.tracking import SweepLogger  # deferred (Ray): see the imports

            callbacks.append(SweepLogger(tracking[0], tracking[1], spec.sweep, spec.base, spec.space_data,
                                         spec.space_source, options.metric, options.mode, steps[0],
                                         spec.runs_storage if _is_local(spec.runs_storage) else None))
        storage, name = experiment.rsplit("/", 1)
        tuner = tune.Tuner(trainable, param_space=space.to_tune(),
                           tune_config=_tune_config(space, options, steps, concurrency),
                           run_config=tune.RunConfig(name=name, storage_path=storage, callbacks=callbacks,
                                                     verbose=options.verbose))
    log(f"sweep {experiment}: {options.num_samples} sample(s), up to {concurrency} trial(s) at once, "
        f"{steps[0]} steps each, reports every {steps[1]}")
    previous = None
    if threading.current_thread() is threading.main_thread():
        # Tune stops gracefully (saving its state for a resume) on SIGINT only: treat SIGTERM
        # (a job scheduler's stop) the same; a second signal then stops at once
        previous = signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    try:
        return tuner.fit()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        GroupReleaser().finish()  # also for a restored sweep, whose callbacks Tune unpickled


def _saved_statuses(experiment: str) -> dict[str, str]:
    """{trial id: status} as Tune saved them last. After an interruption (SIGINT) Tune saves
    the unfinished trials as PENDING (to resume them) and then marks every trial TERMINATED in
    memory, so only the saved state tells an interrupted sweep from a finished one."""
    from ray.tune import ExperimentAnalysis  # deferred: see the note at the imports

    return {t.trial_id: t.status for t in ExperimentAnalysis(experiment).trials}


def _finish(results: Any, statuses: dict[str, str], space: SearchSpace, base: TrainConfig, options: SweepConfig,
            steps: tuple[int, int, int], spec: TrialSpec, report_dir: Path | None, tracking: tuple[str, str] | None,
            concurrency: int, experiment: str, seconds: float, log: Callable[[str], None]) -> SweepResult:
    """The report (summary table, plot, best config) in `report_dir`, logged to the parent run;
    with the sweep on object storage also uploaded into its directory there (written in a
    scratch folder first when there is no `report_dir`)."""
    if report_dir is not None and _is_local(experiment):
        return _report(results, statuses, space, base, options, steps, spec, report_dir, tracking,
                       concurrency, experiment, seconds, log)
    with tempfile.TemporaryDirectory(prefix="distpaint-sweep-") as scratch:
        out = _report(results, statuses, space, base, options, steps, spec, report_dir or Path(scratch), tracking,
                      concurrency, experiment, seconds, log)
        uploaded = {}
        for path in [*out.table, out.plot, out.best_config]:
            if path:  # whole objects, each written once: a reader sees a complete file or none
                uploaded[path] = location.join(experiment, Path(path).name)
                location.put_file(path, uploaded[path])
        if report_dir is None:  # the scratch folder goes: name the copies in the bucket
            out.table = [uploaded[p] for p in out.table]
            out.plot = uploaded.get(out.plot) if out.plot else None
            out.best_config = uploaded.get(out.best_config) if out.best_config else None
        return out


def _report(results: Any, statuses: dict[str, str], space: SearchSpace, base: TrainConfig, options: SweepConfig,
            steps: tuple[int, int, int], spec: TrialSpec, report_dir: Path, tracking: tuple[str, str] | None,
            concurrency: int, experiment: str, seconds: float, log: Callable[[str], None]) -> SweepResult:
    complete = all(s in ("TERMINATED", "ERROR") for s in statuses.values())
    outcomes = _outcomes(results, space, spec.runs_storage, spec.sweep)
    for t in outcomes:
        if statuses.get(t.trial_id) not in (None, "TERMINATED", "ERROR"):
            t.unfinished = True
    rows = summary_rows(outcomes, space, options.metric, options.mode, steps[0])
    out = SweepResult(spec.sweep, experiment, rows, complete, mlflow=tracking, concurrency=concurrency,
                      seconds=seconds)
    report_dir.mkdir(parents=True, exist_ok=True)
    out.table = [str(p) for p in write_table(rows, report_dir)]
    if rows:
        out.plot = str(plot_metric(rows, space, options.metric, report_dir / "metric_vs_params.png",
                                   f"{spec.sweep}: {options.metric} at each trial's last report "
                                   "(label: its step; hollow: stopped early; star: best)"))
    best = rows[0] if rows and math.isfinite(rows[0][options.metric]) else None
    if best is not None:
        out.best, out.checkpoint = best, best["checkpoint"] or None
        cfg = space.apply(base, best["_values"])  # the base's max_steps and checkpoint_every
        header = "\n".join([
            f"Best trial {best['trial']} of sweep {spec.sweep} (space {space.source}):",
            f"{options.metric} = {best[options.metric]:.4g} at step {best['steps']} "
            f"(trials: up to {steps[0]} steps, reports every {steps[1]}; {best['status']})",
            "searched: " + ", ".join(f"{p.path} = {best[p.path]}" for p in space.params),
            f"checkpoint: {best['checkpoint']}",
            f"train it: distpaint train --config best_config.yaml --num-workers {options.workers_per_trial}",
        ])
        out.best_config = str(write_best_config(cfg, report_dir / "best_config.yaml", header))
    if spec.trial_mlflow:
        _mark_stopped_runs(rows)
    if tracking is not None:
        _finish_parent(tracking, out, options.metric, complete)
    if not complete:
        log(f"sweep {experiment} was interrupted: re-run the same command to resume it")
    return out


def _finish_parent(tracking: tuple[str, str], out: SweepResult, metric: str, complete: bool) -> None:
    from mlflow.tracking import MlflowClient  # deferred: see the note at the imports

    client = MlflowClient(tracking[0])
    run_id = tracking[1]
    for path in [*out.table, out.plot, out.best_config]:
        if path:
            client.log_artifact(run_id, path)
    if out.best is not None:
        client.log_metric(run_id, f"best/{metric}", float(out.best[metric]))
        client.set_tag(run_id, "distpaint.best_trial", out.best["trial"])
        client.set_tag(run_id, "distpaint.best_checkpoint", str(out.checkpoint))
    client.set_tag(run_id, "distpaint.trials", str(len(out.rows)))
    client.set_terminated(run_id, status="FINISHED" if complete else "KILLED")
