"""`distpaint train`: train the inpainting networks from a YAML recipe.

    distpaint train --config cpu_small --local --max-steps 200 --out runs/dev
    distpaint train --config cpu_small --num-workers 2                 # Ray, ./runs/train-<date>
    distpaint train --config roads --stage context --variant gan-gl --init roads --data my_roads.zarr -n 2
    distpaint train --config cpu_small --local --out runs/dev \
        --set loss.lambda_global=3 --set data.gaps.density=2      # any config field
    distpaint train --config paper --num-workers 8 --gpu --storage s3://bucket/runs --name p1 \
        --data /mnt/masks.zarr --mlflow-uri http://mlflow:5000         # on a cluster

`--config` is a YAML file or the name of a recipe shipped in distpaint/configs/ (tiny,
cpu_small, paper, paper_faithful, roads, general, ...); of a chained recipe (roads, general) it
trains stage 1 unless `--stage` names another (`distpaint reproduce` runs them all). `--local` runs the single-process loop in this process;
without it the distributed trainer (Ray Train, `distpaint.train.distributed`) runs the same
config: on the cluster of `--address` or `RAY_ADDRESS` (set inside `ray job submit`), else on a
private local Ray it starts (never another Ray already running on the machine). Its run
directory is `--out`, or `<--storage>/<--name>`; re-running with the same one resumes from the
newest checkpoint there. Ctrl-C or SIGTERM (a scheduler's stop) ends it with exit 130, its
lease released: the same command resumes from the checkpoints written so far.
`--set PATH=VALUE` (repeatable) sets any field of the recipe by its dotted path
(`distpaint.train.overrides`): the value is read as YAML and the config is rebuilt and checked
as a recipe file is, so a bad path or value is one error line naming the field (exit 2).
`--variant` and `--init` are short for `--set variant=...` and `--set model.init_generator=...`.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import typer
from rich.console import Console

from distpaint.commands.stopping import sigterm_as_interrupt
from distpaint.errors import ConfigError
from distpaint.ray_connect import use_address
from distpaint.train import distributed
from distpaint.train.config import VARIANTS, TrainConfig, load_config, packaged_config
from distpaint.train.overrides import apply_overrides, parse_assignments

__all__ = ["register"]


SET_HELP = ("Set a config field by its dotted path, the value read as YAML and checked as in a recipe; "
            "repeatable: --set loss.lambda_global=3 --set data.store_share=0.5")


def _resolve_config(config: str, sets: Sequence[str] = (), shorthands: dict | None = None,
                    stage: str | None = None) -> TrainConfig:
    """The recipe `config` (a YAML file or a shipped recipe's name; its stage `stage`, else
    stage 1) with the `--set PATH=VALUE` items and the shorthand options ({path: value}, None
    values skipped) applied together."""
    path = Path(config)
    cfg = load_config(path if path.suffix in (".yaml", ".yml") or path.exists() else packaged_config(config),
                      stage)
    overrides = parse_assignments(sets)
    overrides.update({k: v for k, v in (shorthands or {}).items() if v is not None})
    source = "--set" if not any(v is not None for v in (shorthands or {}).values()) else "--set/--variant/--init"
    return apply_overrides(cfg, overrides, source) if overrides else cfg


def train(
    config: str = typer.Option(..., "--config", "-c", help="YAML recipe, or a shipped one: tiny, cpu_small, paper, roads, general, ..."),
    out: Path = typer.Option(None, "--out", "-o",
                             help="Run directory (checkpoints, metrics); resumed if present. Required with --local"),
    local: bool = typer.Option(False, "--local", help="Train in this process (no Ray)"),
    stage: str = typer.Option(None, "--stage",
                              help="Of a chained recipe (roads, general): the stage to train, by number or "
                                   "name (default: stage 1); start it from the previous stage with --init"),
    max_steps: int = typer.Option(None, "--max-steps", help="Stop after this many steps (default: the config's)"),
    sets: list[str] = typer.Option(None, "--set", metavar="PATH=VALUE", help=SET_HELP),
    init: str = typer.Option(None, "--init",
                             help="Fine-tune: start G from a shipped model (see distpaint models) or a checkpoint "
                                  "directory of the same architecture (sets model.init_generator)"),
    variant: str = typer.Option(None, "--variant",
                                help=f"Override the recipe's variant ({', '.join(VARIANTS)}), e.g. gan-gl to "
                                     "fine-tune a GAN-GL-M recipe on data without real-* masks"),
    device: str = typer.Option("cpu", "--device", help="torch device of the local run: cpu or cuda"),
    threads: int = typer.Option(0, "--threads", help="torch CPU threads of the local run (0: torch's default)"),
    num_workers: int = typer.Option(2, "--num-workers", "-n", help="Ray: training workers (DDP ranks)"),
    gpu: bool = typer.Option(False, "--gpu", help="Ray: one GPU per worker, NCCL"),
    storage: str = typer.Option(None, "--storage",
                                help="Ray: storage path or URI (s3://...) of runs; default ./runs"),
    name: str = typer.Option(None, "--name", help="Ray: run name (same name and storage resume); default train-<date>"),
    mlflow_uri: str = typer.Option(None, "--mlflow-uri",
                                   help="Ray: MLflow tracking URI; default sqlite:///<run dir>/mlflow.db"),
    no_mlflow: bool = typer.Option(False, "--no-mlflow", help="Ray: do not log to MLflow"),
    register: str = typer.Option(None, "--register", metavar="NAME",
                                 help="Ray: register the final generator as a new version of this MLflow "
                                      "model (then --model models:/NAME/VERSION)"),
    # str, not Path: a store may be a URL (s3://bucket/masks.zarr), which Path would mangle
    data: str = typer.Option(None, "--data",
                             help="Ray: training mask store (a folder or a URL, s3://...); default synthesised "
                                  "from the config into the run dir"),
    val_data: str = typer.Option(None, "--val-data",
                                 help="Ray: validation set (store or directory of stores, e.g. benchmark sets); "
                                      "'none' disables; default synthesised"),
    val_every: int = typer.Option(0, "--val-every", help="Ray: validate every N steps (0: at every checkpoint)"),
    max_failures: int = typer.Option(3, "--max-failures",
                                     help="Ray: worker-group restarts from the last checkpoint (-1: no limit)"),
    cpus_per_worker: float = typer.Option(1.0, "--cpus-per-worker", help="Ray: CPUs (and torch threads) per worker"),
    address: str = typer.Option(None, "--address",
                                help="Ray: join this cluster (head host:port, ray://head:10001); default "
                                     "RAY_ADDRESS (set inside `ray job submit`), else a private local Ray"),
) -> None:
    """Train G (and its discriminators) on synthetic masks with gaps."""
    # the shorthands win over a --set of the same field; all are checked together, as one recipe
    cfg = _resolve_config(config, sets or (), {"variant": variant, "model.init_generator": init}, stage)
    if max_steps is not None and max_steps < 0:
        raise ConfigError("--max-steps must be >= 0")
    console = Console()
    if not local:
        use_address(address)
        with _stopped_as_on_ctrl_c():
            _train_ray(cfg, out, max_steps, console, num_workers=num_workers, use_gpu=gpu, storage=storage,
                       name=name, mlflow_uri=mlflow_uri, mlflow=not no_mlflow, register=register,
                       data=None if data is None else str(data),
                       val_data=val_data, val_every=val_every, max_failures=max_failures,
                       cpus_per_worker=cpus_per_worker)
        return
    if out is None:
        raise ConfigError("--local needs --out (the run directory)")
    # deferred (torch): `distpaint` imports every command module when it starts
    import torch

    from distpaint.train.local import train_local

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    if threads > 0:
        torch.set_num_threads(threads)

    def log(step: int, metrics: dict) -> None:
        shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "step")
        console.print(f"step {step}: {shown}", highlight=False)

    with _stopped_as_on_ctrl_c():
        metrics = train_local(cfg, out, max_steps=max_steps, device=device, log=log)
    console.print(f"[green]done[/]: {metrics.get('step', 0)} steps, checkpoints in {out / 'checkpoints'}")


@contextlib.contextmanager
def _stopped_as_on_ctrl_c() -> Iterator[None]:
    """Ctrl-C or SIGTERM: the run's lease released, its Ray shut down, exit 130 with one line
    (the checkpoints written so far are the resume point)."""
    try:
        with sigterm_as_interrupt():
            yield
    except KeyboardInterrupt:
        Console(stderr=True).print("[yellow]interrupted[/]: the checkpoints written are kept; re-run "
                                   "the same command to resume", highlight=False)
        raise typer.Exit(130) from None


def _train_ray(cfg, out: Path | None, max_steps: int | None, console: Console, **options) -> None:
    try:  # Ray is optional at run time: say so in one line rather than a traceback
        importlib.import_module("ray.train")
    except ModuleNotFoundError as exc:
        if exc.name not in ("ray", "ray.train"):
            raise
        raise ConfigError("distributed training is not available here (no Ray); pass --local") from None
    summary = distributed.train_distributed(cfg, out, max_steps=max_steps,
                                            options=distributed.DistributedConfig(**options))
    console.print(f"[green]done[/]: {summary['step']} steps of run {summary['name']}; "
                  f"checkpoint {summary['checkpoint']}", highlight=False)
    if summary.get("mlflow"):
        uri, run_id = summary["mlflow"]
        console.print(f"MLflow run {run_id} in {uri}", highlight=False)
    if summary.get("registered"):
        console.print(f"registered: {summary['registered']}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `distpaint train` to the CLI."""
    app.command("train")(train)
