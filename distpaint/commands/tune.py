"""`distpaint tune`: search training hyper-parameters with Ray Tune, logged to MLflow.

    distpaint tune --space tune_spaces/lambdas.yaml --config cpu_small --num-samples 8 \
        --max-steps 300 --workers-per-trial 1                  # local Ray, ./runs/tune-<date>
    distpaint tune --space tune_spaces/full.yaml --config paper --num-samples 32 --search optuna \
        --workers-per-trial 4 --gpus-per-trial 4 --storage s3://bucket/sweeps --name full-1 \
        --mlflow-uri http://mlflow:5000                        # on a cluster (RAY_ADDRESS set)

Each trial trains the base config (`--config`, a YAML file or a shipped recipe) with the
trial's sampled values through the distributed trainer of `distpaint train`, reports the
validation scores every `--report-every` steps, and ASHA stops the weaker trials early. The
space file is checked against the config before Ray starts. Re-running the same `--name` and
`--storage` resumes an interrupted sweep. The summary table, the plot and `best_config.yaml`
(train it with `distpaint train --config`) are written to the sweep directory and MLflow.
With `--storage s3://...` the sweep directory is in the bucket: the synthesised training and
validation data, Tune's state, the report and the MLflow artifacts all go there.
The logic lives in `distpaint.tune.sweep`.
"""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from distpaint.commands.train import SET_HELP, _resolve_config
from distpaint.errors import ConfigError
from distpaint.ray_connect import use_address
from distpaint.tune.sweep import SweepConfig, run_sweep

__all__ = ["register"]


