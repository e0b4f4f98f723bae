"""`distpaint demo`: run the pipeline end to end on embedded defaults and write a report.

    distpaint demo [--out demo_out] [--size 2048] [--count 4] [--seed 0] [--train-steps 150]
                   [--workers 2] [--model roads|none]

Synthesises COUNT held-out road masks of SIZE x SIZE px and corrupts them with `mix` gaps,
trains GAN-GL for TRAIN_STEPS steps on WORKERS local Ray workers (on training masks of other
seeds; 0 skips it), repairs the held-out masks with the classical baselines (closing, linking),
the shipped MODEL and the model just trained, evaluates everything against the truth and
writes OUT/report (metrics.md, metrics.json, images/); it prints the command that opens the
run's MLflow UI, and the last line printed is `report: <absolute path of that folder>`. OUT must be
missing, empty or an earlier demo's folder (which is replaced); anything else is refused.
The logic lives in `distpaint.demo`.
"""

from __future__ import annotations

import pathlib

import typer
from rich.console import Console
from rich.table import Table

from distpaint.demo import DEFAULT_OUT, DemoConfig, run_demo
from distpaint.demo.config import DEFAULT_MODEL
from distpaint.demo.models import mlflow_ui_command
from distpaint.demo.report import HEADLINE
from distpaint.metrics.report import format_value

__all__ = ["demo", "register"]

_DEFAULTS = DemoConfig(model=None)  # (the shipped model is checked when the demo runs)


def demo(
    out: pathlib.Path = typer.Option(DEFAULT_OUT, "--out", "-o", help="Output folder (replaced on re-runs; a non-demo folder is refused)."),
    size: int = typer.Option(_DEFAULTS.size, "--size", help="Side of the square synthetic masks (px)."),
    count: int = typer.Option(_DEFAULTS.count, "--count", "-n", help="Number of synthetic masks."),
    seed: int = typer.Option(_DEFAULTS.seed, "--seed", help="Base seed (masks; the gaps use seed + 1)."),
    train_steps: int = typer.Option(_DEFAULTS.train_steps, "--train-steps", help="GAN-GL training steps on local Ray (0: no training)."),
    workers: int = typer.Option(_DEFAULTS.workers, "--workers", help="Ray Train workers of the training run."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Shipped model to compare ('none': skip)."),
) -> None:
    """Synthesise, corrupt, train GAN-GL on local Ray, repair with every method, evaluate, report."""
    console = Console()
    config = DemoConfig(out=out, size=size, count=count, seed=seed, train_steps=train_steps,
                        workers=workers, model=None if model == "none" else model)
    result = run_demo(config, log=lambda line: console.print(line, highlight=False))
    table = Table(title=f"{config.count} {config.kind} mask(s) of {config.size}^2 px, "
                        f"{config.gaps} gaps: mean over the samples")
    table.add_column("metric")
    for method in result.summaries:
        table.add_column(method, justify="right")
    for key in HEADLINE:
        table.add_row(key, *(format_value(s[key].mean) if key in s else "n/a"
                             for s in result.summaries.values()))
    console.print(table)
    if result.run is not None and result.run.mlflow_uri:
        console.print(f"MLflow UI of the training run: {mlflow_ui_command(result.run.mlflow_uri)}",
                      highlight=False, soft_wrap=True)
    console.print(f"report: {result.report.absolute()}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the `demo` command to the distpaint CLI."""
    app.command("demo")(demo)
