"""`distpaint reproduce`: train every stage of a chained recipe from scratch, in this process.

    distpaint reproduce roads --out runs/roads                  # the shipped roads, 8 stages
    distpaint reproduce general --out runs/general --through context --threads 1

Each stage trains into `<out>/<stage>` from the previous stage's averaged result and averages
its own last checkpoints (`distpaint.train.reproduce`); re-running the same command skips the
finished stages and resumes a killed one. `distpaint train --config RECIPE --stage NAME` trains
one stage alone.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from distpaint.train.config import packaged_config

__all__ = ["register", "reproduce"]


def reproduce(
    recipe: str = typer.Argument(..., help="A shipped recipe (roads, general) or a YAML file with stages"),
    out: Path = typer.Option(..., "--out", "-o", help="Folder of the stages' run directories; resumed if present"),
    through: str = typer.Option(None, "--through", help="Stop after this stage (number or name); default: the last"),
    device: str = typer.Option("cpu", "--device", help="torch device: cpu or cuda"),
    threads: int = typer.Option(0, "--threads", help="torch CPU threads (0: torch's default)"),
) -> None:
    """Train and average every stage of a recipe, each from the previous one's result."""
    # deferred (torch): `distpaint` imports every command module when it starts
    import torch

    from distpaint.errors import ConfigError
    from distpaint.train.reproduce import reproduce as run_stages

    path = Path(recipe)
    source = path if path.suffix in (".yaml", ".yml") or path.exists() else packaged_config(recipe)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    if threads > 0:
        torch.set_num_threads(threads)
    console = Console()

    def train_log(step: int, metrics: dict) -> None:
        shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "step")
        console.print(f"step {step}: {shown}", highlight=False)

    result = run_stages(source, out, through=through, device=device,
                        log=lambda line: console.print(line, highlight=False), train_log=train_log)
    console.print(f"[green]done[/]: {result}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `distpaint reproduce` to the CLI."""
    app.command("reproduce")(reproduce)