def tune(
    space: Path = typer.Option(..., "--space", "-s", help="Search space YAML (see tune_spaces/README.md)"),
    config: str = typer.Option(..., "--config", "-c", help="Base recipe: a YAML file or a shipped one (cpu_small, ...)"),
    sets: list[str] = typer.Option(None, "--set", metavar="PATH=VALUE",
                                   help=f"Base recipe: {SET_HELP[0].lower()}{SET_HELP[1:]}"),
    num_samples: int = typer.Option(8, "--num-samples", "-n", help="Trials to sample (times the size of any grid)"),
    scheduler: str = typer.Option("asha", "--scheduler", help="asha (stop weak trials early) or fifo"),
    search: str = typer.Option("random", "--search", help="random or optuna"),
    max_steps: int = typer.Option(None, "--max-steps", help="Steps of a trial not stopped early (default: the config's)"),
    report_every: int = typer.Option(0, "--report-every",
                                     help="Validate and report every N steps (0: max-steps/6, at most the config's checkpoint_every)"),
    grace_steps: int = typer.Option(0, "--grace-steps", help="ASHA: steps before a trial can be stopped (0: report-every)"),
    reduction_factor: float = typer.Option(2.0, "--reduction-factor", help="ASHA: keep the top 1/rf at each rung"),
    metric: str = typer.Option("val/rel_component_diff", "--metric",
                               help="val/rel_component_diff (max), val/cldice (max) or val/mse_gaps (min)"),
    mode: str = typer.Option(None, "--mode", help="max or min (default: the metric's direction)"),
    workers_per_trial: int = typer.Option(1, "--workers-per-trial", "-w", help="Training workers (DDP ranks) per trial"),
    gpus_per_trial: float = typer.Option(0.0, "--gpus-per-trial", "-g", help="GPUs per trial, shared by its workers"),
    cpus_per_worker: float = typer.Option(0.9, "--cpus-per-worker", help="CPUs per worker (a fraction < 1 or a whole number)"),
    max_concurrent: int = typer.Option(0, "--max-concurrent", help="Trials at once (0: what the cluster's resources hold)"),
    name: str = typer.Option(None, "--name", help="Sweep name (same name and storage resume); default tune-<date>"),
    storage: str = typer.Option(None, "--storage", help="Where sweeps live: a directory (default ./runs) or a URI"),
    report_dir: Path = typer.Option(None, "--report-dir", help="Local folder of the table, plot, best config (default: the sweep dir; "
                                         "a sweep on object storage uploads them there too)"),
    mlflow_uri: str = typer.Option(None, "--mlflow-uri", help="MLflow tracking URI; default sqlite:///<sweep dir>/mlflow.db"),
    no_mlflow: bool = typer.Option(False, "--no-mlflow", help="Do not log the sweep to MLflow"),
    # str, not Path: a store may be a URL (s3://bucket/masks.zarr), which Path would mangle
    data: str = typer.Option(None, "--data", help="Training mask store shared by all trials, a folder or a URL "
                                                  "(default: synthesised)"),
    val_data: str = typer.Option(None, "--val-data",
                                 help="Validation set: store, directory of stores, or benchmark set (default: built, seed --val-seed)"),
    val_seed: int = typer.Option(1, "--val-seed", help="Seed of the default validation set (not the one you report on)"),
    seed: int = typer.Option(0, "--seed", help="Seed of the searcher"),
    verbose: int = typer.Option(1, "--verbose", help="Ray Tune output: 0 silent, 1 status, 2 every result"),
    address: str = typer.Option(None, "--address",
                                help="Join this Ray cluster (head host:port, ray://head:10001); default "
                                     "RAY_ADDRESS (set inside `ray job submit`), else a private local Ray"),
) -> None:
    """Sweep hyper-parameters of a training recipe with Ray Tune (ASHA), logged to MLflow."""
    options = SweepConfig(num_samples=num_samples, scheduler=scheduler, search=search, max_steps=max_steps,
                          report_every=report_every, grace_steps=grace_steps, reduction_factor=reduction_factor,
                          metric=metric, mode=mode, workers_per_trial=workers_per_trial, gpus_per_trial=gpus_per_trial,
                          cpus_per_worker=cpus_per_worker, max_concurrent=max_concurrent, name=name, storage=storage,
                          report_dir=None if report_dir is None else str(report_dir), mlflow_uri=mlflow_uri,
                          mlflow=not no_mlflow, data=None if data is None else str(data), val_data=val_data,
                          val_seed=val_seed, seed=seed, verbose=verbose)
    if not space.is_file():
        raise ConfigError(f"--space {space}: no such file")
    use_address(address)
    base = _resolve_config(config, sets or ())
    base_source = " ".join([config, *(f"--set {item}" for item in sets or ())])
    console = Console(soft_wrap=True)  # paths stay whole (copy-pastable), tables still fit
    result = run_sweep(space, base, options, base_source=base_source, log=lambda line: console.print(line, highlight=False))
    console.print(_table(result, options.metric))
    console.print(f"table: {', '.join(result.table)}", highlight=False)
    if result.plot:
        console.print(f"plot: {result.plot}", highlight=False)
    if result.best is None:
        console.print("[yellow]no trial reported a finite score[/]")
    else:
        console.print(f"[green]best[/]: trial {result.best['trial']}, {options.metric} = "
                      f"{result.best[options.metric]:.4g} at step {result.best['steps']}", highlight=False)
        console.print(f"best config: {result.best_config}", highlight=False)
        console.print(f"best checkpoint: {result.checkpoint}", highlight=False)
    if result.mlflow:
        console.print(f"MLflow parent run {result.mlflow[1]} in {result.mlflow[0]}", highlight=False)
    console.print(f"{len(result.rows)} trial(s), up to {result.concurrency} at once, {result.seconds:.0f} s", highlight=False)
    if not result.complete:
        console.print("[yellow]interrupted[/]: re-run the same command to resume the sweep")
        raise typer.Exit(130)


def _table(result, metric: str) -> Table:
    table = Table(title=f"sweep {result.name}")
    drop = {"checkpoint", "run_dir", "time_s", f"best {metric}"} | {k for k in (result.rows[0] if result.rows else {})
                                                               if k.startswith("val/") and k != metric}
    cols = [c for c in (result.rows[0] if result.rows else {}) if not c.startswith("_") and c not in drop]
    for c in cols:
        table.add_column(c, justify="left" if c in ("trial", "status") else "right")
    for r in result.rows:
        table.add_row(*(f"{r[c]:.4g}" if isinstance(r[c], float) and not math.isnan(r[c]) else str(r[c]) for c in cols))
    return table


def register(app: typer.Typer) -> None:
    """Add `distpaint tune` to the CLI."""
    app.command("tune")(tune)
