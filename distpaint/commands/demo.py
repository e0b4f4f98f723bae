"""`distpaint demo`: run the pipeline end to end on embedded defaults and write a report.

    distpaint demo [--out demo_out] [--size 2048] [--count 4] [--seed 0]

Synthesises COUNT road masks of SIZE x SIZE px, corrupts them with `mix` gaps, repairs them
with the classical baselines (closing, linking), evaluates everything against the truth and
writes OUT/report (metrics.md, metrics.json, images/); the last line printed is
`report: <absolute path of that folder>`. OUT must be
missing, empty or an earlier demo's folder (which is replaced); anything else is refused.
The logic lives in `distpaint.demo`.
"""

from __future__ import annotations

import pathlib

import typer
from rich.console import Console
from rich.table import Table

from distpaint.demo import DEFAULT_OUT, DemoConfig, run_demo
from distpaint.demo.report import HEADLINE
from distpaint.metrics.report import format_value

__all__ = ["demo", "register"]

_DEFAULTS = DemoConfig()


def demo(
    out: pathlib.Path = typer.Option(DEFAULT_OUT, "--out", "-o", help="Output folder (replaced on re-runs; a non-demo folder is refused)."),
    size: int = typer.Option(_DEFAULTS.size, "--size", help="Side of the square synthetic masks (px)."),
    count: int = typer.Option(_DEFAULTS.count, "--count", "-n", help="Number of synthetic masks."),
    seed: int = typer.Option(_DEFAULTS.seed, "--seed", help="Base seed (masks; the gaps use seed + 1)."),
) -> None:
    """Synthesise, corrupt, repair with the baselines, evaluate, and write a report."""
    console = Console()
    config = DemoConfig(out=out, size=size, count=count, seed=seed)
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
    console.print(f"report: {result.report.absolute()}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the `demo` command to the distpaint CLI."""
    app.command("demo")(demo)
